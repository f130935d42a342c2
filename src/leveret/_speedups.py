"""The one place that decides between compiled hot paths and their pure-Python twins.

Two kinds of compiled modules: twins (``_frames_c`` beside ``_frames_py``, picked by ``load``)
and the data-plane modules compiled from their own Python source in Cython's pure-Python mode
(``COMPILED_MODULES``: ``message.py`` with ``message.pxd``, built as ``leveret.message``; the
built module sits beside its source and Python's import takes it first). For the second kind
``install`` puts a finder on ``sys.meta_path`` that imports the ``.py`` source instead when
extensions are disabled, and refuses a source-only import when they are required.

``LEVERET_NO_EXTENSIONS=1`` forces the pure-Python twins. ``LEVERET_REQUIRE_EXTENSIONS=1``
turns a missing compiled module into an ImportError, so a build that silently lost its
extensions fails loudly (CI sets it). When both are set, NO_EXTENSIONS wins: that is how CI
runs the end-to-end suite in pure mode against the same installed package.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


NO_EXTENSIONS = _flag("LEVERET_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = _flag("LEVERET_REQUIRE_EXTENSIONS") and not NO_EXTENSIONS


def load(compiled: str, pure: str) -> ModuleType:
    """Import ``compiled`` unless extensions are disabled; fall back to ``pure``."""
    if not NO_EXTENSIONS:
        try:
            return importlib.import_module(compiled)
        except ImportError as exc:
            if REQUIRE_EXTENSIONS:
                raise ImportError(
                    f"{compiled} is not built and LEVERET_REQUIRE_EXTENSIONS is set: {exc}"
                ) from exc
    return importlib.import_module(pure)


def implementation(module: ModuleType) -> str:
    """``"c"`` for a compiled module, ``"py"`` for a pure twin or an interpreted source."""
    if module.__name__ in COMPILED_MODULES:
        return "c" if is_compiled(module) else "py"
    return "py" if module.__name__.endswith("_py") else "c"


# The data-plane modules compiled from their Python source (setup.py builds exactly these).
COMPILED_MODULES = (
    "leveret.message",
    "leveret.queue",
    "leveret.channel",
    "leveret.connection",
    "leveret.exchange",
    "leveret.vhost",
    "leveret.confirms",
    "leveret.ack_timeout",
)


def is_compiled(module: ModuleType) -> bool:
    """Was ``module`` loaded from an extension module (rather than its ``.py`` source)?"""
    return isinstance(getattr(module.__spec__, "loader", None),
                      importlib.machinery.ExtensionFileLoader)


class _SourceOrCompiled:
    """A ``sys.meta_path`` finder for ``COMPILED_MODULES``: their ``.py`` source when
    extensions are disabled; with extensions required, an ImportError when only the source
    is there. Other modules are left to the next finder."""

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name not in COMPILED_MODULES:
            return None
        leaf = name.rpartition(".")[2]
        for entry in path or ():
            if NO_EXTENSIONS:
                source = os.path.join(entry, leaf + ".py")
                if os.path.isfile(source):
                    return importlib.util.spec_from_file_location(name, source)
            else:
                spec = importlib.machinery.PathFinder.find_spec(name, [entry])
                if spec is not None and not isinstance(
                        spec.loader, importlib.machinery.ExtensionFileLoader):
                    raise ImportError(f"{name} is not built and LEVERET_REQUIRE_EXTENSIONS "
                                      f"is set (found only {spec.origin})", name=name)
                return spec
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` if it changes anything (``leveret/__init__``)."""
    if (NO_EXTENSIONS or REQUIRE_EXTENSIONS) and not any(
            isinstance(f, _SourceOrCompiled) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceOrCompiled())

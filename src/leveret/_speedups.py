"""The one place that decides between compiled hot paths and their pure-Python twins.

``LEVERET_NO_EXTENSIONS=1`` forces the pure-Python twins. ``LEVERET_REQUIRE_EXTENSIONS=1``
turns a missing compiled module into an ImportError, so a build that silently lost its
extensions fails loudly (CI sets it). When both are set, NO_EXTENSIONS wins: that is how CI
runs the end-to-end suite in pure mode against the same installed package.
"""

from __future__ import annotations

import importlib
import os
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
    """``"c"`` for a compiled module, ``"py"`` for a pure twin."""
    return "py" if module.__name__.endswith("_py") else "c"

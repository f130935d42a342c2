"""Pick both implementations of a hot path for parametrized tests."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def implementations(compiled: str, pure: str) -> list:
    """pytest params ``c`` and ``py``; ``c`` is skipped when not built (failed if required)."""
    params = []
    try:
        mod: ModuleType | None = importlib.import_module(compiled)
    except ImportError as exc:
        if os.environ.get("LEVERET_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise
        mod = None
        reason = f"{compiled} not built: {exc}"
    if mod is not None:
        params.append(pytest.param(mod, id="c"))
    else:
        params.append(pytest.param(None, id="c", marks=pytest.mark.skip(reason=reason)))
    params.append(pytest.param(importlib.import_module(pure), id="py"))
    return params

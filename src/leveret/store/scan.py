"""The start-up scan of data segments: compiled (``_scan_c``) by default, ``_scan_py`` as
fallback (see ``_scan_py`` for what it does)."""

from .. import _speedups

_impl = _speedups.load("leveret.store._scan_c", "leveret.store._scan_py")
IMPLEMENTATION = _speedups.implementation(_impl)
scan_run = _impl.scan_run

__all__ = ["IMPLEMENTATION", "scan_run"]

"""What the data-plane modules take from ``cython`` when they run as plain Python.

The modules compiled in Cython's pure-Python mode (``_speedups.COMPILED_MODULES``: a ``.py``
source with a ``.pxd`` beside it) do ``import cython`` for a few class decorators. Compiled,
that import is Cython's own and costs nothing at run time; interpreted (``LEVERET_NO_EXTENSIONS``,
or an install without a C compiler) Cython need not be installed, and these stand in for it:
each decorator returns the class unchanged.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

compiled = False


def cclass(cls: T) -> T:
    """A ``cdef class`` when compiled: typed attributes from the ``.pxd``, C-level methods."""
    return cls


def no_gc(cls: T) -> T:
    """Not tracked by the cycle collector when compiled (its fields cannot form a cycle)."""
    return cls


def final(cls: T) -> T:
    """No subclass, so method calls need no override check when compiled."""
    return cls


def cast(type_: object, value: T) -> T:
    """``value`` seen as a ``type_`` (checked by the caller) when compiled; itself here."""
    return value

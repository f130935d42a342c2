"""Build the Cython hot paths as extension modules of the ``leveret`` package.

``LEVERET_NO_EXTENSIONS=1`` at build time gives a pure-Python install; the package
then runs on the ``_*_py`` twins of every compiled module.
"""

import os
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
CSRC = HERE / "csrc"
SRC = HERE / "src"
# the data plane, compiled from its Python source in Cython's pure-Python mode (a .pxd beside
# each .py types it); the same list as leveret._speedups.COMPILED_MODULES
PURE_MODE = ("leveret.message", "leveret.queue", "leveret.channel", "leveret.connection",
             "leveret.exchange", "leveret.vhost", "leveret.confirms", "leveret.ack_timeout")


def extensions() -> list:
    if os.environ.get("LEVERET_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    from Cython.Build import cythonize

    modules = []
    for pyx in sorted(CSRC.rglob("*.pyx")):
        rel = pyx.relative_to(CSRC).with_suffix("")
        name = ".".join(rel.parts)
        # the store's scan checks record CRCs with zlib (zlib.h: zlib1g-dev, which Python's
        # own headers package depends on)
        libraries = ["z"] if name == "leveret.store._scan_c" else []
        modules.append(
            Extension(name, [str(pyx.relative_to(HERE))], extra_compile_args=["-O2"],
                      libraries=libraries)
        )
    pure = []
    for name in PURE_MODE:
        source = SRC.joinpath(*name.split(".")).with_suffix(".py")
        pure.append(Extension(name, [str(source.relative_to(HERE))],
                              extra_compile_args=["-O2"]))
    return cythonize(
        modules,
        language_level=3,
        # the .pyx files check their own bounds: every read from the wire is checked by hand
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ) + cythonize(
        pure,
        language_level=3,
        # Python semantics kept (negative indexes, bounds checks, Python division); the type
        # hints are for mypy: the .pxd files say what the compiled code may assume
        compiler_directives={"annotation_typing": False},
    )

setup(ext_modules=extensions())

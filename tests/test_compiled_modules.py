"""The data-plane modules compiled from their own Python source (Cython's pure-Python mode).

Each is one source for both builds: the built extension module by default, its ``.py`` with
``LEVERET_NO_EXTENSIONS=1``. The compiled modules import each other's types while they load,
so every one of them must import first, in a fresh interpreter, in either build.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from leveret import _speedups

MODULES = list(_speedups.COMPILED_MODULES)
# modules that import the compiled ones: each is imported first in a fresh process too
ALSO = ["leveret.stream", "leveret.quorum", "leveret.direct_reply", "leveret.delayed",
        "leveret.store", "leveret.store.paging", "leveret.queue_types", "leveret.server",
        "leveret.broker", "leveret.management", "leveret.deadletter", "leveret.ready",
        "leveret.handshake", "leveret.channel_methods"]


def _required() -> bool:
    return (os.environ.get("LEVERET_REQUIRE_EXTENSIONS", "") not in ("", "0")
            and os.environ.get("LEVERET_NO_EXTENSIONS", "") in ("", "0"))


def _run(code: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("name", MODULES + ALSO)
@pytest.mark.parametrize("pure", [False, True], ids=["default", "no-extensions"])
def test_each_module_imports_first(name, pure):
    env = {"LEVERET_NO_EXTENSIONS": "1"} if pure else {}
    _run(f"import {name}", **env)


def test_the_compiled_build_is_the_default():
    if not _required():
        pytest.skip("only meaningful when the extensions are required (CI sets it)")
    code = ("import importlib, leveret._speedups as s\n"
            "for n in s.COMPILED_MODULES:\n"
            "    print(n, s.implementation(importlib.import_module(n)))")
    lines = _run(code).split("\n")
    assert [line.split()[1] for line in lines if line] == ["c"] * len(MODULES)


def test_no_extensions_takes_the_python_source():
    code = ("import importlib, leveret._speedups as s\n"
            "for n in s.COMPILED_MODULES:\n"
            "    m = importlib.import_module(n)\n"
            "    print(s.implementation(m), m.__file__.endswith('.py'))")
    lines = [line for line in _run(code, LEVERET_NO_EXTENSIONS="1").split("\n") if line]
    assert lines == ["py True"] * len(MODULES)


def test_a_queued_message_is_one_small_untracked_object():
    """What issue 13's memory goal rests on: a message in its first plain queue is its own
    entry, and compiled it is a fixed-size struct the cycle collector does not track."""
    import gc

    from leveret.message import Message, QueueEntry, claim

    msg = Message("", "key", b"\x00\x00", b"x" * 16)
    assert claim(msg, 7) is msg and msg.seq == 7 and msg.message is msg
    other = claim(msg, 9)  # a second queue gets an entry of its own
    assert isinstance(other, QueueEntry) and other.message is msg and other.seq == 9
    assert msg.seq == 7
    if _speedups.is_compiled(sys.modules["leveret.message"]):
        assert not gc.is_tracked(msg) and not gc.is_tracked(other)
        assert sys.getsizeof(msg) <= 80

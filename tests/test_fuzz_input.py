"""The fuzz target for the server's input path (tests/fuzz/fuzz_input.py) in the test suite:
its seeds and a few thousand deterministic mutations of them through every check (the two
codecs against each other, the method decoder against pamqp, a real Connection logging no
internal error), and a short atheris run when atheris is installed (the test extras install
it on Linux x86-64). perf/README.md says how to run it for hours."""

from __future__ import annotations

import importlib.util
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))

import fuzz_input  # noqa: E402

pytestmark = pytest.mark.leveret_only
HARNESS = Path(__file__).parent / "fuzz" / "fuzz_input.py"
SPECIAL = (b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00",
           b"\xce", b"F", b"A", b"S")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits: flip, insert, delete, duplicate a span, plant an edge value."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op == 2 and b:
            del b[rng.randrange(len(b))]
        elif op == 3 and len(b) > 2:
            i, j = rng.randrange(len(b)), rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 40)]
        elif op == 4 and b:
            i = rng.randrange(len(b))
            b[i:i + 4] = rng.choice(SPECIAL)
    return bytes(b)


def test_seeds_and_mutations_pass_every_check():
    seeds = list(fuzz_input.seeds())
    assert len(seeds) > 60
    for seed in seeds:
        fuzz_input.check(seed)
    # the connection check gets past the handshake: every seed opened its connection
    harness = fuzz_input._harness
    assert harness is not None
    assert harness.server.counters.connection_created >= len(seeds)
    rng = random.Random(14)
    for _ in range(4000):
        fuzz_input.check(mutate(rng, rng.choice(seeds)))


def test_the_harness_finds_an_internal_error(monkeypatch):
    """A bug behind a method (an exception where a reply should be) is a finding: here the
    permission check queue.declare makes raises."""
    import leveret.permissions

    check = leveret.permissions.Authorizer.check

    def broken(self, perm, kind, name):
        if kind == "queue" and name == "fuzz-q":
            raise IndexError("planted")
        return check(self, perm, kind, name)

    monkeypatch.setattr(leveret.permissions.Authorizer, "check", broken)
    declare = [s for s in fuzz_input.seeds() if b"\x002\x00\x0a" in s]  # queue.declare's id
    assert declare
    with pytest.raises(fuzz_input.Disagreement, match="internal error logged"):
        fuzz_input.check(declare[0])


def test_the_harness_finds_codecs_disagreeing(monkeypatch):
    py, c = fuzz_input._codecs()
    if c is None:
        pytest.skip("one codec only (LEVERET_NO_EXTENSIONS)")
    split = py.split_frames

    def off_by_one(buf, start, end, frame_max):
        events, consumed = split(buf, start, end, frame_max)
        return events, consumed + 1

    monkeypatch.setattr(py, "split_frames", off_by_one)
    with pytest.raises(fuzz_input.Disagreement, match="split_frames"):
        fuzz_input.check_codec(next(fuzz_input.seeds()))


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_a_short_atheris_run(tmp_path):
    corpus = tmp_path / "corpus"
    assert subprocess.run([sys.executable, str(HARNESS), "--seeds", str(corpus)],
                          check=True).returncode == 0
    result = subprocess.run([sys.executable, str(HARNESS), "-runs=3000", "-seed=1",
                             str(corpus)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # libFuzzer counts an extra run at times (the empty input): "Done 3001 runs" was seen
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done is not None and int(done.group(1)) >= 3000, result.stderr[-3000:]
    assert not list(tmp_path.glob("crash-*"))

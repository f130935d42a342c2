"""The C allocator tuned for a broker (resources.tune_allocator): glibc keeps the pages of
freed message bodies for the next ones instead of giving them back at once, and the ``leveret``
command still gives them back once the burst is over (memory.MemoryMonitor's idle trim)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import pika
import pytest

from _proc import LeveretProcess

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="mallopt's thresholds are glibc's")

MiB = 1 << 20

# In a fresh interpreter: ~30 MiB of 60,000-byte blocks (each below glibc's default mmap
# threshold, so from the heap), freed together; RSS after each step.
HEAP_SCRIPT = """
import json, sys
from leveret import resources
tuned = resources.tune_allocator() if sys.argv[1] == "tuned" else False
before = resources.resident_memory()
blocks = [bytearray(60_000) for _ in range(512)]
held = resources.resident_memory()
del blocks
freed = resources.resident_memory()
resources.release_free_memory()
released = resources.resident_memory()
print(json.dumps(dict(tuned=tuned, before=before, held=held, freed=freed, released=released)))
"""


def heap_run(mode: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", HEAP_SCRIPT, mode], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_tuned_heap_keeps_freed_bodies_until_a_trim():
    plain = heap_run("plain")
    assert plain["held"] - plain["before"] > 25 * MiB
    # glibc's default: the free top of the heap goes back as soon as it is freed
    assert plain["held"] - plain["freed"] > 25 * MiB

    tuned = heap_run("tuned")
    assert tuned["tuned"] is True
    assert tuned["held"] - tuned["before"] > 25 * MiB
    # tuned: the pages stay for the next bodies ...
    assert tuned["held"] - tuned["freed"] < 5 * MiB
    # ... until malloc_trim gives them back
    assert tuned["freed"] - tuned["released"] > 25 * MiB


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/PID/statm")
def test_the_leveret_command_gives_a_burst_back_once_it_is_over():
    """40 MiB of 64 KiB messages through a queue: the broker's RSS grows, and once the queue is
    drained it falls back (the idle trim, within a few seconds), with every message delivered
    whole and in order."""
    body_size = 64 * 1024
    count = 640
    with LeveretProcess() as proc:
        proc.started()
        base = rss_of(proc.proc.pid)
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", proc.port))
        ch = conn.channel()
        ch.queue_declare("burst")
        for i in range(count):
            ch.basic_publish("", "burst", i.to_bytes(4, "big") * (body_size // 4))
        assert ch.queue_declare("burst", passive=True).method.message_count == count
        peak = rss_of(proc.proc.pid)
        assert peak - base > 30 * MiB
        for i in range(count):
            method, _, body = ch.basic_get("burst", auto_ack=True)
            assert method is not None
            assert body == i.to_bytes(4, "big") * (body_size // 4)
        assert ch.queue_declare("burst", passive=True).method.message_count == 0
        deadline = time.monotonic() + 30
        while rss_of(proc.proc.pid) > peak - 25 * MiB:
            assert time.monotonic() < deadline, (
                f"RSS stayed at {rss_of(proc.proc.pid) // MiB} MiB after the queue was "
                f"drained (base {base // MiB} MiB, peak {peak // MiB} MiB)")
            time.sleep(0.2)
        conn.close()
    assert "Traceback" not in proc.output()
    assert "[error]" not in proc.output()

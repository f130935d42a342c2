"""A Leveret process to kill -9: shared by tests/test_durability.py's crash tests and the long
randomized run perf/killnine.py (which puts this directory on ``sys.path``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

import pika
import pika.exceptions

# "paged": a budget of a few messages and 16 KiB segments, so that under load most messages
# are paged out and read back, and segments roll and are compacted while the kill comes
MODES: dict[str, tuple[list[str], dict[str, str]]] = {
    "plain": ([], {}),
    "paged": (["--memory-budget", "2000"], {"LEVERET_STORE_SEGMENT_BYTES": "16384"}),
}


def start_server(data_dir: str, port: int, mode: str = "plain",
                 extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """``python -m leveret`` on ``data_dir``, returned once it accepts AMQP connections."""
    args, env = MODES[mode]
    proc = subprocess.Popen(
        [sys.executable, "-m", "leveret", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", data_dir, "--log-level", "warning", "--no-management", "--no-prometheus",
         *args, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)).close()
            return proc
        except pika.exceptions.AMQPConnectionError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    raise AssertionError(f"server did not start: {err[-2000:]}")

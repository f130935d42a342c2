"""Memory of a long durable queue: the broker's RSS with N persistent messages queued.

    python perf/paging_memory.py                      # 1M and 4M messages of 100 bytes
    python perf/paging_memory.py -n 10000000 -s 100   # ten million

Leveret runs with a data dir and its default ``--memory-budget`` (128 MiB); messages past the
budget wait on disk, so RSS stops growing with the queue, apart from 12 bytes a message
of index (store id and size). The same load goes to RabbitMQ on localhost:5672 when it runs
(its classic queue pages to disk under memory pressure; its RSS is the beam.smp process's).
Each load is persistent messages published with confirms into one durable queue.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_recovery import QUEUE, count, free_port, load, wait_port  # noqa: E402


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def leveret(n: int, size: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="leveret-paging-") as data_dir:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "leveret", "--log-level", "warning",
                                 "--no-management", "--no-prometheus", "--data-dir", data_dir,
                                 "--port", str(port)])
        try:
            wait_port(port)
            idle = rss_mib(proc.pid)
            load(port, n, size)
            assert count(port) == n
            time.sleep(1)
            return idle, rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(120)


def rabbitmq_pid() -> int | None:
    out = subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True)
    pids = out.stdout.split()
    return int(pids[0]) if pids else None


def rabbitmq(n: int, size: int) -> tuple[float, float] | None:
    pid = rabbitmq_pid()
    if pid is None:
        return None
    try:
        wait_port(5672, timeout=0.5)
    except RuntimeError:
        return None
    idle = rss_mib(pid)
    load(5672, n, size)
    assert count(5672) >= n
    time.sleep(1)
    used = rss_mib(pid)
    subprocess.run(["rabbitmqctl", "-q", "delete_queue", QUEUE], capture_output=True)
    return idle, used


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, action="append", help="messages (repeatable)")
    p.add_argument("-s", "--size", type=int, default=100, help="body bytes")
    p.add_argument("--no-rabbitmq", action="store_true")
    args = p.parse_args()
    print(f"{'broker':<9} {'messages':>10} {'idle MiB':>9} {'queued MiB':>11} "
          f"{'bytes/msg':>10}")
    for n in args.n or [1_000_000, 4_000_000]:
        for name, run in (("leveret", leveret), ("rabbitmq", rabbitmq)):
            if name == "rabbitmq" and args.no_rabbitmq:
                continue
            got = run(n, args.size)
            if got is None:
                print(f"{name:<9} not running")
                continue
            idle, used = got
            print(f"{name:<9} {n:>10,} {idle:>9.1f} {used:>11.1f} "
                  f"{(used - idle) * 1048576 / n:>10.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

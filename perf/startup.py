"""Start-up and idle cost: time from process start until the port accepts connections, and
resident memory (VmRSS) one second after that, for ``leveret`` and a cold ``rabbitmq-server``.

    python perf/startup.py                 # 5 runs of each, medians and ratios
    python perf/startup.py --no-rabbitmq   # Leveret alone

RabbitMQ is measured only if installed; a running RabbitMQ is stopped first
(``rabbitmqctl stop``) and started again (``rabbitmq-server -detached``) afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.1):
            return True
    except OSError:
        return False


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    kids = [int(x) for x in out.stdout.split()]
    return [pid] + [d for k in kids for d in descendants(k)]


def measure(cmd: list[str], port: int, timeout: float = 60.0) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not port_open(port):
            if proc.poll() is not None or time.perf_counter() - start > timeout:
                raise RuntimeError(f"{cmd[0]} did not start")
            time.sleep(0.005)
        listen = time.perf_counter() - start
        time.sleep(1.0)
        rss = rss_kib(descendants(proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return listen, rss


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--no-rabbitmq", action="store_true")
    args = p.parse_args()

    lev = []
    for _ in range(args.runs):
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="leveret-startup-") as data_dir:
            # a fresh data dir each run, as a cold RabbitMQ opens its own
            lev.append(measure([sys.executable, "-m", "leveret", "--port", str(port),
                                "--log-level", "warning", "--data-dir", data_dir], port))
    results = {"leveret": lev}

    if not args.no_rabbitmq and shutil.which("rabbitmq-server"):
        was_running = port_open(5672)
        if was_running:
            subprocess.run(["rabbitmqctl", "stop"], capture_output=True)
            while port_open(5672):
                time.sleep(0.2)
        rmq = []
        try:
            for _ in range(args.runs):
                rmq.append(measure(["rabbitmq-server"], 5672))
                subprocess.run(["rabbitmqctl", "stop"], capture_output=True)
                subprocess.run(["epmd", "-kill"], capture_output=True)
                time.sleep(1)
        finally:
            if was_running:
                subprocess.run(["rabbitmq-server", "-detached"])
        results["rabbitmq"] = rmq

    print(f"{'broker':<10} {'start-to-listen s':>18} {'idle RSS MiB':>13}")
    med = {}
    for name, rows in results.items():
        t = statistics.median(r[0] for r in rows)
        m = statistics.median(r[1] for r in rows) / 1024
        med[name] = (t, m)
        print(f"{name:<10} {t:>18.3f} {m:>13.1f}")
    if "rabbitmq" in med:
        (lt, lm), (rt, rm) = med["leveret"], med["rabbitmq"]
        print(f"leveret starts {rt / lt:.1f}x faster and idles in {lm / rm:.2f}x the memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())

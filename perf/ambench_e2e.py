"""End to end against RabbitMQ: the rabbitmq-c load generator (../shared/tools/ambench.c) run
against Leveret and a local RabbitMQ in alternation, with the same arguments.

    python perf/ambench_e2e.py                      # every scenario, 3 rounds
    python perf/ambench_e2e.py --rounds 5 --scenario default --scenario "-a 0"

Leveret is started as ``python -m leveret --port N`` (``--leveret-cmd`` to change it); RabbitMQ
is expected on localhost:5672 (``ci/install_rabbitmq.sh`` starts one). Prints the median
end-to-end messages/s of each and the Leveret/RabbitMQ ratio per scenario.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = {
    "default": [],
    "-a 0": ["-a", "0"],
    "-a 1": ["-a", "1"],
    "-a 100": ["-a", "100"],
    "-c 100": ["-c", "100"],
    "-P 1 -c 100": ["-P", "1", "-c", "100"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def ambench_binary() -> str:
    out = subprocess.run(["bash", str(HERE.parent / "ci" / "build_ambench.sh")],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def run_ambench(binary: str, port: int, args: list[str], n: int) -> float | None:
    queue = f"ambench-{uuid.uuid4().hex[:8]}"
    cmd = [binary, "127.0.0.1", str(port), "-n", str(n), "-q", queue, *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"e2e_msgs_per_s=(\d+)", out.stdout)
    if not m:
        print(f"  ambench failed on port {port}: {out.stderr.strip()}", file=sys.stderr)
        return None
    return float(m.group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("-n", type=int, default=200_000, help="messages per ambench run")
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    p.add_argument("--leveret-cmd", default=f"{sys.executable} -m leveret --log-level warning")
    p.add_argument("--rabbitmq-port", type=int, default=5672)
    args = p.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    binary = ambench_binary()
    rabbit = wait_port(args.rabbitmq_port, timeout=1)
    if not rabbit:
        print("no RabbitMQ on localhost:5672: measuring Leveret alone", file=sys.stderr)
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="leveret-bench-")  # durable like RabbitMQ's, but fresh
    cmd = shlex.split(args.leveret_cmd) + ["--port", str(port), "--data-dir", data_dir]
    server = subprocess.Popen(cmd)
    try:
        if not wait_port(port):
            print("Leveret did not start", file=sys.stderr)
            return 1
        print(f"{'scenario':<14} {'leveret msg/s':>14} {'rabbitmq msg/s':>15} {'ratio':>7}")
        for name in scenarios:
            lev, rmq = [], []
            for _ in range(args.rounds):
                v = run_ambench(binary, port, SCENARIOS[name], args.n)
                if v:
                    lev.append(v)
                if rabbit:
                    v = run_ambench(binary, args.rabbitmq_port, SCENARIOS[name], args.n)
                    if v:
                        rmq.append(v)
            lm = statistics.median(lev) if lev else float("nan")
            rm = statistics.median(rmq) if rmq else float("nan")
            ratio = lm / rm if rmq and lev else float("nan")
            print(f"{name:<14} {lm:>14.0f} {rm:>15.0f} {ratio:>6.2f}x", flush=True)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End to end against RabbitMQ: the rabbitmq-c load generator (../shared/tools/ambench.c) run
against Leveret and a local RabbitMQ in alternation, with the same arguments.

    python perf/ambench_e2e.py                                  # every scenario, 3 rounds
    python perf/ambench_e2e.py --rounds 5 -s default -s "-a 0"  # some scenarios
    python perf/ambench_e2e.py --no-rabbitmq                    # Leveret alone

Leveret is started here as ``python -m leveret --port N`` on a free port with a throw-away
``--data-dir`` (``--leveret-cmd`` replaces the command before ``--port``). RabbitMQ is expected on
localhost:5672 (``ci/install_rabbitmq.sh`` starts one); without it Leveret is measured alone.
Each round runs Leveret and RabbitMQ back to back, taking turns at going first. Prints, per
scenario, the median end-to-end and publish rates of each and the Leveret/RabbitMQ ratios.

ambench publishes to and consumes from one queue; the runs here use ``leveret-perf`` (durable
``leveret-perf-durable`` with ``-P 1``), purged by ambench at the start of every run and deleted
from RabbitMQ at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = {
    "default": [],  # ack every message, prefetch 1000, 16-byte bodies, no confirms
    "-a 0": ["-a", "0"],  # no-ack consumer
    "-a 1": ["-a", "1"],
    "-a 100": ["-a", "100"],  # multiple ack every 100
    "-c 100": ["-c", "100"],  # publisher confirms, at most 100 unconfirmed
    "-P 1 -c 100": ["-P", "1", "-c", "100"],  # durable queue, persistent messages, confirms
}
QUEUE = "leveret-perf"
DURABLE_QUEUE = "leveret-perf-durable"  # a queue's durability is fixed when it is declared
RESULT = re.compile(r"e2e_msgs_per_s=(\d+) publish_msgs_per_s=(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def build_ambench() -> str:
    """Build (if needed) the load generator with ci/build_ambench.sh; returns its path."""
    out = subprocess.run(["bash", str(HERE.parent / "ci" / "build_ambench.sh")],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"could not build ambench:\n{out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def run_ambench(binary: str, host: str, port: int, args: list[str], n: int,
                timeout: float) -> tuple[float, float] | None:
    """One ambench run; (end-to-end msg/s, publish msg/s) or None with the reason on stderr."""
    queue = DURABLE_QUEUE if "-P" in args else QUEUE
    cmd = [binary, host, str(port), "-n", str(n), "-q", queue, *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  ambench timed out after {timeout:.0f} s: {shlex.join(cmd)}", file=sys.stderr)
        return None
    m = RESULT.search(out.stdout)
    if not m:
        why = out.stderr.strip() or f"exit status {out.returncode}"
        print(f"  ambench failed ({why}): {shlex.join(cmd)}", file=sys.stderr)
        return None
    return float(m.group(1)), float(m.group(2))


def accepts_option(cmd: list[str], option: str) -> bool:
    out = subprocess.run(cmd + ["--help"], capture_output=True, text=True)
    return option in out.stdout


@contextlib.contextmanager
def leveret(cmd: list[str], port: int) -> Iterator[subprocess.Popen]:
    """Leveret on ``port`` with a throw-away data directory, its output in a log file."""
    with tempfile.TemporaryDirectory(prefix="leveret-perf-") as tmp:
        full = cmd + ["--port", str(port)]
        if accepts_option(cmd, "--data-dir"):
            full += ["--data-dir", os.path.join(tmp, "data")]
        log_path = os.path.join(tmp, "leveret.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT)
            try:
                if not wait_port("127.0.0.1", port, proc, timeout=30):
                    sys.exit(f"Leveret did not start ({shlex.join(full)}):\n"
                             f"{Path(log_path).read_text()[-3000:]}")
                yield proc
            finally:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.returncode not in (0, -15):
                print(f"Leveret exited with {proc.returncode}; its log ends with:\n"
                      f"{Path(log_path).read_text()[-3000:]}", file=sys.stderr)


def delete_queues(host: str, port: int, names: list[str]) -> None:
    """Leave RabbitMQ as found: drop the queues the runs declared (best effort)."""
    try:
        import pika
    except ImportError:
        if shutil.which("rabbitmqctl"):
            for name in names:
                subprocess.run(["rabbitmqctl", "delete_queue", name], capture_output=True)
        else:
            print(f"left queues {names} on RabbitMQ (no pika, no rabbitmqctl)", file=sys.stderr)
        return
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters(host, port))
        try:
            for name in names:
                conn.channel().queue_delete(name)
        finally:
            conn.close()
    except Exception as exc:  # cleanup must not hide the results
        print(f"could not delete queues {names} on RabbitMQ: {exc}", file=sys.stderr)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cell(value: float, width: int, fmt: str = ".0f", suffix: str = "") -> str:
    text = "-" if value != value else f"{value:{fmt}}{suffix}"  # NaN: nothing measured
    return f"{text:>{width}}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--rounds", type=int, default=3, help="runs of each broker per scenario")
    p.add_argument("-n", type=int, default=200_000, help="messages per ambench run")
    p.add_argument("-s", "--scenario", action="append", choices=list(SCENARIOS),
                   help="ambench arguments to run (repeatable; default: all)")
    p.add_argument("--leveret-cmd", default=f"{shlex.quote(sys.executable)} -m leveret "
                   "--log-level warning", help="command starting Leveret, without --port")
    p.add_argument("--rabbitmq-host", default="127.0.0.1")
    p.add_argument("--rabbitmq-port", type=int, default=5672)
    p.add_argument("--no-rabbitmq", action="store_true", help="measure Leveret alone")
    p.add_argument("--ambench", help="path of a built ambench (default: ci/build_ambench.sh)")
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed per run")
    args = p.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    binary = args.ambench or build_ambench()

    rabbit = not args.no_rabbitmq and port_open(args.rabbitmq_host, args.rabbitmq_port)
    if not args.no_rabbitmq and not rabbit:
        print(f"no RabbitMQ on {args.rabbitmq_host}:{args.rabbitmq_port}: measuring Leveret "
              "alone (ci/install_rabbitmq.sh starts one)", file=sys.stderr)
    targets = {"leveret": ("127.0.0.1", free_port())}
    if rabbit:
        targets["rabbitmq"] = (args.rabbitmq_host, args.rabbitmq_port)

    print(f"{args.n} messages per run, {args.rounds} rounds, ambench {binary}")
    print(f"{'scenario':<12} {'leveret e2e/s':>14} {'rabbitmq e2e/s':>15} {'e2e ratio':>10} "
          f"{'publish ratio':>14}")
    try:
        with leveret(shlex.split(args.leveret_cmd), targets["leveret"][1]) as server:
            for name in scenarios:
                got: dict[str, list[tuple[float, float]]] = {t: [] for t in targets}
                for r in range(args.rounds):
                    order = list(targets) if r % 2 == 0 else list(reversed(targets))
                    for target in order:
                        if target == "leveret" and server.poll() is not None:
                            sys.exit(f"Leveret died (exit status {server.returncode})")
                        host, port = targets[target]
                        res = run_ambench(binary, host, port, SCENARIOS[name], args.n,
                                          args.timeout)
                        if res:
                            got[target].append(res)
                lev_e2e = median([e for e, _ in got["leveret"]])
                lev_pub = median([p for _, p in got["leveret"]])
                rmq_e2e = median([e for e, _ in got.get("rabbitmq", [])])
                rmq_pub = median([p for _, p in got.get("rabbitmq", [])])
                print(f"{name:<12} {cell(lev_e2e, 14)} {cell(rmq_e2e, 15)} "
                      f"{cell(lev_e2e / rmq_e2e, 10, '.2f', 'x')} "
                      f"{cell(lev_pub / rmq_pub, 14, '.2f', 'x')}", flush=True)
    finally:
        if rabbit:
            delete_queues(args.rabbitmq_host, args.rabbitmq_port, [QUEUE, DURABLE_QUEUE])
    return 0


if __name__ == "__main__":
    sys.exit(main())

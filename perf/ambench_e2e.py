"""End to end against other brokers: the rabbitmq-c load generator (../shared/tools/ambench.c)
run against Leveret, a local RabbitMQ and (optionally) garagemq in turn, with the same arguments.

    python perf/ambench_e2e.py                                  # every scenario, 3 rounds
    python perf/ambench_e2e.py --rounds 5 -s default -s "-a 0"  # some scenarios
    python perf/ambench_e2e.py --garagemq                       # garagemq too, started here
    python perf/ambench_e2e.py --garagemq 127.0.0.1:5673        # garagemq already running there
    python perf/ambench_e2e.py --no-rabbitmq                    # without RabbitMQ

Leveret is started here as ``python -m leveret --port N`` on a free port with a throw-away
``--data-dir`` (``--leveret-cmd`` replaces the command before ``--port``). RabbitMQ is expected on
localhost:5672 (``ci/install_rabbitmq.sh`` starts one); without it the others are measured. With
``--garagemq`` alone a garagemq (``garagemq --config FILE``) is started on free ports with its
own database directory; with ``--garagemq HOST:PORT`` that one is used. Each round runs every
broker back to back, the order rotating from round to round. Prints, per scenario, the median
end-to-end rate of each broker and Leveret's ratios to the others (above 1: Leveret is faster),
each ratio followed by the lowest and highest ratio of a single round, whose runs were seconds
apart (on a shared machine the rates drift by more than that from minute to minute); for the
latency scenario (``-r``) the median p50 and p99 instead. The table is Markdown. A broker whose
run fails or times out (``--timeout``) is not run again in that scenario. Before the table, a
line says how busy the machine was before the runs: the CPU pressure the kernel reports (the
share of time some task waited for a CPU, ``/proc/pressure/cpu``, over the last minute), the
load average and, where the kernel has it, its vCPU packing setting (``kernel.sched_vcpu_pack``).

Every scenario delivers about ``-n`` messages: ``-f 10`` (one publisher into a fanout exchange
bound to 10 queues, a consumer each) publishes n/10, each reaching all 10 queues (ambench's
end-to-end rate counts deliveries); ``10 pairs`` runs 10 ambench at once, each its own queue and
n/10 messages, and its rate is the 10 runs' messages over the wall time from starting the first
to the last one's exit. ``-r 10000`` publishes at 10k msg/s for n/10k seconds and reports the
latency percentiles of the consumer.

ambench publishes to and consumes from queues named after ``leveret-perf`` (durable
``leveret-perf-durable`` with ``-P 1``); each run purges its queues first, and they are deleted
from RabbitMQ (and a garagemq given by address) at the end.
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
PAIRS = 10
FANOUT = 10
SCENARIOS = {
    "default": [],  # ack every message, prefetch 1000, 16-byte bodies, no confirms
    "-a 0": ["-a", "0"],  # no-ack consumer
    "-a 1": ["-a", "1"],
    "-a 100": ["-a", "100"],  # multiple ack every 100
    "-s 1024": ["-s", "1024"],
    "-s 65536": ["-s", "65536"],
    "-c 100": ["-c", "100"],  # publisher confirms, at most 100 unconfirmed
    "-P 1 -c 100": ["-P", "1", "-c", "100"],  # durable queue, persistent messages, confirms
    f"-f {FANOUT}": ["-f", str(FANOUT)],  # fanout to 10 queues, a consumer each
    f"{PAIRS} pairs": [],  # 10 ambench runs at once, one queue each
    "-r 10000": ["-r", "10000"],  # latency at a fixed publish rate
}
QUEUE = "leveret-perf"
DURABLE_QUEUE = "leveret-perf-durable"  # a queue's durability is fixed when it is declared
RESULT = re.compile(r"e2e_msgs_per_s=(\d+) publish_msgs_per_s=(\d+)")
LATENCY = re.compile(r"p50_us=([\d.]+) p99_us=([\d.]+)")
GARAGEMQ_CONFIG = """\
proto: amqp-rabbit
users:
  - username: guest
    password: 084e0343a0486ff05530df6c705c8bb4 # md5 of "guest"
tcp:
  ip: 127.0.0.1
  port: {port}
  nodelay: false
  readBufSize: 196608
  writeBufSize: 196608
admin:
  ip: 127.0.0.1
  port: {admin_port}
queue:
  shardSize: 8192
  maxMessagesInRam: 131072
db:
  defaultPath: {db}
  engine: badger
vhost:
  defaultPath: /
security:
  passwordCheck: md5
connection:
  channelsMax: 4096
  frameMaxSize: 65536
"""


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


class Result:
    """One scenario run on one broker: end-to-end msg/s, and latency (us) with ``-r``."""

    def __init__(self, e2e: float, p50: float = float("nan"), p99: float = float("nan")):
        self.e2e, self.p50, self.p99 = e2e, p50, p99


def ambench_cmd(binary: str, host: str, port: int, args: list[str], n: int,
                queue: str) -> list[str]:
    return [binary, host, str(port), "-n", str(n), "-q", queue, *args]


def parse(cmd: list[str], out: subprocess.CompletedProcess | None,
          timeout: float) -> Result | None:
    if out is None:
        print(f"  ambench timed out after {timeout:.0f} s: {shlex.join(cmd)}", file=sys.stderr)
        return None
    m = RESULT.search(out.stdout)
    if not m:
        why = out.stderr.strip() or f"exit status {out.returncode}"
        print(f"  ambench failed ({why}): {shlex.join(cmd)}", file=sys.stderr)
        return None
    lat = LATENCY.search(out.stdout)
    if lat:
        return Result(float(m.group(1)), float(lat.group(1)), float(lat.group(2)))
    return Result(float(m.group(1)))


def run_one(binary: str, host: str, port: int, scenario: str, n: int,
            timeout: float) -> Result | None:
    """One scenario on one broker, or None with the reason on stderr."""
    args = SCENARIOS[scenario]
    if scenario == f"{PAIRS} pairs":
        return run_pairs(binary, host, port, n, timeout)
    if scenario == f"-f {FANOUT}":
        n = max(1, n // FANOUT)  # every message reaches 10 queues
    queue = DURABLE_QUEUE if "-P" in args else QUEUE
    cmd = ambench_cmd(binary, host, port, args, n, queue)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return parse(cmd, None, timeout)
    return parse(cmd, out, timeout)


def run_pairs(binary: str, host: str, port: int, n: int, timeout: float) -> Result | None:
    """10 ambench runs at once, queues leveret-perf.p0..p9: messages over the wall time."""
    each = max(1, n // PAIRS)
    cmds = [ambench_cmd(binary, host, port, [], each, f"{QUEUE}.p{i}") for i in range(PAIRS)]
    start = time.monotonic()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    ok = True
    for cmd, proc in zip(cmds, procs):
        try:
            stdout, stderr = proc.communicate(timeout=max(1.0, start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            parse(cmd, None, timeout)
            ok = False
            continue
        if parse(cmd, subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr),
                 timeout) is None:
            ok = False
    wall = time.monotonic() - start
    return Result(each * PAIRS / wall) if ok else None


def accepts_option(cmd: list[str], option: str) -> bool:
    out = subprocess.run(cmd + ["--help"], capture_output=True, text=True)
    return option in out.stdout


@contextlib.contextmanager
def started(name: str, cmd: list[str], port: int, log_path: str) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` (a broker listening on ``port``) for the duration, its output in a log."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not wait_port("127.0.0.1", port, proc, timeout=30):
                sys.exit(f"{name} did not start ({shlex.join(cmd)}):\n"
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
        print(f"{name} exited with {proc.returncode}; its log ends with:\n"
              f"{Path(log_path).read_text()[-3000:]}", file=sys.stderr)


@contextlib.contextmanager
def leveret(cmd: list[str], port: int) -> Iterator[subprocess.Popen]:
    """Leveret on ``port`` with a throw-away data directory."""
    with tempfile.TemporaryDirectory(prefix="leveret-perf-") as tmp:
        full = cmd + ["--port", str(port)]
        if accepts_option(cmd, "--data-dir"):
            full += ["--data-dir", os.path.join(tmp, "data")]
        with started("Leveret", full, port, os.path.join(tmp, "leveret.log")) as proc:
            yield proc


@contextlib.contextmanager
def garagemq(port: int) -> Iterator[subprocess.Popen]:
    """A garagemq of our own on ``port``, its database in a throw-away directory."""
    binary = shutil.which("garagemq")
    if binary is None:
        sys.exit("no garagemq on PATH (Debian: apt-get install garagemq)")
    with tempfile.TemporaryDirectory(prefix="garagemq-perf-") as tmp:
        config = os.path.join(tmp, "config.yaml")
        Path(config).write_text(GARAGEMQ_CONFIG.format(
            port=port, admin_port=free_port(), db=os.path.join(tmp, "db")))
        cmd = [binary, "--config", config, "--log-level", "error"]
        with started("garagemq", cmd, port, os.path.join(tmp, "garagemq.log")) as proc:
            yield proc


def queue_names() -> list[str]:
    return ([QUEUE, DURABLE_QUEUE] + [f"{QUEUE}.f{i}" for i in range(FANOUT)]
            + [f"{QUEUE}.p{i}" for i in range(PAIRS)])


def clean_up(name: str, host: str, port: int) -> None:
    """Leave a shared broker as found: drop the queues and exchange the runs declared."""
    try:
        import pika
    except ImportError:
        print(f"left queues {QUEUE}* on {name} (no pika to delete them)", file=sys.stderr)
        return
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters(host, port))
        try:
            for queue in queue_names():
                conn.channel().queue_delete(queue)
            conn.channel().exchange_delete(f"{QUEUE}.fanout")
        finally:
            conn.close()
    except Exception as exc:  # cleanup must not hide the results
        print(f"could not delete the {QUEUE}* queues on {name}: {exc}", file=sys.stderr)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cell(value: float, fmt: str = ".0f", suffix: str = "") -> str:
    return "-" if value != value else f"{value:{fmt}}{suffix}"  # NaN: nothing measured


def rate(value: float) -> str:
    return "-" if value != value else f"{value / 1000:.1f}k"


def round_ratios(rounds: list[dict[str, Result]], peer: str) -> list[float]:
    """Leveret's rate over ``peer``'s, for each round where both were measured."""
    return [r["leveret"].e2e / r[peer].e2e for r in rounds
            if "leveret" in r and peer in r and r[peer].e2e > 0]


def ratio_cell(ratio: float, per_round: list[float]) -> str:
    text = cell(ratio, ".2f", "x")
    if len(per_round) > 1:
        text += f" ({min(per_round):.2f}-{max(per_round):.2f})"
    return text


def machine_state() -> str:
    """How busy the machine is: CPU pressure over the last minute, the vCPU packing knob."""
    parts = [f"{os.cpu_count()} CPUs"]
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        avg60 = dict(f.split("=") for f in some.split()[1:])["avg60"]
        parts.append(f"CPU pressure {avg60}% (PSI some avg60)")
    except (OSError, IndexError, KeyError, ValueError):
        parts.append("CPU pressure unknown (no /proc/pressure/cpu)")
    pack = Path("/proc/sys/kernel/sched_vcpu_pack")
    with contextlib.suppress(OSError):
        parts.append(f"kernel.sched_vcpu_pack={pack.read_text().strip()}")
    parts.append(f"load average {os.getloadavg()[0]:.2f}")
    return ", ".join(parts)


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--rounds", type=int, default=3, help="runs of each broker per scenario")
    p.add_argument("-n", type=int, default=200_000, help="messages per scenario run")
    p.add_argument("-s", "--scenario", action="append", choices=list(SCENARIOS),
                   help="scenario to run (repeatable; default: all)")
    p.add_argument("--leveret-cmd", default=f"{shlex.quote(sys.executable)} -m leveret "
                   "--log-level warning --no-management --no-prometheus",
                   help="command starting Leveret, without --port (default: without the "
                        "management API and metrics; add --management-port 0 or "
                        "--prometheus-port 0 for them)")
    p.add_argument("--rabbitmq-host", default="127.0.0.1")
    p.add_argument("--rabbitmq-port", type=int, default=5672)
    p.add_argument("--no-rabbitmq", action="store_true", help="leave RabbitMQ out")
    p.add_argument("--garagemq", nargs="?", const="start", metavar="HOST:PORT",
                   help="compare with garagemq too: started here, or the one at HOST:PORT")
    p.add_argument("--ambench", help="path of a built ambench (default: ci/build_ambench.sh)")
    p.add_argument("--timeout", type=float, default=120, help="seconds allowed per run")
    args = p.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    binary = args.ambench or build_ambench()

    targets: dict[str, tuple[str, int]] = {"leveret": ("127.0.0.1", free_port())}
    shared: list[str] = []  # brokers we did not start: clean up after ourselves
    if args.garagemq == "start":
        targets["garagemq"] = ("127.0.0.1", free_port())
    elif args.garagemq:
        targets["garagemq"] = address(args.garagemq)
        shared.append("garagemq")
    if not args.no_rabbitmq:
        if port_open(args.rabbitmq_host, args.rabbitmq_port):
            targets["rabbitmq"] = (args.rabbitmq_host, args.rabbitmq_port)
            shared.append("rabbitmq")
        else:
            print(f"no RabbitMQ on {args.rabbitmq_host}:{args.rabbitmq_port}: left out "
                  "(ci/install_rabbitmq.sh starts one)", file=sys.stderr)
    peers = [t for t in targets if t != "leveret"]

    print(f"{args.n} messages per run, {args.rounds} rounds, ambench {binary}; "
          + ", ".join(f"{t} {h}:{port}" for t, (h, port) in targets.items()))
    print(f"machine: {machine_state()}")
    print()
    print("| scenario | " + " | ".join(targets) + " | "
          + " | ".join(f"leveret / {t}" for t in peers) + " |")
    print("|---" * (1 + len(targets) + len(peers)) + "|")
    try:
        with contextlib.ExitStack() as stack:
            procs = {"leveret": stack.enter_context(
                leveret(shlex.split(args.leveret_cmd), targets["leveret"][1]))}
            if args.garagemq == "start":
                procs["garagemq"] = stack.enter_context(garagemq(targets["garagemq"][1]))
            for name in scenarios:
                rounds: list[dict[str, Result]] = []  # each round: the brokers measured
                failed: set[str] = set()  # a broker that failed or stalled once is not retried
                for r in range(args.rounds):
                    rounds.append({})
                    shift = r % len(targets)
                    order = list(targets)[shift:] + list(targets)[:shift]
                    for target in order:
                        if target in failed:
                            continue
                        proc = procs.get(target)
                        if proc is not None and proc.poll() is not None:
                            sys.exit(f"{target} died (exit status {proc.returncode})")
                        host, port = targets[target]
                        res = run_one(binary, host, port, name, args.n, args.timeout)
                        if res:
                            rounds[-1][target] = res
                        else:
                            failed.add(target)
                got = {t: [r[t] for r in rounds if t in r] for t in targets}
                if name.startswith("-r "):
                    p50 = {t: median([x.p50 for x in got[t]]) for t in targets}
                    p99 = {t: median([x.p99 for x in got[t]]) for t in targets}
                    cells = [f"{cell(p50[t], '.0f')} / {cell(p99[t], '.0f')} us"
                             for t in targets]
                    ratios = [cell(p99[t] / p99["leveret"], ".2f", "x (p99)") for t in peers]
                else:
                    e2e = {t: median([x.e2e for x in got[t]]) for t in targets}
                    cells = [rate(e2e[t]) for t in targets]
                    ratios = [ratio_cell(e2e["leveret"] / e2e[t], round_ratios(rounds, t))
                              for t in peers]
                print(f"| `{name}` | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |",
                      flush=True)
    finally:
        for target in shared:
            clean_up(target, *targets[target])
    return 0


if __name__ == "__main__":
    sys.exit(main())

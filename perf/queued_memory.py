"""What a queued transient message costs: broker RSS growth per message in one queue.

    python perf/queued_memory.py                   # 500,000 messages of 16 bytes
    python perf/queued_memory.py -n 1000000 -s 100
    python perf/queued_memory.py --garagemq        # garagemq too

Each broker gets the same load into a new transient (non-durable) queue with no consumer:
transient messages (delivery_mode 1, as ambench sends them) published with publisher confirms
over a bare socket, all confirmed, then the queue's message count is checked. The broker's
RSS is read before the load and one second after; the difference over the message count is
the cost of one queued message (body included). Each broker is started here, fresh, so that
nothing else uses it: Leveret as ``python -m leveret`` on a free port without a data directory;
RabbitMQ as a private node (as ``startup.py`` runs it: its own name, ports and data directory,
no plugins; its RSS is the Erlang VM's); garagemq (``--garagemq``) with its own config.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/tests")
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from ambench_e2e import garagemq  # noqa: E402
from bench_recovery import free_port, wait_port  # noqa: E402
from startup import broker_rss_kib, private_rabbitmq  # noqa: E402

from rawamqp import RawClient  # noqa: E402

QUEUE = "leveret-queued-memory"


def rss_bytes(pid: int) -> int:
    return broker_rss_kib(pid) * 1024


def session(port: int) -> RawClient:
    c = RawClient("127.0.0.1", port, timeout=600)
    c.handshake(frame_max=65536)  # garagemq refuses more
    c.open_channel(1)
    return c


def load(port: int, n: int, size: int) -> int:
    """Publish ``n`` transient messages with confirms into a fresh queue; its message count."""
    c = session(port)
    c.send_method(1, spec.Queue.Declare(queue=QUEUE))
    c.recv_until(spec.Queue.DeclareOk)
    c.send_method(1, spec.Confirm.Select())
    c.recv_until(spec.Confirm.SelectOk)
    one = (pframe.marshal(spec.Basic.Publish(exchange="", routing_key=QUEUE), 1)
           + pframe.marshal(pheader.ContentHeader(0, size, spec.Basic.Properties(delivery_mode=1)),
                            1)
           + pframe.marshal(pframe.body.ContentBody(b"x" * size), 1))
    batch = 1000
    confirmed = sent = 0
    while sent < n:
        k = min(batch, n - sent)
        c.send(one * k)
        sent += k
        while sent - confirmed > 20 * batch or (sent == n and confirmed < n):
            _, frame = c.recv_frame()
            if isinstance(frame, spec.Basic.Ack):
                confirmed = frame.delivery_tag if frame.multiple else confirmed + 1
            elif isinstance(frame, spec.Basic.Nack):
                raise RuntimeError("publish nacked")
    c.send_method(1, spec.Queue.Declare(queue=QUEUE, passive=True))
    _, ok = c.recv_until(spec.Queue.DeclareOk)
    c.close()
    return int(ok.message_count)


def measure(pid: int, port: int, n: int, size: int) -> tuple[int, int]:
    """(idle RSS, RSS with n messages queued) in bytes."""
    idle = rss_bytes(pid)
    got = load(port, n, size)
    if got != n:
        raise RuntimeError(f"{got} messages queued, not {n}")
    time.sleep(1)
    return idle, rss_bytes(pid)


def leveret(n: int, size: int) -> tuple[int, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "--log-level", "warning",
                             "--no-management", "--no-prometheus",
                             "--port", str(port)])
    try:
        wait_port(port)
        return measure(proc.pid, port, n, size)
    finally:
        proc.terminate()
        proc.wait(60)


def rabbitmq(n: int, size: int) -> tuple[int, int] | None:
    if not shutil.which("rabbitmq-server"):
        return None
    with private_rabbitmq() as (env, port, stop):
        proc = subprocess.Popen(["rabbitmq-server"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_port(port)
            time.sleep(1)  # let the node settle before the idle figure
            return measure(proc.pid, port, n, size)
        finally:
            stop()
            proc.wait(120)


def garage(n: int, size: int) -> tuple[int, int]:
    port = free_port()
    with garagemq(port) as proc:
        return measure(proc.pid, port, n, size)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=500_000, help="messages")
    p.add_argument("-s", "--size", type=int, default=16, help="body bytes")
    p.add_argument("--no-rabbitmq", action="store_true")
    p.add_argument("--garagemq", action="store_true", help="measure garagemq too")
    args = p.parse_args()
    runs: dict[str, Callable[[int, int], tuple[int, int] | None]] = {"leveret": leveret}
    if args.garagemq:
        runs["garagemq"] = garage
    if not args.no_rabbitmq:
        runs["rabbitmq"] = rabbitmq
    print(f"{args.n} transient messages of {args.size} bytes queued")
    print(f"{'broker':<9} {'idle MiB':>9} {'queued MiB':>11} {'bytes/msg':>10}")
    for name, run in runs.items():
        got = run(args.n, args.size)
        if got is None:
            print(f"{name:<9} {'not installed':>9}")
            continue
        idle, used = got
        print(f"{name:<9} {idle / 2**20:>9.1f} {used / 2**20:>11.1f} "
              f"{(used - idle) / args.n:>10.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

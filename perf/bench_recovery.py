"""Recovery time for a million queued persistent messages: Leveret vs RabbitMQ.

    python perf/bench_recovery.py                  # 1,000,000 messages of 16 bytes
    python perf/bench_recovery.py -n 200000        # fewer

Each broker gets the same load: persistent messages (delivery_mode 2) published with confirms
into a durable queue, all confirmed. Then the broker is restarted and timed until a passive
queue.declare reports every message back:

- Leveret: SIGTERM, then ``python -m leveret --data-dir D`` is started again; the time runs
  from process start (so it includes the interpreter's start-up).
- RabbitMQ (localhost:5672, if running): ``rabbitmqctl stop_app`` then ``start_app``; the time
  runs from start_app (the Erlang VM stays up, which favours RabbitMQ).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time

from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/tests")
from rawamqp import RawClient  # noqa: E402

QUEUE = "leveret-recovery-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {port}")


def load(port: int, n: int, size: int) -> None:
    """Publish ``n`` persistent messages with confirms; return once all are confirmed."""
    c = RawClient("127.0.0.1", port, timeout=600)
    c.handshake()
    c.open_channel(1)
    c.send_method(1, spec.Queue.Declare(queue=QUEUE, durable=True))
    c.recv_until(spec.Queue.DeclareOk)
    c.send_method(1, spec.Queue.Purge(queue=QUEUE))
    c.recv_until(spec.Queue.PurgeOk)
    c.send_method(1, spec.Confirm.Select())
    c.recv_until(spec.Confirm.SelectOk)
    one = (pframe.marshal(spec.Basic.Publish(exchange="", routing_key=QUEUE), 1)
           + pframe.marshal(pheader.ContentHeader(0, size, spec.Basic.Properties(delivery_mode=2)),
                            1)
           + pframe.marshal(pframe.body.ContentBody(b"x" * size), 1))
    batch = 1000
    confirmed = 0
    sent = 0
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
    c.close()


def count(port: int) -> int:
    c = RawClient("127.0.0.1", port, timeout=600)
    c.handshake()
    c.open_channel(1)
    c.send_method(1, spec.Queue.Declare(queue=QUEUE, durable=True, passive=True))
    _, ok = c.recv_until(spec.Queue.DeclareOk)
    c.close()
    return int(ok.message_count)


def wait_count(port: int, n: int) -> None:
    while True:
        try:
            if count(port) >= n:
                return
        except (OSError, EOFError):
            pass
        time.sleep(0.01)


def leveret(n: int, size: int) -> float:
    with tempfile.TemporaryDirectory(prefix="leveret-recovery-") as data_dir:
        cmd = [sys.executable, "-m", "leveret", "--log-level", "warning", "--no-management",
               "--no-prometheus", "--data-dir", data_dir]
        port = free_port()
        proc = subprocess.Popen(cmd + ["--port", str(port)])
        try:
            wait_port(port)
            load(port, n, size)
        finally:
            proc.terminate()
            proc.wait(60)
        port = free_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd + ["--port", str(port)])
        try:
            wait_port(port)
            wait_count(port, n)
            return time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(60)


def rabbitmq(n: int, size: int) -> float | None:
    try:
        wait_port(5672, timeout=0.5)
    except RuntimeError:
        return None
    load(5672, n, size)
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    t0 = time.perf_counter()
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
    wait_port(5672)
    wait_count(5672, n)
    elapsed = time.perf_counter() - t0
    c = RawClient("127.0.0.1", 5672)
    c.handshake()
    c.open_channel(1)
    c.send_method(1, spec.Queue.Delete(queue=QUEUE))
    c.recv_until(spec.Queue.DeleteOk)
    c.close()
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1_000_000)
    p.add_argument("-s", "--size", type=int, default=16)
    args = p.parse_args()
    lev = leveret(args.n, args.size)
    print(f"leveret   recovered {args.n} persistent messages in {lev:.2f} s")
    rmq = rabbitmq(args.n, args.size)
    if rmq is None:
        print("no RabbitMQ on localhost:5672")
        return 0
    print(f"rabbitmq  recovered {args.n} persistent messages in {rmq:.2f} s")
    print(f"leveret/rabbitmq recovery time: {lev / rmq:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fair reading: the latency a modest client sees while another connection publishes flat out.

    python perf/fair_reading.py                     # Leveret (and RabbitMQ if it runs on 5672)
    python perf/fair_reading.py --no-rabbitmq
    python perf/fair_reading.py --seconds 20 --flooders 2
    python perf/fair_reading.py --leveret-cmd "python -m leveret --loop asyncio"

A probe publishes 200 messages a second to a queue it consumes from (no-ack) and times each
message from publish to delivery. It runs twice on each broker: alone (the baseline), then
while flooder processes publish 16-byte messages as fast as their sockets take them, without
confirms, into a queue capped at 10,000 messages (drop-head: the flood costs the broker
routing and queueing, but no memory grows). Printed per broker: the probe's p50, p99 and max
latency in each phase, the p99 increase, and the flood's rate (messages the broker took per
second, from the bytes the flooders wrote). Both probe and flooders are raw-socket clients,
so client libraries add no noise of their own.

Leveret runs as ``<leveret-cmd> --port N --in-memory``; RabbitMQ is the one on localhost:5672
(its queues here are named ``fair-reading-<pid>-*`` and deleted at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import shlex
import socket
import statistics
import struct
import subprocess
import sys
import time

from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
PROBE_RATE = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def publish_frames(routing_key: str, body: bytes) -> bytes:
    return (pframe.marshal(spec.Basic.Publish(exchange="", routing_key=routing_key), 1)
            + pframe.marshal(pheader.ContentHeader(0, len(body), spec.Basic.Properties()), 1)
            + pframe.marshal(pbody.ContentBody(body), 1))


class Frames:
    """Frames read off a blocking socket (for the flooder's handshake)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def next(self):
        while True:
            if self.buf:
                used, channel, frame = pframe.unmarshal(self.buf)
                if used:
                    self.buf = self.buf[used:]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk


def handshake(sock: socket.socket, vhost: str = "/") -> Frames:
    frames = Frames(sock)
    sock.sendall(PROTOCOL_HEADER)
    frames.next()
    sock.sendall(pframe.marshal(spec.Connection.StartOk(
        client_properties={"product": "fair_reading.py"}, mechanism="PLAIN",
        response="\0guest\0guest", locale="en_US"), 0))
    tune = frames.next()
    sock.sendall(pframe.marshal(spec.Connection.TuneOk(
        channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0), 0)
        + pframe.marshal(spec.Connection.Open(virtual_host=vhost), 0)
        + pframe.marshal(spec.Channel.Open(), 1))
    frames.next()
    frames.next()
    return frames


def flood(port: int, queue: str, stop, sent) -> None:
    """A flooder process: publish 16-byte messages until ``stop`` is set."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frames = handshake(sock)
    sock.sendall(pframe.marshal(spec.Queue.Declare(
        queue=queue, arguments={"x-max-length": 10000}), 1))
    frames.next()
    one = publish_frames(queue, b"f" * 16)
    chunk = one * (65536 // len(one))
    per_chunk = 65536 // len(one)
    count = 0
    while not stop.is_set():
        sock.sendall(chunk)
        count += per_chunk
    sent.value = count
    sock.close()


async def probe(port: int, queue: str, seconds: float) -> list[float]:
    """Latencies (ms) of PROBE_RATE messages a second for ``seconds``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""

    async def next_frame():
        nonlocal buf
        while True:
            if buf:
                used, _ch, frame = pframe.unmarshal(buf)
                if used:
                    buf = buf[used:]
                    return frame
            data = await reader.read(65536)
            if not data:
                raise EOFError
            buf += data

    writer.write(PROTOCOL_HEADER)
    await next_frame()
    writer.write(pframe.marshal(spec.Connection.StartOk(
        client_properties={"product": "fair_reading.py probe"}, mechanism="PLAIN",
        response="\0guest\0guest", locale="en_US"), 0))
    tune = await next_frame()
    writer.write(pframe.marshal(spec.Connection.TuneOk(
        channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0), 0)
        + pframe.marshal(spec.Connection.Open(virtual_host="/"), 0)
        + pframe.marshal(spec.Channel.Open(), 1)
        + pframe.marshal(spec.Queue.Declare(queue=queue, auto_delete=True), 1)
        + pframe.marshal(spec.Basic.Consume(queue=queue, no_ack=True), 1))
    for _ in range(4):
        await next_frame()
    latencies: list[float] = []
    total = int(seconds * PROBE_RATE)

    async def receive() -> None:
        while len(latencies) < total:
            frame = await next_frame()
            if isinstance(frame, pbody.ContentBody):
                sent_at = struct.unpack(">d", frame.value)[0]
                latencies.append((time.perf_counter() - sent_at) * 1000)

    receiver = asyncio.ensure_future(receive())
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / PROBE_RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(publish_frames(queue, struct.pack(">d", time.perf_counter())))
    try:
        await asyncio.wait_for(receiver, 30)
    except asyncio.TimeoutError:
        print(f"  probe: only {len(latencies)} of {total} messages came back", file=sys.stderr)
    writer.close()
    return latencies


def run_broker(port: int, seconds: float, flooders: int, tag: str) -> dict[str, float]:
    queue = f"fair-reading-{tag}"
    base = asyncio.run(probe(port, queue + "-probe", seconds))
    stop = mp.Event()
    sent = [mp.Value("q", 0) for _ in range(flooders)]
    procs = [mp.Process(target=flood, args=(port, f"{queue}-flood{i}", stop, sent[i]))
             for i in range(flooders)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # the flood is under way
    started = time.perf_counter()
    loaded = asyncio.run(probe(port, queue + "-probe", seconds))
    stop.set()
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join(30)
    rate = sum(s.value for s in sent) / (elapsed + 1.0)
    return {"p50": pct(base, 50), "p99": pct(base, 99), "max": max(base),
            "flood p50": pct(loaded, 50), "flood p99": pct(loaded, 99),
            "flood max": max(loaded), "flood rate": rate}


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if p < 100 \
        else max(values)


def rabbitmq_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    p.add_argument("--flooders", type=int, default=1, help="flooding connections")
    p.add_argument("--leveret-cmd",
                   default=f"{shlex.quote(sys.executable)} -m leveret --no-management "
                   "--no-prometheus")
    p.add_argument("--no-rabbitmq", action="store_true")
    args = p.parse_args()
    results: dict[str, dict[str, float]] = {}
    port = free_port()
    proc = subprocess.Popen(shlex.split(args.leveret_cmd) + [
        "--port", str(port), "--host", "127.0.0.1", "--in-memory", "--log-level", "warning"],
        start_new_session=True)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        results["Leveret"] = run_broker(port, args.seconds, args.flooders, "leveret")
    finally:
        proc.terminate()
        proc.wait(10)
    if not args.no_rabbitmq and rabbitmq_running():
        tag = f"{mp.current_process().pid}"
        results["RabbitMQ"] = run_broker(5672, args.seconds, args.flooders, tag)
        for q in (f"fair-reading-{tag}-flood{i}" for i in range(args.flooders)):
            subprocess.run(["rabbitmqctl", "-q", "delete_queue", q], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"\nprobe latency, ms ({PROBE_RATE} msg/s, {args.seconds:g} s per phase, "
          f"{args.flooders} flooder(s))")
    print(f"{'broker':<10} {'p50':>7} {'p99':>7} {'max':>7} | {'flood p50':>9} {'flood p99':>9} "
          f"{'flood max':>9} | {'p99 +ms':>7} | {'flood msg/s':>11}")
    for name, r in results.items():
        print(f"{name:<10} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['max']:>7.1f} | "
              f"{r['flood p50']:>9.2f} {r['flood p99']:>9.2f} {r['flood max']:>9.1f} | "
              f"{r['flood p99'] - r['p99']:>7.2f} | {r['flood rate']:>11,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

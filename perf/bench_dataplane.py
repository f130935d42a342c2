"""The per-message data plane in one process, without sockets: CPU per message.

A publisher connection and a consumer connection of an in-process broker are fed prebuilt
frames (100 publishes per step, then the consumer's acks) through ``buffer_updated`` as the
event loop's transport would; their writes go to a transport that only counts bytes. What is
timed is everything Leveret does per message between its socket reads and its socket writes:
frame splitting, publish assembly, routing, queueing, delivery encoding, acknowledgements and
the event loop's turns. No kernel, no client, no other process, and it times the process's CPU
time, not the wall clock: the figures repeat run to run far better than end-to-end rates on a
shared machine, so this is the benchmark to compare two builds of the data plane
(``--compare-to``, or one run per build with ``-o`` and ``python -m pyperf compare_to``).

    python perf/bench_dataplane.py --fast
    python perf/bench_dataplane.py --fast -b ack -b noack   # chosen scenarios
    LEVERET_NO_EXTENSIONS=1 python perf/bench_dataplane.py --fast   # the pure-Python twins

Scenarios: ``ack`` (manual ack of each message, prefetch 1000), ``noack``, ``multiack``
(one multiple ack per 100), ``confirm`` (publisher confirms), ``1k`` and ``64k`` (bodies of
1 KiB and 64 KiB, ack each), ``fanout`` (a fanout exchange bound to 10 queues, one consumer
each, no-ack). Values are per message published.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any

import pyperf
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

from leveret.connection import Connection
from leveret.server import Server
from leveret.settings import Settings

BATCH = 100
# basic.ack: frame type 1, channel 1, size 13, class 60, method 80, tag, multiple, frame end
_ACK = struct.Struct(">BHIHHQBB")
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's, as the broker runs on it (asyncio's where uvloop is missing)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class CountingTransport(asyncio.Transport):
    """A transport that takes writes and counts them; reading is the harness's job."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False
        self.paused = False  # the connection paused reading: feed() waits for it

    def write(self, data: Any) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("peername", "sockname"):
            return ("127.0.0.1", 5672)
        return default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def marshal(channel: int, *methods: Any) -> bytes:
    return b"".join(pframe.marshal(m, channel) for m in methods)


def feed(conn: Connection, data: bytes, turn: Any = None) -> None:
    """Hand ``data`` to the connection as the loop does: get_buffer, copy, buffer_updated;
    while the connection has paused reading (more than READ_BUDGET came in one go), loop
    turns (``turn``) run until it reads again, as a socket would wait."""
    view = memoryview(data)
    transport = conn.transport
    while view:
        while turn is not None and transport.paused:
            turn()
        buf = conn.get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        conn.buffer_updated(n)
        view = view[n:]


def handshake(conn: Connection) -> None:
    feed(conn, PROTOCOL_HEADER)
    feed(conn, marshal(0, spec.Connection.StartOk(
        client_properties={"capabilities": {"publisher_confirms": True}},
        mechanism="PLAIN", response="\0guest\0guest", locale="en_US")))
    feed(conn, marshal(0, spec.Connection.TuneOk(channel_max=2047, frame_max=131072,
                                                  heartbeat=0)))
    feed(conn, marshal(0, spec.Connection.Open(virtual_host="/")))
    feed(conn, marshal(1, spec.Channel.Open()))


class Scenario:
    def __init__(self, name: str, size: int = 16, no_ack: bool = False, ack_every: int = 1,
                 confirm: bool = False, fanout: int = 0) -> None:
        self.name, self.size, self.no_ack = name, size, no_ack
        self.ack_every, self.confirm, self.fanout = ack_every, confirm, fanout


SCENARIOS = {
    "ack": Scenario("ack"),
    "noack": Scenario("noack", no_ack=True),
    "multiack": Scenario("multiack", ack_every=100),
    "confirm": Scenario("confirm", confirm=True),
    "1k": Scenario("1k", size=1024),
    "64k": Scenario("64k", size=65536),
    "fanout": Scenario("fanout", no_ack=True, fanout=10),
}


class Bench:
    """One broker, a publisher and consumers, set up for a scenario."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.loop = new_event_loop()
        asyncio.set_event_loop(self.loop)
        settings = Settings(consumer_timeout=None)
        self.server = Server(settings, self.loop)
        self.server.create_defaults()
        self.pub = self._connect()
        queues = [f"q{i}" for i in range(max(sc.fanout, 1))]
        setup = []
        if sc.fanout:
            setup.append(spec.Exchange.Declare(exchange="fan", exchange_type="fanout"))
        for q in queues:
            setup.append(spec.Queue.Declare(queue=q))
            if sc.fanout:
                setup.append(spec.Queue.Bind(queue=q, exchange="fan"))
        if sc.confirm:
            setup.append(spec.Confirm.Select())
        feed(self.pub, marshal(1, *setup))
        self.consumers = []
        for q in queues:
            c = self._connect()
            feed(c, marshal(1, spec.Basic.Qos(prefetch_count=1000),
                            spec.Basic.Consume(queue=q, no_ack=sc.no_ack)))
            self.consumers.append(c)
        self._run_turn()
        props = spec.Basic.Properties(delivery_mode=1)
        one = (pframe.marshal(spec.Basic.Publish(exchange="fan" if sc.fanout else "",
                                                 routing_key="" if sc.fanout else "q0"), 1)
               + pframe.marshal(pheader.ContentHeader(0, sc.size, props), 1)
               + pframe.marshal(_body(sc.size), 1))
        self.publishes = one * BATCH
        self.tag = 0

    def _connect(self) -> Connection:
        conn = Connection(self.server)
        conn.connection_made(CountingTransport())
        handshake(conn)
        return conn

    def _run_turn(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))

    def acks(self, steps: int) -> list[bytes]:
        """The consumer's acks for the next ``steps`` steps, made before they are timed."""
        sc = self.sc
        out = []
        for _ in range(steps):
            first = self.tag + 1
            self.tag += BATCH
            if sc.no_ack:
                out.append(b"")
            elif sc.ack_every == 1:
                tags = range(first, self.tag + 1)
                out.append(b"".join(_ACK.pack(1, 1, 13, 60, 80, t, 0, 0xCE) for t in tags))
            else:
                tags = range(first + sc.ack_every - 1, self.tag + 1, sc.ack_every)
                out.append(b"".join(_ACK.pack(1, 1, 13, 60, 80, t, 1, 0xCE) for t in tags))
        return out

    def step(self, acks: bytes) -> None:
        feed(self.pub, self.publishes, self._run_turn)
        self._run_turn()
        while self.pub.transport.paused:  # the rest of a batch over READ_BUDGET
            self._run_turn()
        if acks:
            for c in self.consumers:
                feed(c, acks, self._run_turn)
            self._run_turn()

    def check(self) -> None:
        """Every message published so far reached its consumers: nothing waits in a queue,
        nothing is out for acknowledgement, and each consumer was written to."""
        for name, queue in self.server.vhosts["/"].queues.items():
            if queue.message_count or queue.unacked:
                raise RuntimeError(f"{name}: {queue.message_count} ready, "
                                   f"{queue.unacked} unacked: the harness is broken")
        for c in self.consumers:
            transport = c.transport
            assert isinstance(transport, CountingTransport)
            if transport.written < 20 * BATCH * self.sc.size:
                raise RuntimeError("a consumer got less than the bodies published")

    def close(self) -> None:
        for conn in [self.pub, *self.consumers]:
            conn.connection_lost(None)
        self.loop.close()


def _body(size: int) -> Any:
    from pamqp import body as pbody

    return pbody.ContentBody(b"x" * size)




def time_scenario(loops: int, name: str) -> float:
    logging.disable(logging.CRITICAL)  # the connections' open and close lines
    bench = Bench(SCENARIOS[name])
    for acks in bench.acks(20):  # warm up: the queue's consumers, caches, buffers
        bench.step(acks)
    bench.check()
    steps = bench.acks(loops)
    t0 = time.process_time()
    for acks in steps:
        bench.step(acks)
    elapsed = time.process_time() - t0
    bench.close()
    return elapsed


def main() -> None:
    def forward(cmd: list[str], args: Any) -> None:  # the chosen scenarios, to the workers
        for name in args.bench:
            cmd.extend(("-b", name))

    runner = pyperf.Runner(add_cmdline_args=forward)
    runner.argparser.add_argument("-b", "--bench", action="append", default=[],
                                  choices=sorted(SCENARIOS), help="scenario (repeatable)")
    args = runner.parse_args()
    for name in args.bench or list(SCENARIOS):
        runner.bench_time_func(f"dataplane {name}", time_scenario, name, inner_loops=BATCH)


if __name__ == "__main__":
    main()

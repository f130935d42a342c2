"""Read pacing (connection.py, PACE_BELOW): a client streaming small writes faster than
PACE_RATE has its socket left unread for a timer tick after a small read, so what it sends
meanwhile is read in one go. Pacing must never lose, reorder or strand a message, must not
touch a client below the rate, and must get along with a memory alarm blocking the publisher.

Whether a pause happened is seen through the loop the connections schedule on: the broker's
loop wrapped so that call_later is recorded (a paced connection asks to read again PACE_DELAY
later through its _next_turn). The publishers are separate processes, so their writes are not
slowed by the broker's loop sharing a GIL with them, and send at a set pace the pure-Python
build keeps up with too.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from leveret import connection as connection_module

TESTS = Path(__file__).parent

# A publisher in its own process: handshake, declare, then COUNT publishes of SIZE-byte bodies
# (its number, padded), one send() per message (TCP_NODELAY), one every INTERVAL seconds
# (busy-waiting below a millisecond); in confirm mode if asked (the confirms are not read).
PUBLISHER = r"""
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from pamqp import commands as spec, frame as pframe, header as pheader, body as pbody
from rawamqp import RawClient
port, queue, count, size, interval = (int(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                                      int(sys.argv[5]), float(sys.argv[6]))
client = RawClient("127.0.0.1", port)
client.handshake()
client.open_channel(1)
if sys.argv[7] == "confirm":
    client.send_method(1, spec.Confirm.Select())
    client.recv_until(spec.Confirm.SelectOk)
client.send_method(1, spec.Queue.Declare(queue=queue))
client.recv_until(spec.Queue.DeclareOk)
client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
head = pframe.marshal(spec.Basic.Publish(exchange="", routing_key=queue), 1)
head += pframe.marshal(pheader.ContentHeader(0, size, spec.Basic.Properties()), 1)
pad = b"." * (size - 16)
start = time.perf_counter()
for i in range(count):
    client.sock.sendall(head + pframe.marshal(pbody.ContentBody(b"%016d" % i + pad), 1))
    if interval >= 0.001:
        time.sleep(interval)
    else:
        while time.perf_counter() < start + (i + 1) * interval:
            pass
# a round trip: every publish before it has been handled
client.send_method(1, spec.Queue.Declare(queue=queue, passive=True))
client.recv_until(spec.Queue.DeclareOk)
print("sent", flush=True)
client.sock.recv(1)  # hold the connection open until killed
"""


class RecordingLoop:
    """The broker's loop, with every call_later recorded as (delay, callback)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.later: list[tuple[float, Any]] = []

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.later.append((delay, callback))
        return self._loop.call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    def pauses(self) -> int:
        return sum(1 for delay, cb in self.later
                   if delay == connection_module.PACE_DELAY
                   and getattr(cb, "__name__", "") == "_next_turn")


@pytest.fixture
async def paced_broker(abroker):
    server = abroker._server
    recording = RecordingLoop(server.loop)
    server.loop = recording  # new connections take their loop from the server
    yield abroker, recording


async def _publish(port: int, queue: str, count: int, size: int,
                   interval: float, confirm: bool = False) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(TESTS), str(port), queue, str(count), str(size),
         str(interval), "confirm" if confirm else "plain"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
    assert line.strip() == "sent", f"publisher failed (exit {proc.poll()})"
    return proc


async def _drain(url: str, queue: str, count: int) -> list[int]:
    conn = await aio_pika.connect(url)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=1000)
    q = await ch.declare_queue(queue, passive=True)
    got: list[int] = []
    async with q.iterator(no_ack=True) as it:
        async for message in it:
            got.append(int(message.body[:16]))
            if len(got) == count:
                break
    await conn.close()
    return got


async def test_a_fast_small_writer_is_paced_and_every_message_arrives_in_order(paced_broker):
    broker, loop = paced_broker
    # one 800-byte message every 70 us: ~12 MB/s (above PACE_RATE), each read one message
    # (below PACE_BELOW) as long as the broker keeps up, which it does at 14k messages/s
    count = 20000
    proc = await _publish(broker.port, "pacing-fast", count, 800, 0.00007)
    try:
        assert await _drain(broker.url, "pacing-fast", count) == list(range(count))
        assert loop.pauses() > 0  # its reads were small and its rate high: it was paced
    finally:
        proc.kill()
        proc.wait()


async def test_a_fast_writer_in_confirm_mode_is_not_paced(paced_broker):
    """The same stream with publisher confirms on: each read carries publishes whose confirms
    the client waits for (with a window, as ambench -c 100 does), so none of them is paused."""
    broker, loop = paced_broker
    count = 20000
    proc = await _publish(broker.port, "pacing-confirm", count, 800, 0.00007, confirm=True)
    try:
        assert await _drain(broker.url, "pacing-confirm", count) == list(range(count))
        # at most one: the read of the passive declare it sends after its publishes carries no
        # publish, from a connection still over the rate (the plain stream: ~1000 pauses)
        assert loop.pauses() <= 1
    finally:
        proc.kill()
        proc.wait()


async def test_a_slow_writer_is_never_paced(paced_broker):
    broker, loop = paced_broker
    # 300 messages of 800 bytes a millisecond or more apart: under 1 MB/s, below PACE_RATE
    proc = await _publish(broker.port, "pacing-slow", 300, 800, 0.001)
    try:
        assert await _drain(broker.url, "pacing-slow", 300) == list(range(300))
        assert loop.pauses() == 0
    finally:
        proc.kill()
        proc.wait()


async def test_pacing_and_a_memory_alarm_together_lose_nothing(paced_broker):
    broker, loop = paced_broker
    memory = broker._server.vhosts["/"].memory
    count = 20000
    stream = asyncio.ensure_future(_publish(broker.port, "pacing-alarm", count, 800, 0.00007))
    # the alarm goes on and off while the publisher streams: blocked and paced at once
    blocked_seen = 0
    for _ in range(20):
        memory.set_alarm("memory")
        await asyncio.sleep(0.005)
        blocked_seen += bool(memory.blocked)  # its next publish blocked it
        memory.clear_alarm("memory")
        await asyncio.sleep(0.005)
    proc = await stream
    try:
        assert await _drain(broker.url, "pacing-alarm", count) == list(range(count))
        assert blocked_seen > 0 and loop.pauses() > 0
        assert not memory.alarms and not memory.blocked
    finally:
        proc.kill()
        proc.wait()

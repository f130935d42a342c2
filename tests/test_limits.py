"""The memory high watermark (rabbitmq.com/docs/memory, /docs/connection-blocked), with the
``queued`` memory calculation strategy, which makes it deterministic (test_resource_alarms.py
has the default, the process's RSS).

Above ``memory_high_watermark`` bytes of queued message bodies, a connection that publishes is
blocked: it gets connection.blocked if it declared that capability, and nothing more is read
from it until usage falls back (connection.unblocked). Connections that only consume keep
working, and they are what brings usage down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aio_pika
import pika
import pytest
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

from leveret import Broker
from leveret.broker import ThreadedBroker

from rawamqp import PROTOCOL_HEADER, RawClient

pytestmark = pytest.mark.leveret_only  # RabbitMQ's watermark is a share of RAM, not bytes

LIMIT = 1000


@pytest.fixture
def small_broker() -> Iterator[ThreadedBroker]:
    with Broker.in_thread(memory_high_watermark=LIMIT, memory_calculation_strategy="queued") as b:
        yield b


def raw_publisher(broker, blocked_capability: bool = True, heartbeat: int = 0) -> RawClient:
    client = RawClient(broker.host, broker.port)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    caps = {"connection.blocked": blocked_capability}
    client.send_method(0, spec.Connection.StartOk(
        client_properties={"product": "rawamqp", "capabilities": caps},
        mechanism="PLAIN", response="\0guest\0guest", locale="en_US"))
    _, tune = client.recv_until(spec.Connection.Tune)
    client.send_method(0, spec.Connection.TuneOk(channel_max=tune.channel_max,
                                                 frame_max=tune.frame_max, heartbeat=heartbeat))
    client.send_method(0, spec.Connection.Open(virtual_host="/"))
    client.recv_until(spec.Connection.OpenOk)
    client.open_channel(1)
    return client


def publish(client: RawClient, queue: str, body: bytes) -> None:
    client.send(pframe.marshal(spec.Basic.Publish(exchange="", routing_key=queue), 1)
                + pframe.marshal(pheader.ContentHeader(0, len(body), spec.Basic.Properties()), 1)
                + (pframe.marshal(pbody.ContentBody(body), 1) if body else b""))


def next_frame(client: RawClient):
    """The next frame that is not a heartbeat."""
    while True:
        _, frame = client.recv_frame()
        if frame.name != "Heartbeat":
            return frame


def fill_up(broker, queue: str = "heavy") -> pika.BlockingConnection:
    """A queue over the watermark, filled by a connection that is then closed."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"x" * (LIMIT + 1))
    conn.close()
    return conn


def drain_with_new_connection(broker, queue: str = "heavy") -> list[bytes]:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    out = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append(body)
    conn.close()
    return out


def test_publisher_gets_blocked_and_is_not_read_until_unblocked(small_broker):
    fill_up(small_broker)
    pub = raw_publisher(small_broker)
    publish(pub, "heavy", b"tips the alarm")
    assert isinstance(next_frame(pub), spec.Connection.Blocked)
    # not read while blocked: this declare waits in the socket
    pub.send_method(1, spec.Queue.Declare(queue="declared-while-blocked"))
    assert drain_with_new_connection(small_broker) == [b"x" * (LIMIT + 1), b"tips the alarm"]
    assert isinstance(next_frame(pub), spec.Connection.Unblocked)
    assert isinstance(next_frame(pub), spec.Queue.DeclareOk)  # read again, only now
    pub.close()


def test_publisher_without_the_capability_is_paused_silently(small_broker):
    fill_up(small_broker)
    pub = raw_publisher(small_broker, blocked_capability=False)
    publish(pub, "heavy", b"tips the alarm")
    pub.send_method(1, spec.Queue.Declare(queue="declared-while-blocked"))
    conn = pika.BlockingConnection(pika.URLParameters(small_broker.url))
    ch = conn.channel()
    # the declare was not read: the queue does not exist yet
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("declared-while-blocked", passive=True)
    assert info.value.reply_code == 404
    conn.close()
    drain_with_new_connection(small_broker)
    assert isinstance(next_frame(pub), spec.Queue.DeclareOk)  # no connection.unblocked
    pub.close()


def test_consumers_keep_working_while_publishers_are_blocked(small_broker):
    fill_up(small_broker)
    blocked = []
    pub = pika.BlockingConnection(pika.URLParameters(small_broker.url))
    pub.add_on_connection_blocked_callback(lambda *a: blocked.append(True))
    pub_ch = pub.channel()
    pub_ch.basic_publish("", "heavy", b"second")
    for _ in range(200):
        if blocked:
            break
        pub.process_data_events(time_limit=0.05)
    assert blocked
    cons = pika.BlockingConnection(pika.URLParameters(small_broker.url))
    ch = cons.channel()
    got: list[bytes] = []
    ch.basic_consume("heavy", lambda c, m, p, body: got.append(body), auto_ack=True)
    for _ in range(200):
        if len(got) == 2:
            break
        cons.process_data_events(time_limit=0.05)
    assert got == [b"x" * (LIMIT + 1), b"second"]
    cons.close()
    pub.close()


def test_purge_and_delete_release_memory(small_broker):
    for action in ("purge", "delete"):
        fill_up(small_broker)
        pub = raw_publisher(small_broker)
        publish(pub, "heavy", b"y")
        assert isinstance(next_frame(pub), spec.Connection.Blocked)
        conn = pika.BlockingConnection(pika.URLParameters(small_broker.url))
        getattr(conn.channel(), f"queue_{action}")("heavy")
        conn.close()
        assert isinstance(next_frame(pub), spec.Connection.Unblocked), action
        pub.close()


def test_alarm_clears_when_memory_falls_after_the_blocked_publisher_left(small_broker):
    """Nobody is blocked while the queue drains: the next publisher must not find a stale
    alarm."""
    fill_up(small_broker)
    # a blocked connection is not read, so its close is not seen until a write fails: the
    # heartbeats make one (RabbitMQ's reader waits for a heartbeat send failure too)
    pub = raw_publisher(small_broker, heartbeat=1)
    publish(pub, "heavy", b"tips the alarm")
    assert isinstance(next_frame(pub), spec.Connection.Blocked)
    [blocked] = small_broker.call(lambda: list(small_broker.broker._server.memory.blocked))
    pub.close()
    small_broker._result(small_broker._submit(asyncio.wait_for(blocked.closed.wait(), 20)))
    assert len(drain_with_new_connection(small_broker)) == 2
    second = raw_publisher(small_broker)
    publish(second, "heavy", b"small")
    second.send_method(1, spec.Queue.Declare(queue="heavy", passive=True))
    ok = next_frame(second)
    assert isinstance(ok, spec.Queue.DeclareOk) and ok.message_count == 1
    second.close()


def test_dead_lettering_moves_memory_to_the_target_queue(small_broker):
    conn = pika.BlockingConnection(pika.URLParameters(small_broker.url))
    ch = conn.channel()
    ch.queue_declare("parking")
    ch.queue_declare("short-lived", arguments={"x-message-ttl": 10,
                                               "x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": "parking"})
    ch.basic_publish("", "short-lived", b"z" * (LIMIT + 1))
    small_broker.wait_for_messages("parking", 1)
    pub = raw_publisher(small_broker)
    publish(pub, "short-lived", b"")
    assert isinstance(next_frame(pub), spec.Connection.Blocked)  # still held, by "parking"
    ch.queue_purge("parking")
    assert isinstance(next_frame(pub), spec.Connection.Unblocked)
    pub.close()
    conn.close()


def test_blocked_connection_survives_its_heartbeat_timeout(small_broker):
    """Nothing is read from a blocked connection, so missing heartbeats must not kill it."""
    fill_up(small_broker)
    pub = raw_publisher(small_broker, heartbeat=1)
    publish(pub, "heavy", b"y")
    heartbeats = 0
    while heartbeats < 7:  # > 3 s of blocked silence, past the 2-interval timeout
        _, frame = pub.recv_frame()
        if frame.name == "Heartbeat":
            heartbeats += 1
        else:
            assert isinstance(frame, spec.Connection.Blocked)
    drain_with_new_connection(small_broker)
    assert isinstance(next_frame(pub), spec.Connection.Unblocked)
    pub.close()


async def test_aio_pika_publish_waits_for_unblock():
    async with Broker(memory_high_watermark=LIMIT,
                      memory_calculation_strategy="queued") as broker:
        pub = await aio_pika.connect(broker.url)
        cons = await aio_pika.connect(broker.url)
        async with pub, cons:
            pch = await pub.channel()
            await pch.declare_queue("heavy")
            await pch.default_exchange.publish(aio_pika.Message(b"x" * (LIMIT + 1)), "heavy")
            await pch.default_exchange.publish(aio_pika.Message(b"second"), "heavy")
            third = asyncio.ensure_future(
                pch.default_exchange.publish(aio_pika.Message(b"third"), "heavy"))
            cch = await cons.channel()
            # a round trip on the consumer connection: the broker is answering it...
            queue = await cch.declare_queue("heavy", passive=True)
            # ...but has not taken the third publish from the blocked connection
            assert broker.queue("heavy").messages == 2
            got = []
            async with queue.iterator(no_ack=True) as it:
                async for message in it:
                    got.append(message.body)
                    if len(got) == 3:
                        break
            await asyncio.wait_for(third, 10)
            assert got == [b"x" * (LIMIT + 1), b"second", b"third"]

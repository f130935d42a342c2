"""consumer_timeout (rabbitmq.com/docs/consumers#acknowledgement-timeout): a delivery left
unacknowledged longer than the timeout closes its channel with 406 and RabbitMQ's text, and the
message is requeued. On by default (30 minutes), ``--consumer-timeout MS``, and per queue with
``x-consumer-timeout`` (RabbitMQ 3.12+).

Leveret only: the shared RabbitMQ 3.10 cannot be given a short timeout (it is configuration, and
3.10 has no per-queue argument). The expected text is rabbit_channel's. Each test awaits the
channel's close; none asserts how long it took.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pika
import pika.exceptions
import pytest

from leveret import Broker
from leveret.cli import parse_args

pytestmark = pytest.mark.leveret_only


def timeout_text(channel: int, ms: int) -> str:
    return (f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. "
            f"Timeout value used: {ms} ms. This timeout value can be configured, see consumers "
            "doc guide to learn more")


def test_unacked_delivery_closes_the_channel_and_is_requeued():
    with Broker.in_thread(consumer_timeout=200) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("work")
        ch.basic_publish("", "work", b"job")
        got = []
        ch.basic_consume("work", lambda c, m, p, body: got.append(body))  # never acks
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.start_consuming()  # returns when the broker closes the channel
        assert got == [b"job"]
        assert (info.value.reply_code, info.value.reply_text) == (406, timeout_text(1, 200))
        other = conn.channel()  # the connection is fine; the message is back, redelivered
        method, _, body = other.basic_get("work", auto_ack=True)
        assert (body, method.redelivered) == (b"job", True)
        conn.close()


async def test_aio_pika_channel_close_event_and_redelivery():
    async with Broker(consumer_timeout=150) as broker:
        conn = await aio_pika.connect(broker.url)
        slow = await conn.channel()
        closed: asyncio.Future = asyncio.get_running_loop().create_future()
        slow.close_callbacks.add(lambda _ch, exc: closed.done() or closed.set_result(exc))
        queue = await slow.declare_queue("tasks")
        await slow.default_exchange.publish(aio_pika.Message(b"t1"), "tasks")
        first = asyncio.get_running_loop().create_future()

        async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            first.set_result(message.body)  # and never acknowledge it

        await queue.consume(hold)
        assert await asyncio.wait_for(first, 10) == b"t1"
        exc = await asyncio.wait_for(closed, 10)
        assert isinstance(exc, aio_pika.exceptions.ChannelPreconditionFailed)
        assert timeout_text(slow.number, 150) in str(exc)

        fresh = await conn.channel()
        again = await (await fresh.get_queue("tasks")).get(timeout=5)
        assert (again.body, again.redelivered) == (b"t1", True)
        await again.ack()
        await conn.close()


def test_acked_deliveries_and_other_channels_are_left_alone():
    """Two channels start together: the one that acks what it gets stays open after the
    other one's unacked delivery timed out."""
    with Broker.in_thread(consumer_timeout=200) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        diligent, idle = conn.channel(), conn.channel()
        diligent.queue_declare("acked")
        idle.queue_declare("held")
        diligent.basic_publish("", "acked", b"a")
        idle.basic_publish("", "held", b"h")
        diligent.basic_consume("acked", lambda c, m, p, b: c.basic_ack(m.delivery_tag))
        idle.basic_consume("held", lambda c, m, p, b: None)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            idle.start_consuming()  # both channels' deliveries flow until this one closes
        assert info.value.reply_text == timeout_text(idle.channel_number, 200)
        assert diligent.is_open
        diligent.basic_publish("", "acked", b"b")  # and it still works
        assert diligent.queue_declare("acked", passive=True).method.message_count in (0, 1)
        conn.close()


def test_basic_get_with_manual_ack_times_out_too():
    with Broker.in_thread(consumer_timeout=200) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("got")
        ch.basic_publish("", "got", b"g")
        assert ch.basic_get("got")[2] == b"g"  # not acked
        ch.queue_declare("idle")
        ch.basic_consume("idle", lambda c, m, p, b: None)  # so that start_consuming waits
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.start_consuming()
        assert info.value.reply_code == 406
        assert conn.channel().basic_get("got", auto_ack=True)[2] == b"g"
        conn.close()


def test_per_queue_x_consumer_timeout_overrides_the_broker_wide_one():
    with Broker.in_thread(consumer_timeout=0) as broker:  # no broker-wide timeout
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        patient, strict = conn.channel(), conn.channel()
        patient.queue_declare("no-timeout")
        strict.queue_declare("strict", arguments={"x-consumer-timeout": 250})
        patient.basic_publish("", "no-timeout", b"p")
        strict.basic_publish("", "strict", b"s")
        patient.basic_consume("no-timeout", lambda c, m, p, b: None)
        strict.basic_consume("strict", lambda c, m, p, b: None)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            strict.start_consuming()
        assert info.value.reply_text == timeout_text(strict.channel_number, 250)
        assert patient.is_open
        conn.close()


def test_one_consumer_cannot_time_out_without_the_others_being_requeued():
    """The close requeues every unacknowledged delivery of the channel, from all its
    consumers (rabbitmq.com/docs/consumers#acknowledgement-timeout)."""
    with Broker.in_thread(consumer_timeout=200) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        for q in ("q1", "q2"):
            ch.queue_declare(q)
            ch.basic_publish("", q, q.encode())
            ch.basic_consume(q, lambda c, m, p, b: None)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.start_consuming()
        check = conn.channel()
        assert [check.queue_declare(q, passive=True).method.message_count
                for q in ("q1", "q2")] == [1, 1]
        conn.close()


def test_stream_consumers_time_out_too():
    """RabbitMQ 3.x counts a stream's unacknowledged deliveries like any other."""
    with Broker.in_thread(consumer_timeout=200) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("log", durable=True, arguments={"x-queue-type": "stream"})
        ch.basic_publish("", "log", b"entry")
        ch.basic_qos(prefetch_count=10)
        got = []
        ch.basic_consume("log", lambda c, m, p, b: got.append(b),
                         arguments={"x-stream-offset": "first"})
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.start_consuming()
        assert got == [b"entry"]
        assert info.value.reply_text == timeout_text(1, 200)
        conn.close()


def test_default_is_thirty_minutes_and_the_flag_sets_it():
    assert Broker().settings.consumer_timeout == 1_800_000
    assert parse_args([]).consumer_timeout == 1_800_000
    assert parse_args(["--consumer-timeout", "60000"]).consumer_timeout == 60_000

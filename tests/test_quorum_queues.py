"""Quorum queues (``x-queue-type: quorum``) as a client sees them, on Leveret and on the local
RabbitMQ 3.10 with the same assertions (the ``target`` fixture): declaration rules, refused and
accepted arguments, ``x-delivery-count``, where returned messages go, ``x-delivery-limit`` and
dead-lettering, and what quorum queues do not support. Where 3.10 and 3.13 differ (the header
on a first basic.get), Leveret follows 3.13 and the test says so."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pika
import pika.exceptions
import pytest

from leveret import Broker

QUORUM = {"x-queue-type": "quorum"}


def connect(target) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(target.url))


def unique(prefix: str = "qq") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def closed_by(target, action) -> tuple[str, int, str]:
    """Run ``action(channel)``; how the broker closed it: ("channel" | "connection", code,
    text)."""
    conn = connect(target)
    try:
        action(conn.channel())
    except pika.exceptions.ChannelClosedByBroker as exc:
        return "channel", exc.reply_code, exc.reply_text
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return "connection", exc.reply_code, exc.reply_text
    finally:
        if conn.is_open:
            conn.close()
    raise AssertionError("the broker did not refuse it")


def drain(ch, queue: str) -> list[tuple[str, int | None, bool]]:
    """(body, x-delivery-count, redelivered) of each message, taken with basic.get."""
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body.decode(), (props.headers or {}).get("x-delivery-count"),
                    method.redelivered))


def quorum_queue(ch, arguments: dict | None = None) -> str:
    name = unique()
    ch.queue_declare(name, durable=True, arguments={**QUORUM, **(arguments or {})})
    return name


def publish(ch, queue: str, *bodies: str) -> None:
    for body in bodies:
        ch.basic_publish("", queue, body.encode())


def wait_ready(conn, ch, queue: str, count: int) -> None:
    """A quorum queue takes a publish asynchronously in RabbitMQ: wait until it counts it."""
    for _ in range(400):
        if ch.queue_declare(queue, passive=True).method.message_count >= count:
            return
        conn.process_data_events(time_limit=0.025)
    raise AssertionError(f"{queue} never held {count} messages")


# ---------------------------------------------------------------- declaring


@pytest.mark.parametrize("durable, exclusive, auto_delete, refused", [
    (False, False, False, "non-durable"),
    (True, True, False, "exclusive-owner"),
    (True, False, True, "auto-delete"),
    (False, True, True, "auto-delete"),  # RabbitMQ checks auto-delete first
])
def test_quorum_queues_are_durable_not_exclusive_not_auto_delete(target, durable, exclusive,
                                                                  auto_delete, refused):
    name = unique()
    assert closed_by(target, lambda ch: ch.queue_declare(
        name, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
        arguments=QUORUM)) == (
        "channel", 406, f"PRECONDITION_FAILED - invalid property '{refused}' for queue "
                        f"'{name}' in vhost '{target.vhost}'")


def test_a_quorum_queue_cannot_be_server_named(target):
    assert closed_by(target, lambda ch: ch.queue_declare("", durable=True, arguments=QUORUM)) == (
        "channel", 406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type "
                        "rabbit_quorum_queue")


@pytest.mark.parametrize("argument, value", [
    ("x-max-priority", 5), ("x-queue-mode", "lazy"), ("x-queue-version", 2),
    ("x-queue-master-locator", "min-masters"), ("x-max-age", "1D"),
])
def test_arguments_a_quorum_queue_refuses(target, argument, value):
    name = unique()
    assert closed_by(target, lambda ch: ch.queue_declare(
        name, durable=True, arguments={**QUORUM, argument: value})) == (
        "channel", 406, f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '{name}' in "
                        f"vhost '{target.vhost}' of queue type rabbit_quorum_queue")


@pytest.mark.parametrize("argument, value", [
    ("x-delivery-limit", 3), ("x-dead-letter-strategy", "at-least-once"),
    ("x-max-in-memory-length", 5), ("x-quorum-initial-group-size", 3),
])
def test_quorum_arguments_a_classic_queue_refuses(target, argument, value):
    name = unique("classic")
    assert closed_by(target, lambda ch: ch.queue_declare(name, arguments={argument: value})) == (
        "channel", 406, f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '{name}' in "
                        f"vhost '{target.vhost}' of queue type rabbit_classic_queue")


def test_arguments_a_quorum_queue_takes(target):
    conn = connect(target)
    ch = conn.channel()
    for arguments in ({"x-delivery-limit": 3}, {"x-dead-letter-strategy": "at-least-once",
                                                "x-overflow": "reject-publish"},
                      {"x-overflow": "reject-publish-dlx"}, {"x-message-ttl": 60000},
                      {"x-expires": 60000}, {"x-max-length": 10, "x-max-length-bytes": 1000},
                      {"x-max-in-memory-length": 5, "x-max-in-memory-bytes": 500},
                      {"x-single-active-consumer": True}, {"x-quorum-initial-group-size": 3},
                      {"x-queue-leader-locator": "balanced"}, {"x-anything-else": 1}):
        name = quorum_queue(ch, arguments)
        ch.queue_delete(name)
    conn.close()
    name = unique()
    assert closed_by(target, lambda ch: ch.queue_declare(
        name, durable=True, arguments={**QUORUM, "x-dead-letter-strategy": "sometimes"})) == (
        "channel", 406, f"PRECONDITION_FAILED - invalid arg 'x-dead-letter-strategy' for queue "
                        f"'{name}' in vhost '{target.vhost}': invalid_dlx_strategy")


def test_redeclaring_a_quorum_queue(target):
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch, {"x-delivery-limit": 5})
    ch.queue_declare(name, durable=True, arguments={**QUORUM, "x-delivery-limit": 5})
    ch.queue_declare(name, passive=True)
    classic = unique("classic")
    ch.queue_declare(classic, arguments={"x-queue-type": "classic"})
    ch.queue_declare(classic)  # absent is classic
    conn.close()
    assert closed_by(target, lambda ch: ch.queue_declare(name, durable=True)) == (
        "channel", 406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue "
                        f"'{name}' in vhost '{target.vhost}': received none but current is "
                        "the value 'quorum' of type 'longstr'")
    assert closed_by(target, lambda ch: ch.queue_declare(
        name, durable=True, arguments={**QUORUM, "x-delivery-limit": 6})) == (
        "channel", 406, f"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue "
                        f"'{name}' in vhost '{target.vhost}': received '6' but current is '5'")


# ---------------------------------------------------------------- delivery counts and order


def test_delivery_count_header_and_redelivered_flag(target):
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch)
    publish(ch, name, "m")
    wait_ready(conn, ch, name, 1)
    seen = []

    def on_message(c, method, props, body):
        seen.append(((props.headers or {}).get("x-delivery-count"), method.redelivered))
        if len(seen) < 3:
            c.basic_nack(method.delivery_tag, requeue=True)
        else:
            c.basic_ack(method.delivery_tag)
            c.stop_consuming()

    ch.basic_consume(name, on_message)
    ch.start_consuming()
    assert seen == [(None, False), (1, True), (2, True)]
    conn.close()


def test_first_basic_get_header(target):
    """3.10 sends x-delivery-count 0 to a first basic.get; 3.13 sends none, as Leveret."""
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch)
    publish(ch, name, "m")
    wait_ready(conn, ch, name, 1)
    first = drain(ch, name)
    assert first == [("m", 0 if target.is_rabbitmq else None, False)]
    conn.close()


def test_a_nacked_message_goes_to_the_back(target):
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch)
    publish(ch, name, "0", "1", "2", "3")
    wait_ready(conn, ch, name, 4)
    taken = [ch.basic_get(name) for _ in range(3)]
    ch.basic_nack(taken[2][0].delivery_tag, requeue=True)
    ch.basic_reject(taken[0][0].delivery_tag, requeue=True)
    ch.basic_ack(taken[1][0].delivery_tag)
    wait_ready(conn, ch, name, 3)
    assert [(body, count) for body, count, _ in drain(ch, name)] == [
        ("3", 0 if target.is_rabbitmq else None), ("2", 1), ("0", 1)]
    conn.close()


def test_recover_sends_them_to_the_back_and_a_closing_channel_to_the_front(target):
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch)
    publish(ch, name, "0", "1", "2", "3", "4")
    wait_ready(conn, ch, name, 5)
    other = conn.channel()
    other.basic_get(name)  # 0
    other.basic_get(name)  # 1
    other.basic_recover(requeue=True)  # back: 2 3 4 0 1
    wait_ready(conn, ch, name, 5)
    closing = conn.channel()
    assert [closing.basic_get(name)[2] for _ in range(2)] == [b"2", b"3"]
    closing.close()  # returned to the front, in delivery order: 2 3 4 0 1
    wait_ready(conn, ch, name, 5)
    assert [(body, count) for body, count, _ in drain(ch, name)] == [
        ("2", 1), ("3", 1), ("4", 0 if target.is_rabbitmq else None), ("0", 1), ("1", 1)]
    conn.close()


def test_with_a_delivery_limit_returns_go_to_the_front_in_return_order(target):
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch, {"x-delivery-limit": 5})
    publish(ch, name, "0", "1", "2", "3")
    wait_ready(conn, ch, name, 4)
    taken = [ch.basic_get(name) for _ in range(3)]
    ch.basic_nack(taken[2][0].delivery_tag, requeue=True)
    ch.basic_nack(taken[0][0].delivery_tag, requeue=True)
    ch.basic_ack(taken[1][0].delivery_tag)
    wait_ready(conn, ch, name, 3)
    assert [body for body, _, _ in drain(ch, name)] == ["2", "0", "3"]
    conn.close()


def test_past_the_delivery_limit_a_message_is_dead_lettered(target):
    conn = connect(target)
    ch = conn.channel()
    dlq = unique("dlq")
    ch.queue_declare(dlq, durable=True)
    name = quorum_queue(ch, {"x-delivery-limit": 1, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", name, b"poison", pika.BasicProperties(headers={"app": "x"}))
    wait_ready(conn, ch, name, 1)
    for expected_count in (None, 1):
        method, props, _ = ch.basic_get(name)
        assert (props.headers or {}).get("x-delivery-count") in (expected_count, 0)
        ch.basic_nack(method.delivery_tag, requeue=True)
    wait_ready(conn, ch, dlq, 1)
    assert ch.queue_declare(name, passive=True).method.message_count == 0
    method, props, body = ch.basic_get(dlq, auto_ack=True)
    headers = props.headers
    assert body == b"poison" and headers["app"] == "x"
    assert "x-delivery-count" not in headers  # added on delivery, never dead-lettered
    death = headers["x-death"][0]
    assert {k: death[k] for k in ("count", "reason", "queue", "exchange", "routing-keys")} == {
        "count": 1, "reason": "delivery_limit", "queue": name, "exchange": "",
        "routing-keys": [name]}
    assert (headers["x-first-death-reason"], headers["x-first-death-queue"]) == (
        "delivery_limit", name)
    conn.close()


def test_a_closing_channel_counts_against_the_delivery_limit(target):
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch, {"x-delivery-limit": 0})  # no dead-letter exchange: dropped
    publish(ch, name, "once")
    wait_ready(conn, ch, name, 1)
    holder = conn.channel()
    assert holder.basic_get(name)[2] == b"once"
    holder.close()
    publish(ch, name, "marker")
    wait_ready(conn, ch, name, 1)
    assert [body for body, _, _ in drain(ch, name)] == ["marker"]
    conn.close()


def test_reject_publish_dlx_acts_as_drop_head(target):
    conn = connect(target)
    ch = conn.channel()
    name = quorum_queue(ch, {"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    ch.confirm_delivery()
    publish(ch, name, "first", "second")  # both confirmed: nothing is refused
    wait_ready(conn, ch, name, 1)
    assert [body for body, _, _ in drain(ch, name)] == ["second"]
    conn.close()


# ---------------------------------------------------------------- what quorum queues refuse


def test_global_qos_is_not_supported(target):
    def consume(ch):
        name = quorum_queue(ch)
        ch.basic_qos(prefetch_count=5, global_qos=True)
        ch.basic_consume(name, lambda *a: None)

    kind, code, text = closed_by(target, consume)
    assert (kind, code) == ("connection", 540)
    assert text.startswith("NOT_IMPLEMENTED - queue 'qq-") and text.endswith(
        f"' in vhost '{target.vhost}' does not support global qos")


@pytest.mark.parametrize("flag", ["if-unused", "if-empty"])
def test_delete_if_unused_or_if_empty_is_not_supported(target, flag):
    name = unique()

    def delete(ch):
        ch.queue_declare(name, durable=True, arguments=QUORUM)
        ch.queue_delete(name, if_unused=flag == "if-unused", if_empty=flag == "if-empty")

    assert closed_by(target, delete) == (
        "connection", 540, f"NOT_IMPLEMENTED - cannot delete queue '{name}' in vhost "
                           f"'{target.vhost}'. queue.delete operations with {flag} flag set are "
                           "not supported by quorum queues")
    conn = connect(target)
    conn.channel().queue_delete(name)
    conn.close()


async def test_aio_pika_work_queue_with_a_delivery_limit(target):
    conn = await aio_pika.connect(target.url)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=1)
    dlq = await ch.declare_queue(unique("dlq"), durable=True)
    queue = await ch.declare_queue(unique(), durable=True, arguments={
        **QUORUM, "x-delivery-limit": 2, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dlq.name})
    await ch.default_exchange.publish(aio_pika.Message(b"flaky"), queue.name)
    counts: list[int | None] = []
    dead = asyncio.get_running_loop().create_future()

    async def worker(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        counts.append(message.headers.get("x-delivery-count"))
        await message.nack(requeue=True)

    async def on_dead(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        dead.set_result(message.headers["x-death"][0]["reason"])

    await queue.consume(worker)
    await dlq.consume(on_dead, no_ack=True)
    assert await asyncio.wait_for(dead, 10) == "delivery_limit"
    assert counts == [None, 1, 2]
    await conn.close()


# ---------------------------------------------------------------- durability (Leveret only)


@pytest.mark.leveret_only
def test_transient_messages_in_a_quorum_queue_survive_a_restart(tmp_path):
    """RabbitMQ keeps every message of a quorum queue in its Raft log, persistent or not."""
    for _ in range(2):
        with Broker.in_thread(data_dir=str(tmp_path)) as broker:
            conn = pika.BlockingConnection(pika.URLParameters(broker.url))
            ch = conn.channel()
            if not broker.queues():
                ch.queue_declare("kept", durable=True, arguments=QUORUM)
                ch.queue_declare("classic", durable=True)
                ch.confirm_delivery()
                for q in ("kept", "classic"):
                    ch.basic_publish("", q, b"transient",
                                     pika.BasicProperties(delivery_mode=1))
                conn.close()
                continue
            assert ch.basic_get("kept", auto_ack=True)[2] == b"transient"
            assert ch.basic_get("classic", auto_ack=True)[0] is None
            conn.close()

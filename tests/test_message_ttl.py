"""Per-message TTL of 0 and expiry at the head, as a client sees them.

RabbitMQ removes expired messages at the head of a queue only (rabbitmq.com/docs/ttl): a
message published with ``expiration: "0"`` behind others stays in the queue, counted and
subject to length limits, until it reaches the head. These use only AMQP, so
``LEVERET_TEST_TARGET=rabbitmq`` runs them against RabbitMQ too (bar the one marked
``leveret_only``). Nothing here waits for time to pass: "0" expires as soon as the message is
at the head, "600000" never within a test.
"""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from test_deadletter import dlx_setup, get_one
from test_delivery import Inbox
from test_exchanges import drain

ZERO = pika.BasicProperties(expiration="0")
LONG = pika.BasicProperties(expiration="600000")


def count(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


@pytest.fixture
def confirming(connection):
    """A channel in confirm mode: once a publish is confirmed its queue has taken it, so a
    message count read next is exact on RabbitMQ as well."""
    ch = connection.channel()
    ch.confirm_delivery()
    return ch


def test_zero_ttl_message_waits_behind_the_head(connection, confirming):
    ch = confirming
    dead = dlx_setup(ch, "behind")
    ch.basic_publish("", "behind", b"a")
    ch.basic_publish("", "behind", b"zero", ZERO)
    ch.basic_publish("", "behind", b"b", LONG)
    assert count(ch, "behind") == 3
    assert count(ch, dead) == 0
    assert ch.basic_get("behind", auto_ack=True)[2] == b"a"
    # now at the head, it expires: dead-lettered, never delivered
    _, props, body = get_one(connection, ch, dead)
    assert body == b"zero"
    death = props.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["original-expiration"]) == (
        "expired", "behind", "0")
    assert drain(ch, "behind") == [b"b"]


def test_zero_ttl_message_alone_expires_at_once(confirming):
    ch = confirming
    ch.queue_declare("alone")
    ch.basic_publish("", "alone", b"zero", ZERO)
    assert count(ch, "alone") == 0
    assert ch.basic_get("alone", auto_ack=True)[0] is None


def test_zero_ttl_message_reaches_a_waiting_consumer(connection, channel):
    channel.queue_declare("waiting")
    inbox = Inbox()
    channel.basic_consume("waiting", inbox, auto_ack=True)
    channel.basic_publish("", "waiting", b"now", ZERO)
    assert [x[1] for x in inbox.wait(connection, 1)] == [b"now"]


def test_dead_letters_of_expired_messages_keep_queue_order(connection, confirming):
    ch = confirming
    dead = dlx_setup(ch, "order")
    ch.basic_publish("", "order", b"short", pika.BasicProperties(expiration="30"))
    ch.basic_publish("", "order", b"zero", ZERO)
    ch.basic_publish("", "order", b"kept", LONG)
    ch.basic_publish("", "order", b"behind-kept", ZERO)
    letters = [get_one(connection, ch, dead)[2] for _ in range(2)]
    assert letters == [b"short", b"zero"]
    assert count(ch, "order") == 2  # behind-kept waits for kept to leave
    assert ch.basic_get("order", auto_ack=True)[2] == b"kept"
    assert get_one(connection, ch, dead)[2] == b"behind-kept"
    assert count(ch, "order") == 0


def test_zero_ttl_message_counts_against_max_length(confirming):
    ch = confirming
    ch.queue_declare("limited", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.basic_publish("", "limited", b"a")
    ch.basic_publish("", "limited", b"zero", ZERO)
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", "limited", b"b")
    assert count(ch, "limited") == 2
    assert drain(ch, "limited") == [b"a"]


def test_drop_head_then_expires_the_zero_ttl_message_left_at_the_head(connection, confirming):
    ch = confirming
    dead = dlx_setup(ch, "drophead", **{"x-max-length": 1, "x-overflow": "drop-head"})
    ch.basic_publish("", "drophead", b"a")
    ch.basic_publish("", "drophead", b"zero", ZERO)
    deaths = []
    for _ in range(2):
        _, props, body = get_one(connection, ch, dead)
        deaths.append((body, props.headers["x-death"][0]["reason"]))
    assert deaths == [(b"a", "maxlen"), (b"zero", "expired")]
    assert count(ch, "drophead") == 0


def test_zero_ttl_message_behind_a_full_consumer(connection, confirming):
    """With the consumer's prefetch full, a message that is not the head waits; it expires
    when the delivery ahead of it frees its place at the head."""
    ch = confirming
    dead = dlx_setup(ch, "full")
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=1)
    inbox = Inbox()
    consumer.basic_consume("full", inbox)
    ch.basic_publish("", "full", b"first")
    (first,) = inbox.wait(connection, 1)
    ch.basic_publish("", "full", b"a", LONG)
    ch.basic_publish("", "full", b"zero", ZERO)
    ch.basic_publish("", "full", b"b")
    assert count(ch, "full") == 3
    consumer.basic_ack(first[0])
    assert [x[1] for x in inbox.wait(connection, 2)][1] == b"a"
    assert get_one(connection, ch, dead)[2] == b"zero"
    assert count(ch, "full") == 1


@pytest.mark.leveret_only
def test_expired_head_of_a_priority_queue_is_never_delivered(confirming):
    """A TTL-0 message of a higher priority than those waiting becomes the head and expires at
    once. RabbitMQ 3.10 delivers it instead (it checks expiry after a publish only when the
    queue held one message), against its own rule that expired messages are not delivered."""
    ch = confirming
    ch.queue_declare("prio-zero", arguments={"x-max-priority": 3})
    ch.basic_publish("", "prio-zero", b"low", pika.BasicProperties(priority=1))
    ch.basic_publish("", "prio-zero", b"high", pika.BasicProperties(priority=3, expiration="0"))
    assert count(ch, "prio-zero") == 1
    assert drain(ch, "prio-zero") == [b"low"]


def test_basic_get_expires_the_new_head_before_the_next_method(broker, confirming):
    """basic.get takes the head and, at once, expires what is then at the head: a count sent
    in the same write as the get does not see it (RabbitMQ's fetch drops it before replying)."""
    from pamqp import commands as spec
    from pamqp import frame as pframe

    from test_delivery import raw_client

    confirming.queue_declare("pipelined")
    for body, props in ((b"a", None), (b"zero", ZERO), (b"b", None)):
        confirming.basic_publish("", "pipelined", body, props)
    client = raw_client(broker)
    try:
        client.send(pframe.marshal(spec.Basic.Get(queue="pipelined", no_ack=True), 1)
                    + pframe.marshal(spec.Queue.Declare(queue="pipelined", passive=True), 1))
        client.recv_until(spec.Basic.GetOk)
        _, ok = client.recv_until(spec.Queue.DeclareOk)
    finally:
        client.close()
    assert ok.message_count == 1

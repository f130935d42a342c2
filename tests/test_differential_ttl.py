"""Differential tests of per-message and queue TTL against a real RabbitMQ 3.10.

What RabbitMQ does (rabbitmq.com/docs/ttl, and what these scenarios show of it): a message
expires only at the head of its queue, so one published with ``expiration: "0"`` behind others
stays (it counts in message_count and against length limits) until it reaches the head, where
it is dropped or dead-lettered; one published to an empty queue with a consumer able to take it
is delivered. No scenario depends on timing: a message either must not expire in the test's
lifetime (600 s) or expires as soon as it reaches the head (``"0"``), or the test waits for its
dead letter.
"""

from __future__ import annotations

import pika
import pytest

import test_differential
from test_differential import (
    fresh,
    fresh_exchange,
    outcome,
    pump_until,
    run_both,
    wait_get,
)

# the module-scoped RabbitMQ vhost fixture, shared with test_differential's scenarios
rabbitmq_shared_vhost_url = test_differential.rabbitmq_shared_vhost_url

LONG = pika.BasicProperties(expiration="600000")
ZERO = pika.BasicProperties(expiration="0")


def count(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def dead_letters(conn, ch, queue: str, n: int) -> list[tuple[bytes, str, str | None, int]]:
    """The next ``n`` dead letters in ``queue``, in order: body, reason, original expiration,
    and how many x-death entries the message carries."""
    out = []
    for _ in range(n):
        _, props, body = wait_get(conn, ch, queue)
        death = props.headers["x-death"]
        out.append((body, death[0]["reason"], death[0].get("original-expiration"), len(death)))
    return out


def confirming(conn):
    """A channel in confirm mode: a confirmed publish has been handled by its queues, so the
    counts read after it are exact on RabbitMQ too (queue.declare's stat call would otherwise
    overtake the publishes still in the queue's mailbox)."""
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def with_dlx(ch, prefix: str) -> tuple[str, str]:
    """A fanout dead-letter exchange and the queue bound to it."""
    dlx = fresh_exchange(ch, f"{prefix}-dlx", "fanout")
    dead = fresh(ch, f"{prefix}-dead")
    ch.queue_bind(dead, dlx)
    return dlx, dead


def scenario_zero_behind_the_head(conn):
    ch = confirming(conn)
    dlx, dead = with_dlx(ch, "t-behind")
    q = fresh(ch, "t-behind", **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"z0", ZERO)
    ch.basic_publish("", q, b"b", LONG)
    ch.basic_publish("", q, b"z1", ZERO)
    ch.basic_publish("", q, b"z2", ZERO)
    ch.basic_publish("", q, b"c")
    counts = [count(ch, q), count(ch, dead)]
    got = [ch.basic_get(q, auto_ack=True)[2]]
    counts.append(count(ch, q))  # z0 went when it reached the head
    got.append(ch.basic_get(q, auto_ack=True)[2])
    counts.append(count(ch, q))
    got.append(ch.basic_get(q, auto_ack=True)[2])
    got.append(ch.basic_get(q, auto_ack=True)[0])
    return counts, got, dead_letters(conn, ch, dead, 3)


def scenario_zero_without_dlx(conn):
    ch = confirming(conn)
    q = fresh(ch, "t-nodlx")
    ch.basic_publish("", q, b"z-first", ZERO)  # alone: dropped at once
    first = count(ch, q)
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"z", ZERO)
    ch.basic_publish("", q, b"b")
    second = count(ch, q)
    return first, second, ch.basic_get(q, auto_ack=True)[2], count(ch, q), \
        ch.basic_get(q, auto_ack=True)[2], count(ch, q)


def scenario_dead_letter_order(conn):
    ch = confirming(conn)
    dlx, dead = with_dlx(ch, "t-order")
    q = fresh(ch, "t-order", **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="30"))
    ch.basic_publish("", q, b"zero", ZERO)
    ch.basic_publish("", q, b"zero-again", ZERO)
    ch.basic_publish("", q, b"kept", LONG)
    ch.basic_publish("", q, b"after", ZERO)
    letters = dead_letters(conn, ch, dead, 3)
    return letters, count(ch, q), ch.basic_get(q, auto_ack=True)[2], count(ch, q)


def scenario_zero_and_length_limits(conn):
    ch = confirming(conn)
    dlx, dead = with_dlx(ch, "t-len")
    drop = fresh(ch, "t-len-drop", **{"x-max-length": 1, "x-overflow": "drop-head",
                                       "x-dead-letter-exchange": dlx})
    ch.basic_publish("", drop, b"a")
    ch.basic_publish("", drop, b"z", ZERO)  # pushes a out, then is the head: expired
    first = count(ch, drop), dead_letters(conn, ch, dead, 2)
    drop2 = fresh(ch, "t-len-drop2", **{"x-max-length": 2, "x-overflow": "drop-head",
                                         "x-dead-letter-exchange": dlx})
    for body, props in ((b"a", None), (b"z", ZERO), (b"b", None), (b"c", None)):
        ch.basic_publish("", drop2, body, props)
    second = count(ch, drop2), dead_letters(conn, ch, dead, 2), \
        ch.basic_get(drop2, auto_ack=True)[2]
    reject = fresh(ch, "t-len-reject", **{"x-max-length": 2, "x-overflow": "reject-publish"})
    seen = [outcome(lambda body=body, props=props: ch.basic_publish("", reject, body, props))
            for body, props in ((b"a", None), (b"z", ZERO), (b"b", None))]
    third = seen, count(ch, reject), ch.basic_get(reject, auto_ack=True)[2], count(ch, reject)
    by_bytes = fresh(ch, "t-len-bytes", **{"x-max-length-bytes": 4,
                                            "x-overflow": "reject-publish"})
    seen = [outcome(lambda body=body, props=props: ch.basic_publish("", by_bytes, body, props))
            for body, props in ((b"aa", None), (b"zz", ZERO), (b"b", None))]
    return first, second, third, (seen, count(ch, by_bytes))


def scenario_queue_ttl_zero(conn):
    ch = confirming(conn)
    dlx, dead = with_dlx(ch, "t-qzero")
    q = fresh(ch, "t-qzero", **{"x-message-ttl": 0, "x-dead-letter-exchange": dlx})
    for body in (b"1", b"2", b"3"):
        ch.basic_publish("", q, body, LONG if body == b"2" else None)
    first = count(ch, q), dead_letters(conn, ch, dead, 3)
    plain = fresh(ch, "t-qzero-plain", **{"x-message-ttl": 0})
    ch.basic_publish("", plain, b"x")
    # a consumer that can take them gets them, while it has room
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=2)
    got: list[tuple[bytes, str | None]] = []
    tags: list[int] = []

    def on_message(c, m, p, b):
        got.append((b, p.expiration))
        tags.append(m.delivery_tag)

    consumer.basic_consume(q, on_message)
    for body, props in ((b"c1", None), (b"c2", ZERO), (b"c3", LONG), (b"c4", None)):
        ch.basic_publish("", q, body, props)
    pump_until(conn, lambda: len(got) >= 2)
    second = list(got), count(ch, q), dead_letters(conn, ch, dead, 2)
    # requeued to the head of a TTL-0 queue: expired there
    consumer.basic_nack(tags[-1], multiple=True, requeue=True)
    third = dead_letters(conn, ch, dead, 2), count(ch, q)
    return first, count(ch, plain), second, third


def scenario_zero_with_consumers(conn):
    ch = confirming(conn)
    dlx, dead = with_dlx(ch, "t-cons")
    q = fresh(ch, "t-cons", **{"x-dead-letter-exchange": dlx})
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=1)
    got: list[tuple[bytes, str | None]] = []
    tags: list[int] = []

    def on_message(c, m, p, b):
        got.append((b, p.expiration))
        tags.append(m.delivery_tag)

    consumer.basic_consume(q, on_message)
    ch.basic_publish("", q, b"first", ZERO)  # a consumer can take it: delivered
    pump_until(conn, lambda: len(got) >= 1)
    ch.basic_publish("", q, b"z-alone", ZERO)  # prefetch full, queue empty: expired at once
    ch.basic_publish("", q, b"a", LONG)
    ch.basic_publish("", q, b"z-behind", ZERO)
    ch.basic_publish("", q, b"b")
    counts = [count(ch, q)]
    letters = dead_letters(conn, ch, dead, 1)
    consumer.basic_ack(tags[-1])  # a goes out, z-behind is the head: expired
    pump_until(conn, lambda: len(got) >= 2)
    counts.append(count(ch, q))
    letters += dead_letters(conn, ch, dead, 1)
    consumer.basic_ack(tags[-1])
    pump_until(conn, lambda: len(got) >= 3)
    consumer.basic_ack(tags[-1])
    return got, counts, letters, count(ch, q)


def scenario_zero_requeued_behind(conn):
    ch = confirming(conn)
    dlx, dead = with_dlx(ch, "t-rq")
    q = fresh(ch, "t-rq", **{"x-dead-letter-exchange": dlx})
    consumer = conn.channel()
    got: list[bytes] = []
    tags: list[int] = []

    def on_message(c, m, p, b):
        got.append(b)
        tags.append(m.delivery_tag)

    ctag = consumer.basic_consume(q, on_message)
    ch.basic_publish("", q, b"m1", LONG)
    ch.basic_publish("", q, b"z", ZERO)  # delivered: a consumer could take it
    ch.basic_publish("", q, b"m2")
    pump_until(conn, lambda: len(got) >= 3)
    consumer.basic_cancel(ctag)
    consumer.basic_nack(tags[-1], multiple=True, requeue=True)
    # m1 at the head keeps z, which expired long ago, in the queue until m1 goes; a get on the
    # channel of the nack is handled after the requeue
    m1 = consumer.basic_get(q, auto_ack=True)
    return got, (m1[2], m1[0].redelivered), dead_letters(conn, ch, dead, 1), count(ch, q), \
        ch.basic_get(q, auto_ack=True)[2]


def scenario_priority_queue_zero(conn):
    ch = confirming(conn)
    dlx, dead = with_dlx(ch, "t-prio")
    q = fresh(ch, "t-prio", **{"x-max-priority": 3, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"high", pika.BasicProperties(priority=3))
    ch.basic_publish("", q, b"low-zero", pika.BasicProperties(priority=1, expiration="0"))
    ch.basic_publish("", q, b"high-zero", pika.BasicProperties(priority=3, expiration="0"))
    ch.basic_publish("", q, b"low", pika.BasicProperties(priority=1))
    first = count(ch, q)
    got = ch.basic_get(q, auto_ack=True)[2]
    return first, got, dead_letters(conn, ch, dead, 2), count(ch, q), \
        ch.basic_get(q, auto_ack=True)[2]


@pytest.mark.leveret_only
@pytest.mark.parametrize("scenario", [
    scenario_zero_behind_the_head,
    scenario_zero_without_dlx,
    scenario_dead_letter_order,
    scenario_zero_and_length_limits,
    scenario_queue_ttl_zero,
    scenario_zero_with_consumers,
    scenario_zero_requeued_behind,
    scenario_priority_queue_zero,
], ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_ttl_same_as_rabbitmq(broker, rabbitmq_shared_vhost_url, scenario):
    ours, theirs = run_both(broker, rabbitmq_shared_vhost_url, scenario)
    assert ours == theirs

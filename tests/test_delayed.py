"""The x-delayed-message exchange (RabbitMQ's delayed message plugin, which RabbitMQ does not
ship: these run on Leveret only). Whether a message was delayed shows in what the consumer
sees: the plugin routes a delayed message with ``x-delay`` set to minus its delay, and an
undelayed message published after it overtakes it."""

from __future__ import annotations

import decimal
import time

import aio_pika
import pika
import pika.exceptions
import pytest

from leveret import Broker
from streamutil import refusal

pytestmark = pytest.mark.leveret_only

DELAYED = "x-delayed-message"


def connect(broker) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(broker.url))


def receive(conn, ch, queue: str, count: int, timeout: float = 10.0) -> list[tuple[bytes, dict]]:
    got: list[tuple[bytes, dict]] = []
    tag = ch.basic_consume(queue, lambda c, m, p, b: got.append((b, dict(p.headers or {}))),
                           auto_ack=True)
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {got}"
        conn.process_data_events(time_limit=0.05)
    ch.basic_cancel(tag)
    return got


def delayed(ms, **headers) -> pika.BasicProperties:
    return pika.BasicProperties(headers={"x-delay": ms, **headers})


def test_declare_needs_an_existing_delayed_type(broker):
    holder = [connect(broker)]

    def declare(args, kind=DELAYED, name="d"):
        return lambda ch: ch.exchange_declare(name, kind, arguments=args) and "ok"
    must = "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing " \
           "exchange type"
    assert [refusal(holder, broker.url, declare(args)) for args in (
        {}, {"x-delayed-type": 5}, {"x-delayed-type": DELAYED}, {"x-delayed-type": "foo"},
    )] == [
        ("channel", 406, must),
        ("channel", 406, must),
        ("channel", 406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be "
                         "used for 'x-delayed-type'"),
        ("connection", 503, "COMMAND_INVALID - unknown exchange type 'foo'"),
    ]
    for kind in ("direct", "fanout", "topic", "headers"):
        assert refusal(holder, broker.url, declare({"x-delayed-type": kind}, name=kind)) == "ok"
    # as the plugin: a redeclare compares the exchange type and flags, not x-delayed-type
    assert refusal(holder, broker.url, declare({"x-delayed-type": "topic"}, name="direct")) \
        == "ok"
    assert refusal(holder, broker.url, declare({}, kind="direct", name="direct"))[1] == 406
    assert refusal(holder, broker.url, lambda ch: ch.exchange_declare(
        "direct", passive=True) and "ok") == "ok"
    holder[0].close()


def test_messages_are_routed_when_due_with_x_delay_negated(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("d", DELAYED, arguments={"x-delayed-type": "direct"})
    ch.queue_declare("q")
    ch.queue_bind("q", "d", "k")
    ch.confirm_delivery()  # a delayed message is confirmed at once: routed nowhere yet
    ch.basic_publish("d", "k", b"late", delayed(400, a=1, z="last"))
    ch.basic_publish("d", "k", b"soon", delayed(150))
    ch.basic_publish("d", "k", b"at once", delayed(-5))
    ch.basic_publish("d", "k", b"no header")
    ch.basic_publish("d", "other-key", b"unroutable", delayed(100))
    got = receive(conn, ch, "q", 4)
    assert got == [
        (b"at once", {"x-delay": -5}),
        (b"no header", {}),
        (b"soon", {"x-delay": -150}),
        (b"late", {"x-delay": -400, "a": 1, "z": "last"}),  # header order kept
    ]
    conn.close()


def test_x_delay_values_as_the_plugin_reads_them(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("d", DELAYED, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare("q")
    ch.queue_bind("q", "d")
    ch.confirm_delivery()
    values = ("120", decimal.Decimal("120.9"), True, 0, 2**32, "-3", [1], "soon")
    for value in values:
        ch.basic_publish("d", "", repr(value).encode(), delayed(value))
    ch.basic_publish("d", "", b"sentinel")
    got = receive(conn, ch, "q", 9)
    # not delayed: they come first, in publish order, x-delay as published
    assert [b for b, _ in got[:6]] == [b"True", b"0", b"4294967296", b"'-3'", b"[1]",
                                       b"'soon'"]
    assert got[6] == (b"sentinel", {})
    # delayed: truncated or converted, then negated
    assert sorted(got[7:]) == [(b"'120'", {"x-delay": -120}),
                               (b"Decimal('120.9')", {"x-delay": -120})]
    conn.close()


def test_routing_uses_the_bindings_of_delivery_time_and_each_delayed_type(broker):
    conn = connect(broker)
    ch = conn.channel()
    for kind in ("direct", "fanout", "topic", "headers"):
        ch.exchange_declare(kind, DELAYED, arguments={"x-delayed-type": kind})
    ch.queue_declare("q")
    ch.confirm_delivery()
    ch.basic_publish("direct", "k", b"bound later", delayed(300))
    ch.queue_bind("q", "direct", "k")  # after the publish, before it is due
    ch.queue_bind("q", "fanout")
    ch.queue_bind("q", "topic", "a.*")
    ch.queue_bind("q", "headers", arguments={"x-match": "any", "kind": "h"})
    ch.basic_publish("fanout", "whatever", b"fanout", delayed(50))
    ch.basic_publish("topic", "a.b", b"topic", delayed(60))
    ch.basic_publish("topic", "b.b", b"topic miss", delayed(60))
    ch.basic_publish("headers", "", b"headers", delayed(70, kind="h"))
    got = receive(conn, ch, "q", 4)
    assert [b for b, _ in got] == [b"fanout", b"topic", b"headers", b"bound later"]
    conn.close()


def test_mandatory_returns_at_once_and_the_message_still_comes(broker):
    """The plugin's behaviour (its issue #7): at publish time a delayed message routes nowhere,
    so mandatory returns it as NO_ROUTE, though it is routed when due."""
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("d", DELAYED, arguments={"x-delayed-type": "direct"})
    ch.queue_declare("q")
    ch.queue_bind("q", "d", "k")
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m.reply_code, b)))
    ch.basic_publish("d", "k", b"delayed", delayed(100), mandatory=True)
    ch.basic_publish("d", "k", b"at once", mandatory=True)
    got = receive(conn, ch, "q", 2)
    assert returned == [(312, b"delayed")]
    assert [b for b, _ in got] == [b"at once", b"delayed"]
    conn.close()


def test_an_alternate_exchange_gets_a_delayed_message_at_once_and_e2e_bindings_work(broker):
    """Also the plugin's (its issue #36): the alternate exchange sees the message at publish
    time, with x-delay as published; the bound queue gets it when due."""
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("ae", "fanout")
    ch.queue_declare("alt")
    ch.queue_bind("alt", "ae")
    ch.exchange_declare("d", DELAYED, arguments={"x-delayed-type": "direct",
                                                 "alternate-exchange": "ae"})
    ch.exchange_declare("next", "fanout")
    ch.exchange_bind("next", "d", "k")
    ch.queue_declare("q")
    ch.queue_bind("q", "next")
    ch.confirm_delivery()
    ch.basic_publish("d", "k", b"m", delayed(100))
    assert receive(conn, ch, "alt", 1) == [(b"m", {"x-delay": 100})]
    assert receive(conn, ch, "q", 1) == [(b"m", {"x-delay": -100})]
    conn.close()


def test_many_pending_delays_come_out_in_due_order(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("d", DELAYED, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare("q")
    ch.queue_bind("q", "d")
    # four levels far enough apart that the time publishing takes cannot reorder them
    delays = [1 + 300 * ((i * 7919) % 4) for i in range(1000)]
    for i, ms in enumerate(delays):
        ch.basic_publish("d", "", b"%d" % i, delayed(ms))
    got = receive(conn, ch, "q", 1000)
    due = [-headers["x-delay"] for _, headers in got]
    assert sorted(due) == sorted(delays)
    assert due == sorted(due)
    # within a level, in publish order (the heap breaks ties by arrival)
    for level in set(delays):
        bodies = [int(b) for b, headers in got if -headers["x-delay"] == level]
        assert bodies == sorted(bodies)
    conn.close()


def test_deleting_the_exchange_drops_its_delayed_messages(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("d", DELAYED, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare("q")
    ch.queue_bind("q", "d")
    ch.basic_publish("d", "", b"dropped", delayed(100))
    ch.exchange_delete("d")
    ch.exchange_declare("d", DELAYED, arguments={"x-delayed-type": "fanout"})
    ch.queue_bind("q", "d")
    ch.basic_publish("d", "", b"later", delayed(300))
    assert receive(conn, ch, "q", 1) == [(b"later", {"x-delay": -300})]
    conn.close()


def test_persistent_delayed_messages_survive_a_restart(tmp_path):
    persistent = pika.BasicProperties(delivery_mode=2, headers={"x-delay": 900})
    later = pika.BasicProperties(delivery_mode=2, headers={"x-delay": 2500})
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.exchange_declare("d", DELAYED, durable=True, arguments={"x-delayed-type": "direct"})
        ch.exchange_declare("gone", DELAYED, durable=True,
                            arguments={"x-delayed-type": "direct"})
        ch.exchange_declare("mem", DELAYED, arguments={"x-delayed-type": "direct"})
        ch.queue_declare("q", durable=True)
        ch.queue_bind("q", "d", "k")
        ch.confirm_delivery()
        published = time.time()
        ch.basic_publish("d", "k", b"due while down", persistent)
        ch.basic_publish("d", "k", b"due after", later)
        ch.basic_publish("d", "k", b"transient", pika.BasicProperties(headers={"x-delay": 900}))
        ch.basic_publish("mem", "k", b"non-durable exchange", persistent)
        ch.basic_publish("gone", "k", b"exchange deleted", persistent)
        ch.exchange_delete("gone")
        conn.close()
    time.sleep(max(0.0, published + 1.0 - time.time()))  # the first is due while down
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        got = receive(conn, ch, "q", 2)
        assert got == [(b"due while down", {"x-delay": -900}),
                       (b"due after", {"x-delay": -2500})]
        conn.close()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert (tmp_path / "delayed.log").stat().st_size == 0  # rewritten: nothing waits
        conn = connect(broker)
        ch = conn.channel()
        ch.basic_publish("d", "k", b"sentinel")
        assert receive(conn, ch, "q", 1) == [(b"sentinel", {})]
        conn.close()


async def test_aio_pika_publishes_and_receives_delayed_messages(abroker):
    connection = await aio_pika.connect(abroker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            "jobs", DELAYED, durable=True, arguments={"x-delayed-type": "topic"})
        queue = await channel.declare_queue("work")
        await queue.bind(exchange, "job.#")
        await exchange.publish(aio_pika.Message(b"later", headers={"x-delay": 200}), "job.a")
        await exchange.publish(aio_pika.Message(b"now"), "job.b")
        seen = []
        async with queue.iterator() as it:
            async for message in it:
                async with message.process():
                    seen.append((message.body, message.headers.get("x-delay")))
                if len(seen) == 2:
                    break
        assert seen == [(b"now", None), (b"later", -200)]


def test_a_dead_letter_exchange_may_be_a_delayed_one(broker):
    """Retry-later setups dead-letter through a delayed exchange: the dead letter keeps the
    x-delay header and waits like a published message."""
    conn = connect(broker)
    ch = conn.channel()
    ch.exchange_declare("retry", DELAYED, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare("work", arguments={"x-dead-letter-exchange": "retry"})
    ch.queue_declare("again")
    ch.queue_bind("again", "retry")
    ch.basic_publish("", "work", b"job", delayed(200))
    method, _, _ = ch.basic_get("work")
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.basic_publish("retry", "", b"undelayed")
    got = receive(conn, ch, "again", 2)
    assert [b for b, _ in got] == [b"undelayed", b"job"]
    assert got[1][1]["x-delay"] == -200 and got[1][1]["x-death"][0]["reason"] == "rejected"
    conn.close()

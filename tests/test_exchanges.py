"""Exchanges, queues and bindings end to end with pika, as RabbitMQ 3.x behaves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest


@contextlib.contextmanager
def closed_with(code: int) -> Iterator[None]:
    """Expect a channel (or connection) close with ``code``."""
    with pytest.raises((pika.exceptions.ChannelClosedByBroker,
                        pika.exceptions.ConnectionClosedByBroker)) as info:
        yield
    assert info.value.reply_code == code, info.value


def drain(ch, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def fresh_queue(ch, name: str = "") -> str:
    return ch.queue_declare(name, exclusive=not name).method.queue


# ---------------------------------------------------------------- exchanges


def test_default_exchange_routes_by_queue_name(channel):
    channel.queue_declare("orders")
    channel.basic_publish("", "orders", b"1")
    channel.basic_publish("", "nobody", b"lost")
    assert drain(channel, "orders") == [b"1"]


def test_default_exchange_refuses_bind(connection):
    ch = connection.channel()
    ch.queue_declare("q")
    with closed_with(403):
        ch.queue_bind("q", "", routing_key="x")


def test_predeclared_exchanges_exist(channel):
    for name, kind in (("amq.direct", "direct"), ("amq.fanout", "fanout"),
                       ("amq.topic", "topic"), ("amq.headers", "headers"),
                       ("amq.match", "headers")):
        channel.exchange_declare(name, kind, passive=True)


def test_amq_prefix_is_reserved(connection):
    ch = connection.channel()
    with closed_with(403):
        ch.exchange_declare("amq.mine", "direct")


def test_passive_declare_of_missing_exchange_is_404(connection):
    ch = connection.channel()
    with closed_with(404):
        ch.exchange_declare("nope", "direct", passive=True)


def test_redeclare_with_other_type_is_406(connection):
    ch = connection.channel()
    ch.exchange_declare("x1", "direct")
    ch.exchange_declare("x1", "direct")  # same attributes: fine
    with closed_with(406):
        ch.exchange_declare("x1", "fanout")


def test_redeclare_with_other_durability_is_406(connection):
    ch = connection.channel()
    ch.exchange_declare("x2", "topic", durable=True)
    with closed_with(406):
        ch.exchange_declare("x2", "topic", durable=False)


def test_unknown_exchange_type_closes_connection_503(connection):
    ch = connection.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        ch.exchange_declare("weird", "no-such-type")
    assert info.value.reply_code == 503


def test_direct_exchange(channel):
    channel.exchange_declare("d", "direct")
    a, b = fresh_queue(channel), fresh_queue(channel)
    channel.queue_bind(a, "d", "red")
    channel.queue_bind(b, "d", "blue")
    channel.queue_bind(b, "d", "red")
    channel.basic_publish("d", "red", b"r")
    channel.basic_publish("d", "blue", b"b")
    channel.basic_publish("d", "green", b"g")
    assert drain(channel, a) == [b"r"]
    assert drain(channel, b) == [b"r", b"b"]


def test_fanout_exchange(channel):
    channel.exchange_declare("f", "fanout")
    qs = [fresh_queue(channel) for _ in range(3)]
    for q in qs:
        channel.queue_bind(q, "f", routing_key="ignored")
    channel.basic_publish("f", "anything", b"all")
    assert [drain(channel, q) for q in qs] == [[b"all"]] * 3


@pytest.mark.parametrize(
    "binding,key,matches",
    [
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("#", "x.y", True),
        ("*", "", False),  # RabbitMQ: the empty key has no words at all
        ("*.b", "a.b", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.b", "a.b.c", False),
        ("#.#", "a", True),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
    ],
)
def test_topic_exchange(channel, binding, key, matches):
    channel.exchange_declare("t", "topic")
    q = fresh_queue(channel)
    channel.queue_bind(q, "t", binding)
    channel.basic_publish("t", key, b"m")
    assert drain(channel, q) == ([b"m"] if matches else [])


def test_topic_several_bindings_one_copy(channel):
    channel.exchange_declare("t2", "topic")
    q = fresh_queue(channel)
    for key in ("a.*", "#", "a.b", "*.b"):
        channel.queue_bind(q, "t2", key)
    channel.basic_publish("t2", "a.b", b"once")
    assert drain(channel, q) == [b"once"]


def test_headers_exchange_all_and_any(channel):
    channel.exchange_declare("h", "headers")
    q_all, q_any, q_present = fresh_queue(channel), fresh_queue(channel), fresh_queue(channel)
    channel.queue_bind(q_all, "h", arguments={"x-match": "all", "a": 1, "b": "two"})
    channel.queue_bind(q_any, "h", arguments={"x-match": "any", "a": 1, "b": "two"})
    channel.queue_bind(q_present, "h", arguments={"x-match": "all", "flag": None})

    def pub(body: bytes, headers: dict | None) -> None:
        channel.basic_publish("h", "", body, pika.BasicProperties(headers=headers))

    pub(b"both", {"a": 1, "b": "two"})
    pub(b"only-a", {"a": 1})
    pub(b"wrong", {"a": 2, "b": "three"})
    pub(b"flagged", {"flag": "anything"})
    pub(b"none", None)
    assert drain(channel, q_all) == [b"both"]
    assert drain(channel, q_any) == [b"both", b"only-a"]
    assert drain(channel, q_present) == [b"flagged"]


def test_headers_x_keys_ignored_unless_with_x(channel):
    channel.exchange_declare("hx", "headers")
    plain, with_x = fresh_queue(channel), fresh_queue(channel)
    channel.queue_bind(plain, "hx", arguments={"x-match": "all", "x-tag": "t", "k": "v"})
    channel.queue_bind(with_x, "hx", arguments={"x-match": "all-with-x", "x-tag": "t", "k": "v"})
    channel.basic_publish("hx", "", b"no-x", pika.BasicProperties(headers={"k": "v"}))
    channel.basic_publish("hx", "", b"x", pika.BasicProperties(headers={"k": "v", "x-tag": "t"}))
    assert drain(channel, plain) == [b"no-x", b"x"]
    assert drain(channel, with_x) == [b"x"]


def test_exchange_to_exchange_binding(channel):
    channel.exchange_declare("src", "topic")
    channel.exchange_declare("dst", "fanout")
    q = fresh_queue(channel)
    channel.queue_bind(q, "dst")
    channel.exchange_bind("dst", "src", "logs.#")
    channel.basic_publish("src", "logs.error", b"via-e2e")
    channel.basic_publish("src", "metrics", b"not-routed")
    assert drain(channel, q) == [b"via-e2e"]
    channel.exchange_unbind("dst", "src", "logs.#")
    channel.basic_publish("src", "logs.error", b"after-unbind")
    assert drain(channel, q) == []


def test_exchange_binding_loop_terminates(channel):
    channel.exchange_declare("l1", "fanout")
    channel.exchange_declare("l2", "fanout")
    q = fresh_queue(channel)
    channel.exchange_bind("l2", "l1")
    channel.exchange_bind("l1", "l2")
    channel.queue_bind(q, "l2")
    channel.basic_publish("l1", "", b"loop")
    assert drain(channel, q) == [b"loop"]


def test_alternate_exchange(channel):
    channel.exchange_declare("unrouted", "fanout")
    channel.exchange_declare("main", "direct", arguments={"alternate-exchange": "unrouted"})
    q_main, q_alt = fresh_queue(channel), fresh_queue(channel)
    channel.queue_bind(q_main, "main", "known")
    channel.queue_bind(q_alt, "unrouted")
    channel.basic_publish("main", "known", b"k")
    channel.basic_publish("main", "unknown", b"u")
    assert drain(channel, q_main) == [b"k"]
    assert drain(channel, q_alt) == [b"u"]


def test_auto_delete_exchange_goes_with_last_binding(channel):
    channel.exchange_declare("ad", "direct", auto_delete=True)
    q = fresh_queue(channel)
    channel.queue_bind(q, "ad", "k")
    channel.exchange_declare("ad", "direct", auto_delete=True, passive=True)
    channel.queue_unbind(q, "ad", "k")
    with closed_with(404):
        channel.exchange_declare("ad", "direct", passive=True)


def test_internal_exchange_refuses_publish(connection):
    ch = connection.channel()
    ch.exchange_declare("internal", "fanout", internal=True)
    ch.basic_publish("internal", "", b"x")
    with closed_with(403):
        ch.queue_declare("after-internal")


def test_publish_to_missing_exchange_is_404(connection):
    ch = connection.channel()
    ch.basic_publish("missing-exchange", "", b"x")
    with closed_with(404):
        ch.queue_declare("after-missing")


def test_exchange_delete_if_unused(connection):
    ch = connection.channel()
    ch.exchange_declare("used", "direct")
    q = fresh_queue(ch)
    ch.queue_bind(q, "used", "k")
    with closed_with(406):
        ch.exchange_delete("used", if_unused=True)
    ch = connection.channel()
    ch.exchange_delete("used")
    with closed_with(404):
        ch.exchange_declare("used", "direct", passive=True)


# ---------------------------------------------------------------- queues


def test_server_named_queue(channel):
    name = channel.queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-")
    channel.basic_publish("", name, b"x")
    assert drain(channel, name) == [b"x"]


def test_declare_ok_counts(channel):
    channel.queue_declare("counted")
    for _ in range(3):
        channel.basic_publish("", "counted", b"x")
    channel.basic_consume("counted", lambda *a: None, auto_ack=False)
    ok = channel.queue_declare("counted", passive=True).method
    assert ok.consumer_count == 1
    assert ok.message_count == 0  # all three went to the consumer


def test_queue_amq_prefix_is_reserved(connection):
    ch = connection.channel()
    with closed_with(403):
        ch.queue_declare("amq.mine")


def test_exclusive_queue_locked_to_its_connection(broker, channel):
    channel.queue_declare("mine", exclusive=True)
    other = pika.BlockingConnection(pika.URLParameters(broker.url))
    with closed_with(405):
        other.channel().queue_declare("mine", passive=True)
    ch2 = other.channel()
    with closed_with(405):
        ch2.basic_consume("mine", lambda *a: None)
    other.close()


def test_exclusive_queue_deleted_with_connection(broker):
    first = pika.BlockingConnection(pika.URLParameters(broker.url))
    first.channel().queue_declare("temp", exclusive=True)
    first.close()
    second = pika.BlockingConnection(pika.URLParameters(broker.url))
    with closed_with(404):
        second.channel().queue_declare("temp", passive=True)
    second.close()


def test_auto_delete_queue_goes_with_last_consumer(channel):
    channel.queue_declare("ephemeral", auto_delete=True)
    tag1 = channel.basic_consume("ephemeral", lambda *a: None)
    tag2 = channel.basic_consume("ephemeral", lambda *a: None)
    channel.basic_cancel(tag1)
    channel.queue_declare("ephemeral", passive=True)
    channel.basic_cancel(tag2)
    with closed_with(404):
        channel.queue_declare("ephemeral", passive=True)


def test_queue_redeclare_differences_are_406(connection):
    ch = connection.channel()
    ch.queue_declare("q406", durable=True)
    with closed_with(406):
        ch.queue_declare("q406", durable=False)
    ch = connection.channel()
    ch.queue_declare("q406a", arguments={"x-max-length": 10})
    with closed_with(406):
        ch.queue_declare("q406a", arguments={"x-max-length": 20})


@pytest.mark.leveret_only
def test_queue_arguments_kept(broker, channel):
    channel.queue_declare("withargs", arguments={"x-max-length": 5, "custom": "kept"})
    assert broker.queue("withargs").arguments == {"x-max-length": 5, "custom": "kept"}


def test_passive_declare_of_missing_queue_is_404(connection):
    with closed_with(404):
        connection.channel().queue_declare("ghost", passive=True)


def test_purge_returns_count(channel):
    channel.queue_declare("p")
    for _ in range(4):
        channel.basic_publish("", "p", b"x")
    assert channel.queue_purge("p").method.message_count == 4
    assert drain(channel, "p") == []


def test_delete_if_unused_and_if_empty(connection):
    ch = connection.channel()
    ch.queue_declare("busy")
    ch.basic_consume("busy", lambda *a: None)
    with closed_with(406):
        ch.queue_delete("busy", if_unused=True)
    ch = connection.channel()
    ch.queue_declare("full")
    ch.basic_publish("", "full", b"x")
    with closed_with(406):
        ch.queue_delete("full", if_empty=True)
    ch = connection.channel()
    assert ch.queue_delete("full").method.message_count == 1


def test_queue_unbind(channel):
    channel.exchange_declare("ub", "direct")
    q = fresh_queue(channel)
    channel.queue_bind(q, "ub", "k")
    channel.queue_unbind(q, "ub", "k")
    channel.basic_publish("ub", "k", b"x")
    assert drain(channel, q) == []


def test_bind_to_missing_exchange_is_404(connection):
    ch = connection.channel()
    q = fresh_queue(ch)
    with closed_with(404):
        ch.queue_bind(q, "no-exchange", "k")


def test_bind_missing_queue_is_404(connection):
    ch = connection.channel()
    ch.exchange_declare("e404", "direct")
    with closed_with(404):
        ch.queue_bind("no-queue", "e404", "k")


def test_deleting_queue_removes_its_bindings(channel):
    channel.exchange_declare("gone", "fanout")
    channel.queue_declare("q-gone")
    channel.queue_bind("q-gone", "gone")
    channel.queue_delete("q-gone")
    channel.queue_declare("q-gone")
    channel.basic_publish("gone", "", b"x")
    assert drain(channel, "q-gone") == []


def test_headers_unbind_keeps_same_arguments_under_another_key(channel):
    channel.exchange_declare("h2", "headers")
    q = fresh_queue(channel)
    args = {"x-match": "all", "k": "v"}
    channel.queue_bind(q, "h2", routing_key="one", arguments=args)
    channel.queue_bind(q, "h2", routing_key="two", arguments=args)
    channel.queue_unbind(q, "h2", routing_key="one", arguments=args)
    channel.basic_publish("h2", "", b"still", pika.BasicProperties(headers={"k": "v"}))
    assert drain(channel, q) == [b"still"]

"""Streams (x-queue-type: stream) over AMQP 0-9-1: the same scenario against Leveret and the
local RabbitMQ 3.10, comparing what pika saw. Stream names are unique to each run and deleted
afterwards (the reference broker is shared). Where RabbitMQ 3.11+ changed what a client sees,
Leveret follows the later release; those cases are in test_streams.py, not here.
"""

from __future__ import annotations

import datetime

import pika
import pytest

from conftest import RABBITMQ_URL, rabbitmq_available
from streamutil import STREAM, publish, read_until, refusal, unique, until_body

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def rabbit_url() -> str:
    if not rabbitmq_available():
        pytest.skip("no RabbitMQ on localhost:5672")
    return RABBITMQ_URL


def run_both(broker, rabbit_url: str, scenario) -> tuple[object, object]:
    """Run ``scenario(conn_holder, url, name)`` on both brokers with a fresh stream name;
    the names are replaced by Q in what it returns, and the streams deleted."""
    results = []
    for url in (broker.url, rabbit_url):
        name = unique("s")
        holder = [pika.BlockingConnection(pika.URLParameters(url))]
        try:
            results.append(_named(scenario(holder, url, name), name))
        finally:
            if not holder[0].is_open:
                holder[0] = pika.BlockingConnection(pika.URLParameters(url))
            ch = holder[0].channel()
            for suffix in ("", "-b", "-c"):
                ch.queue_delete(name + suffix)
            holder[0].close()
    return results[0], results[1]


def _named(value: object, name: str) -> object:
    if isinstance(value, str):
        return value.replace(name, "Q")
    if isinstance(value, (list, tuple)):
        return type(value)(_named(v, name) for v in value)
    return value


def _normalize_310(value: object) -> object:
    """3.10's text for a consumer without prefetch, as 3.11+ (and Leveret) word it."""
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[2], str):
        return value[:2] + (value[2].replace("is not set for 'queue 'Q' in vhost '/''",
                                             "is not set for stream queue 'Q' in vhost '/'"),)
    if isinstance(value, list):
        return [_normalize_310(v) for v in value]
    return value


# ---------------------------------------------------------------- declare


DECLARES = [
    ({"durable": False}, {}),
    ({"exclusive": True}, {}),
    ({"auto_delete": True}, {}),
    ({"exclusive": True, "auto_delete": True}, {}),
    ({"durable": False, "exclusive": True}, {}),
    ({}, {"x-max-length-bytes": 1000}),
    ({}, {"x-max-length-bytes": -1}),
    ({}, {"x-max-length-bytes": "x"}),
    ({}, {"x-max-length-bytes": 0}),
    ({}, {"x-max-age": "7D"}),
    ({}, {"x-max-age": "1h"}),
    ({}, {"x-max-age": "10s"}),
    ({}, {"x-max-age": "1Y"}),
    ({}, {"x-max-age": "1M"}),
    ({}, {"x-max-age": "5m"}),
    ({}, {"x-max-age": "0D"}),
    ({}, {"x-max-age": "1.5h"}),
    ({}, {"x-max-age": "1"}),
    ({}, {"x-max-age": "1d"}),
    ({}, {"x-max-age": 10}),
    ({}, {"x-stream-max-segment-size-bytes": 100000}),
    ({}, {"x-stream-max-segment-size-bytes": -5}),
    ({}, {"x-stream-max-segment-size-bytes": "x"}),
    ({}, {"x-stream-max-segment-size-bytes": 4_000_000_000}),
    ({}, {"x-queue-leader-locator": "client-local"}),
    ({}, {"x-queue-leader-locator": "balanced"}),
    ({}, {"x-queue-leader-locator": "bogus"}),
    ({}, {"x-queue-leader-locator": 5}),
    ({}, {"x-initial-cluster-size": 1}),
    ({}, {"x-initial-cluster-size": 0}),
    ({}, {"x-max-length": 10}),
    ({}, {"x-message-ttl": 1000}),
    ({}, {"x-message-ttl": -1}),
    ({}, {"x-expires": 1000}),
    ({}, {"x-dead-letter-exchange": "dlx"}),
    ({}, {"x-dead-letter-routing-key": "k"}),
    ({}, {"x-overflow": "drop-head"}),
    ({}, {"x-max-priority": 5}),
    ({}, {"x-single-active-consumer": True}),
    ({}, {"x-queue-mode": "lazy"}),
    ({}, {"x-queue-version": 2}),
    ({}, {"x-delivery-limit": 5}),
    ({}, {"x-quorum-initial-group-size": 1}),
    ({}, {"x-queue-master-locator": "min-masters"}),
    ({}, {"x-foo": 1}),
    ({}, {"x-max-priority": 1, "x-max-length": 1}),
    ({}, {"x-max-length": 10, "x-max-age": "0D"}),
    ({}, {"x-queue-leader-locator": "bogus", "x-max-length": 1}),
    ({"durable": False}, {"x-max-length": 10}),
    ({"durable": False}, {"x-max-length-bytes": "x"}),
    ({"durable": False}, {"x-stream-max-segment-size-bytes": 4_000_000_000}),
]


def scenario_declares(holder, url, name):
    seen = []
    for flags, args in DECLARES:
        def declare(ch, flags=flags, args=args):
            kw = {"durable": True, **flags}
            ch.queue_declare(name, arguments={**STREAM, **args}, **kw)
            ch.queue_delete(name)
            return "ok"
        seen.append(refusal(holder, url, declare))
    seen.append(refusal(holder, url, lambda ch: ch.queue_declare("", durable=True,
                                                                 arguments=STREAM)))
    return seen


def test_declare_rules_match_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_declares)
    assert leveret == rabbit
    assert leveret[0] == ("channel", 406, "PRECONDITION_FAILED - invalid property "
                                          "'non-durable' for queue 'Q' in vhost '/'")


def scenario_redeclare(holder, url, name):
    full = {**STREAM, "x-max-age": "1h", "x-stream-max-segment-size-bytes": 1000,
            "x-initial-cluster-size": 1, "x-queue-leader-locator": "balanced",
            "x-max-length-bytes": 100000}
    seen = [refusal(holder, url, lambda ch: ch.queue_declare(name, durable=True,
                                                             arguments=full).method.queue)]
    for key in full:
        args = {k: v for k, v in full.items() if k != key}
        seen.append(refusal(holder, url, lambda ch, a=args: ch.queue_declare(
            name, durable=True, arguments=a) and "ok"))
    for flags in ({"durable": False}, {"exclusive": True}, {"auto_delete": True}):
        seen.append(refusal(holder, url, lambda ch, f=flags: ch.queue_declare(
            name, arguments=full, **{"durable": True, **f}) and "ok"))
    # another queue type's argument is not compared on a stream
    seen.append(refusal(holder, url, lambda ch: ch.queue_declare(
        name, durable=True, arguments={**full, "x-max-length": 5}) and "ok"))
    seen.append(refusal(holder, url, lambda ch: ch.queue_declare(
        name, durable=True, arguments={**full, "x-max-age": "60m"}) and "ok"))
    return seen


def test_redeclare_compares_the_stream_arguments_as_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_redeclare)
    assert leveret == rabbit
    assert "received none but current is the value 'stream' of type 'longstr'" in str(
        leveret[1])


# ---------------------------------------------------------------- consume


def scenario_consume_rules(holder, url, name):
    conn = holder[0]
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    publish(ch, name, [b"a", b"b"])
    cases = [
        (None, None, False, {}),
        (0, None, False, {}),
        (None, 5, False, {}),
        (3, 5, False, {}),
        (None, None, True, {}),
        (3, None, True, {}),
        (3, None, False, {"x-priority": 1}),
        (3, None, False, {"x-priority": "x"}),
        (3, None, False, {"x-cancel-on-ha-failover": True}),
        (3, None, False, {"x-stream-offset": "0D"}),
        (3, None, False, {"x-stream-offset": "5"}),
        (None, None, False, {"x-stream-offset": "0D"}),
        (3, None, False, {"x-stream-offset": "last", "x-priority": 1}),
        (3, None, False, {"x-foo": 1}),
        (3, None, False, {"x-stream-offset": b"next"}),
    ]
    seen = []
    for prefetch, global_prefetch, no_ack, args in cases:
        def consume(ch, prefetch=prefetch, global_prefetch=global_prefetch, no_ack=no_ack,
                    args=args):
            if prefetch is not None:
                ch.basic_qos(prefetch_count=prefetch)
            if global_prefetch is not None:
                ch.basic_qos(prefetch_count=global_prefetch, global_qos=True)
            ch.basic_consume(name, lambda *a: None, auto_ack=no_ack, arguments=args)
            return "ok"
        seen.append(refusal(holder, url, consume))

    def exclusive_is_not_enforced(ch):
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(name, lambda *a: None, exclusive=True)
        other = holder[0].channel()
        other.basic_qos(prefetch_count=1)
        other.basic_consume(name, lambda *a: None)
        return "ok"
    seen.append(refusal(holder, url, exclusive_is_not_enforced))
    return seen


def test_consume_rules_match_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_consume_rules)
    assert leveret == _normalize_310(rabbit)
    assert leveret[0] == ("channel", 406, "PRECONDITION_FAILED - consumer prefetch count is "
                                          "not set for stream queue 'Q' in vhost '/'")
    assert leveret[4][:2] == ("channel", 406) and leveret[5][:2] == ("connection", 540)


def scenario_refused_methods(holder, url, name):
    ch = holder[0].channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    publish(ch, name, [b"a", b"b"])
    seen = [
        refusal(holder, url, lambda ch: ch.basic_get(name)),
        refusal(holder, url, lambda ch: ch.basic_get(name, auto_ack=True)),
        refusal(holder, url, lambda ch: ch.queue_purge(name)),
    ]

    def delete_if_unused_and_empty(ch):
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(name, lambda *a: None)
        other = holder[0].channel()
        return other.queue_delete(name, if_unused=True, if_empty=True).method.message_count
    seen.append(refusal(holder, url, delete_if_unused_and_empty))
    seen.append(refusal(holder, url, lambda ch: ch.queue_declare(name, passive=True) and "ok"))
    return seen


def test_get_purge_and_delete_flags_as_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_refused_methods)
    assert leveret == rabbit
    assert leveret[0] == ("connection", 540, "NOT_IMPLEMENTED - basic.get not supported by "
                                             "stream queues queue 'Q' in vhost '/'")
    assert leveret[3] == 0  # deleted despite a consumer and messages, reporting 0


# ---------------------------------------------------------------- reading


def scenario_offsets(holder, url, name):
    conn = holder[0]
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    publish(ch, name, [b"m%d" % i for i in range(5)])  # five chunks of one message
    specs = ["first", "last", "next", 2, -1, 0, datetime.datetime(2000, 1, 1), "1h", "1Y",
             b"last"]
    seen = []
    for i, spec in enumerate(specs):
        reader = conn.channel()
        sentinel = b"s%d" % i

        def publish_sentinel(got, sentinel=sentinel, sent=[]):  # noqa: B006 (once per spec)
            if not sent:
                sent.append(1)
                ch.basic_publish("", name, sentinel)
            return any(g[0] == sentinel for g in got)
        seen.append(read_until(conn, reader, name, publish_sentinel,
                               {"x-stream-offset": spec}))
        reader.close()
    # an offset not written yet: delivery starts when it is
    reader = conn.channel()
    ahead = 5 + len(specs) + 2
    sent: list[int] = []

    def publish_three(got):
        if not sent:
            sent.append(1)
            publish(ch, name, [b"x", b"y", b"z"])
        return until_body(b"z")(got)
    got = read_until(conn, reader, name, publish_three, {"x-stream-offset": ahead})
    seen.append(got[:1])
    return seen


def test_offsets_match_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_offsets)
    assert leveret == rabbit
    first = leveret[0]
    assert first == [(b"m%d" % i, i, False) for i in range(5)] + [(b"s0", 5, False)]
    assert leveret[1] == [(b"s0", 5, False), (b"s1", 6, False)]  # last: the last chunk
    assert leveret[2] == [(b"s2", 7, False)]  # next: only what comes after


def scenario_credit(holder, url, name):
    conn = holder[0]
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    publish(ch, name, [b"m%d" % i for i in range(6)])
    reader = conn.channel()
    reader.basic_qos(prefetch_count=2)
    got: list[tuple[bytes, int]] = []
    reader.basic_consume(name, lambda c, m, p, b: got.append((b, m.delivery_tag)),
                         arguments={"x-stream-offset": "first"})
    steps = []

    def wait_for(n):
        while len(got) < n:
            conn.process_data_events(time_limit=0.05)
        conn.process_data_events(time_limit=0.2)  # anything beyond the credit would show
        steps.append(list(got))
    wait_for(2)
    reader.basic_ack(got[0][1])
    wait_for(3)
    reader.basic_ack(got[2][1], multiple=True)
    wait_for(5)
    reader.basic_ack(0, multiple=True)
    wait_for(6)
    return steps


def test_prefetch_is_credit_given_back_by_acks_as_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_credit)
    assert leveret == rabbit
    assert [len(step) for step in leveret] == [2, 3, 5, 6]


def scenario_reread(holder, url, name):
    conn = holder[0]
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    publish(ch, name, [b"a", b"b", b"c"])
    rounds = []
    for _ in range(2):
        reader = conn.channel()
        rounds.append(read_until(conn, reader, name, until_body(b"c"),
                                 {"x-stream-offset": "first"}))
        reader.close()
    return rounds, refusal(holder, url, lambda ch: ch.queue_declare(name, passive=True)
                           .method.consumer_count)


def test_acked_messages_stay_and_are_read_again_as_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_reread)
    assert leveret == rabbit
    rounds, _ = leveret
    assert rounds[0] == rounds[1] == [(b"a", 0, False), (b"b", 1, False), (b"c", 2, False)]


def scenario_properties(holder, url, name):
    conn = holder[0]
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    headers = {"zz": 1, "a": "two", "x-stream-offset": "mine", "big": 2**40, "neg": -3,
               "t": True, "ts": datetime.datetime(2020, 1, 2, 3, 4, 5), "none": None,
               "by": b"bytes"}
    full = pika.BasicProperties(
        content_type="text/plain", content_encoding="gzip", headers=headers, delivery_mode=2,
        priority=3, correlation_id="cid", reply_to="rt", expiration="60000", message_id="mid",
        timestamp=1600000000, type="tp", user_id="guest", app_id="app")
    ch.confirm_delivery()
    ch.basic_publish("", name, b"full", full)
    ch.basic_publish("", name, b"bare")
    ch.basic_publish("", name, b"typed", pika.BasicProperties(content_type="a/b"))
    reader = conn.channel()
    reader.basic_qos(prefetch_count=10)
    got = []
    reader.basic_consume(name, lambda c, m, p, b: got.append(
        (b, m.exchange, m.routing_key, m.redelivered, p.content_type, p.content_encoding,
         list((p.headers or {}).items()), p.delivery_mode, p.priority, p.correlation_id,
         p.reply_to, p.expiration, p.message_id, p.timestamp, p.type, p.user_id, p.app_id)),
        arguments={"x-stream-offset": "first"})
    while len(got) < 3:
        conn.process_data_events(time_limit=0.05)
    return got


def test_headers_and_properties_as_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_properties)
    assert leveret == rabbit
    full, bare, typed = leveret
    keys = [k for k, _ in full[6]]
    assert keys == sorted(keys) and ("x-stream-offset", 0) in full[6]
    assert bare[6] == [("x-stream-offset", 1)]
    assert typed[4] == "a/b" and typed[6] == [("x-stream-offset", 2)]


def scenario_retention(holder, url, name):
    conn = holder[0]
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments={
        **STREAM, "x-stream-max-segment-size-bytes": 1000, "x-max-length-bytes": 3000})
    publish(ch, name, [b"%03d" % i + b"x" * 97 for i in range(60)])
    reader = conn.channel()
    got = read_until(conn, reader, name, lambda got: any(g[0].startswith(b"059") for g in got),
                     {"x-stream-offset": "first"})
    # segment-granular truncation: the oldest are gone, the newest all there, in order
    return (got[0][1] > 0, len(got) < 60, got[-1][0][:3],
            [g[0][:3] for g in got] == [b"%03d" % i for i in range(60 - len(got), 60)])


def test_retention_truncates_whole_segments_as_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_retention)
    assert leveret == rabbit == (True, True, b"059", True)


def scenario_delete_cancels(holder, url, name):
    conn = holder[0]
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    cancelled = []
    reader = conn.channel()
    reader.basic_qos(prefetch_count=1)
    reader.basic_consume(name, lambda *a: None)
    reader.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.NAME))
    ch.queue_delete(name)
    while not cancelled:
        conn.process_data_events(time_limit=0.05)
    return cancelled


def test_deleting_a_stream_cancels_its_consumers_as_rabbitmq(broker, rabbit_url):
    leveret, rabbit = run_both(broker, rabbit_url, scenario_delete_cancels)
    assert leveret == rabbit == ["Basic.Cancel"]

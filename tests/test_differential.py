"""Differential tests: the same scenario against Leveret and a real RabbitMQ, comparing what
the client saw. Skipped cleanly when no RabbitMQ listens on localhost:5672 (CI starts one).
"""

from __future__ import annotations

import subprocess
import urllib.parse
import uuid
from collections.abc import Callable, Iterator

import pika
import pika.exceptions
import pytest

from conftest import rabbitmq_available

Scenario = Callable[[pika.BlockingConnection], object]


@pytest.fixture
def rabbitmq_vhost_url() -> Iterator[str]:
    if not rabbitmq_available():
        pytest.skip("no RabbitMQ on localhost:5672")
    vhost = f"leveret-diff-{uuid.uuid4().hex[:10]}"
    try:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=30,
                       capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*",
                        ".*"], check=True, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot manage the local RabbitMQ (rabbitmqctl)")
    yield f"amqp://guest:guest@127.0.0.1:5672/{urllib.parse.quote(vhost, safe='')}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=30, capture_output=True)


def run_both(broker, rabbit_url: str, scenario: Scenario) -> tuple[object, object]:
    results = []
    for url in (broker.url, rabbit_url):
        conn = pika.BlockingConnection(pika.URLParameters(url))
        try:
            results.append(scenario(conn))
        finally:
            if conn.is_open:
                conn.close()
    return results[0], results[1]


def drain(ch, queue: str) -> list[tuple[bytes, bool]]:
    out = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.redelivered))


def wait_get(conn, ch, queue: str):
    for _ in range(200):
        got = ch.basic_get(queue, auto_ack=True)
        if got[0] is not None:
            return got
        conn.process_data_events(time_limit=0.05)
    raise AssertionError("nothing arrived")


def scenario_requeue_order(conn):
    ch = conn.channel()
    ch.queue_declare("q")
    for i in range(6):
        ch.basic_publish("", "q", b"%d" % i)
    tags = [ch.basic_get("q")[0].delivery_tag for _ in range(4)]
    ch.basic_nack(tags[3], requeue=True)
    ch.basic_reject(tags[1], requeue=True)
    ch.basic_ack(tags[0])
    ch.basic_nack(tags[2], multiple=False, requeue=True)
    return drain(ch, "q")


def scenario_x_death(conn):
    ch = conn.channel()
    ch.exchange_declare("dlx", "topic")
    ch.queue_declare("dead")
    ch.queue_bind("dead", "dlx", "#")
    ch.queue_declare("src", arguments={"x-dead-letter-exchange": "dlx", "x-message-ttl": 60000})
    ch.basic_publish("", "src", b"a", pika.BasicProperties(headers={"h": 1}, expiration="10"))
    method, props, body = wait_get(conn, ch, "dead")
    death = dict(props.headers["x-death"][0])
    death.pop("time")
    # x-last-death-* is what RabbitMQ 3.13+ adds and Leveret follows; the 3.10 here lacks it
    headers = {k: v for k, v in props.headers.items()
               if k != "x-death" and not k.startswith("x-last-death-")}
    return (body, method.exchange, method.routing_key, props.expiration, sorted(death.items()),
            sorted(headers.items()))


def scenario_bad_arguments(conn):
    seen = []
    for args in ({"x-message-ttl": -5}, {"x-max-length": "ten"}, {"x-overflow": "x"},
                 {"x-max-priority": 1000}, {"x-expires": 0}):
        try:
            conn.channel().queue_declare("bad", arguments=args)
            seen.append("ok")
        except pika.exceptions.ChannelClosedByBroker as exc:
            seen.append((exc.reply_code, exc.reply_text.split(" vhost ")[0]))
    return seen


def scenario_qos_and_get(conn):
    ch = conn.channel()
    ch.queue_declare("pf")
    for i in range(5):
        ch.basic_publish("", "pf", b"%d" % i)
    ch.basic_qos(prefetch_count=2)
    got: list[bytes] = []
    ch.basic_consume("pf", lambda c, m, p, b: got.append(b))
    for _ in range(40):
        conn.process_data_events(time_limit=0.05)
        if len(got) >= 2:
            break
    conn.process_data_events(time_limit=0.2)
    return got, ch.queue_declare("pf", passive=True).method.message_count


def scenario_overflow(conn):
    ch = conn.channel()
    ch.queue_declare("cap", arguments={"x-max-length": 2})
    ch.queue_declare("cap-reject", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    for i in range(4):
        ch.basic_publish("", "cap", b"%d" % i)
    outcome = []
    for i in range(2):
        try:
            ch.basic_publish("", "cap-reject", b"%d" % i)
            outcome.append("ack")
        except pika.exceptions.NackError:
            outcome.append("nack")
    return drain(ch, "cap"), outcome, drain(ch, "cap-reject")


def scenario_priorities(conn):
    ch = conn.channel()
    ch.queue_declare("p", arguments={"x-max-priority": 3})
    for body, prio in ((b"a", 0), (b"b", 3), (b"c", 1), (b"d", 3), (b"e", 10), (b"f", None)):
        ch.basic_publish("", "p", body, pika.BasicProperties(priority=prio))
    return drain(ch, "p")


def scenario_exchange_errors(conn):
    seen = []
    for action in (
        lambda c: c.exchange_declare("amq.custom", "direct"),
        lambda c: c.exchange_declare("missing", "direct", passive=True),
        lambda c: (c.exchange_declare("t", "topic"), c.exchange_declare("t", "direct")),
        lambda c: c.queue_bind("nope", "amq.direct", "k"),
        lambda c: c.queue_declare("amq.q"),
    ):
        try:
            action(conn.channel())
            seen.append("ok")
        except pika.exceptions.ChannelClosedByBroker as exc:
            seen.append((exc.reply_code, exc.reply_text.split(" '")[0]))
    return seen


@pytest.mark.leveret_only
@pytest.mark.parametrize("scenario", [
    scenario_requeue_order,
    scenario_x_death,
    scenario_bad_arguments,
    scenario_qos_and_get,
    scenario_overflow,
    scenario_priorities,
    scenario_exchange_errors,
], ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_same_as_rabbitmq(broker, rabbitmq_vhost_url, scenario):
    ours, theirs = run_both(broker, rabbitmq_vhost_url, scenario)
    assert ours == theirs


# ---------------------------------------------------------------- more delivery scenarios
#
# These share one RabbitMQ vhost per module (creating one per scenario costs seconds of
# rabbitmqctl each), so each uses its own names and deletes them before declaring.


@pytest.fixture(scope="module")
def rabbitmq_shared_vhost_url() -> Iterator[str]:
    if not rabbitmq_available():
        pytest.skip("no RabbitMQ on localhost:5672")
    vhost = f"leveret-diff-{uuid.uuid4().hex[:10]}"
    try:
        for cmd in (["add_vhost", vhost],
                    ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
            subprocess.run(["rabbitmqctl", "-q", *cmd], check=True, timeout=30,
                           capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot manage the local RabbitMQ (rabbitmqctl)")
    yield f"amqp://guest:guest@127.0.0.1:5672/{urllib.parse.quote(vhost, safe='')}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=30, capture_output=True)


def fresh(ch, queue: str, **arguments) -> str:
    ch.queue_delete(queue)
    ch.queue_declare(queue, arguments=arguments or None)
    return queue


def fresh_exchange(ch, name: str, kind: str) -> str:
    ch.exchange_delete(name)
    ch.exchange_declare(name, kind)
    return name


def outcome(action) -> object:
    """What a client sees of ``action``: its result, or the close code and text."""
    try:
        return action()
    except pika.exceptions.NackError:
        return "nacked"
    except pika.exceptions.UnroutableError:
        return "returned"
    except pika.exceptions.ChannelClosedByBroker as exc:
        return ("channel closed", exc.reply_code, _no_vhost(exc.reply_text))
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return ("connection closed", exc.reply_code, _no_vhost(exc.reply_text))


def _no_vhost(text: str) -> str:
    head, sep, tail = text.partition(" in vhost '")
    return head + sep + "V'" + tail.partition("'")[2] if sep else text


def pump_until(conn, condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        conn.process_data_events(time_limit=0.02)


def scenario_requeue_across_channels(conn):
    ch = conn.channel()
    q = fresh(ch, "d-rq")
    for i in range(1, 7):
        ch.basic_publish("", q, b"%d" % i)
    ch1, ch2 = conn.channel(), conn.channel()
    ch1.basic_get(q)
    ch2.basic_get(q)
    t3 = ch1.basic_get(q)[0].delivery_tag
    ch2.basic_get(q)
    ch2.close()  # requeues 2 and 4
    ch1.basic_nack(t3, requeue=True)
    first = drain(ch, q)
    ch1.close()
    q2 = fresh(ch, "d-rq2")
    for i in range(1, 4):
        ch.basic_publish("", q2, b"%d" % i)
    a, b = (ch.basic_get(q2)[0].delivery_tag for _ in range(2))
    ch.basic_publish("", q2, b"4")
    ch.basic_reject(b, requeue=True)
    ch.basic_reject(a, requeue=True)
    second = drain(ch, q2)
    for i in range(3):
        ch.basic_publish("", q2, b"%d" % i)
    for _ in range(3):
        ch.basic_get(q2)
    ch.basic_nack(0, multiple=True, requeue=True)  # 0 with multiple: everything outstanding
    return first, second, drain(ch, q2)


def scenario_qos_combinations(conn):
    seen = []
    for calls in (((False, 2), (True, 3)), ((True, 3), (False, 2)), ((True, 3),),
                  ((True, 3), (True, 0)), ((False, 1),)):
        ch = conn.channel()
        queues = [fresh(ch, f"d-qos{i}") for i in range(2)]
        for q in queues:
            for _ in range(5):
                ch.basic_publish("", q, b"m")
        for global_qos, count in calls:
            ch.basic_qos(prefetch_count=count, global_qos=global_qos)
        got: list[str] = []
        for q in queues:
            ch.basic_consume(q, lambda c, m, p, b, q=q, got=got: got.append(q))
        ready = [ch.queue_declare(q, passive=True).method.message_count for q in queues]
        pump_until(conn, lambda got=got, ready=ready: len(got) >= 10 - sum(ready))
        seen.append((ready, sorted(got)))
        ch.close()
    ch = conn.channel()
    q = fresh(ch, "d-qos-get")
    for _ in range(5):
        ch.basic_publish("", q, b"m")
    ch.basic_qos(prefetch_count=1, global_qos=True)
    method = ch.basic_get(q)[0]
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag))
    ch.basic_ack(method.delivery_tag)
    seen.append(ch.queue_declare(q, passive=True).method.message_count)
    return seen


def scenario_tx_and_tag_errors(conn):
    seen = []

    def tx_double_ack():
        ch = conn.channel()
        q = fresh(ch, "d-txd")
        ch.basic_publish("", q, b"1")
        ch.tx_select()
        tag = ch.basic_get(q)[0].delivery_tag
        ch.basic_ack(tag)
        ch.basic_ack(tag)
        return ch.queue_declare(q, passive=True).method.message_count

    def unknown(kind):
        def run():
            ch = conn.channel()
            getattr(ch, kind)(42)
            return ch.queue_declare("d-txd", passive=True).method.message_count
        return run

    def switch(first, second):
        def run():
            ch = conn.channel()
            getattr(ch, first)()
            getattr(ch, second)()
        return run

    for action in (tx_double_ack, unknown("basic_ack"), unknown("basic_reject"),
                   lambda: conn.channel().basic_nack(42, multiple=True) or
                   conn.channel().queue_declare("d-txd", passive=True).method.message_count,
                   lambda: conn.channel().tx_commit(), lambda: conn.channel().tx_rollback(),
                   switch("confirm_delivery", "tx_select"),
                   switch("tx_select", "confirm_delivery")):
        seen.append(outcome(action))
    return seen


def _typed(value):
    """A header value with its decoded type, so a long and an int differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def scenario_dead_letter_headers(conn):
    from pika.compat import long

    ch = conn.channel()
    dlx = fresh_exchange(ch, "d-dlx", "fanout")
    dead = fresh(ch, "d-dead")
    ch.queue_bind(dead, dlx)
    src = fresh(ch, "d-src", **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", src, b"body", pika.BasicProperties(
        headers={"long": long(5), "int": 5, "bytes": b"\x01", "bool": False, "nested": {"a": [1]},
                 "CC": ["other"]},
        expiration="600000", priority=4, delivery_mode=2, correlation_id="c", app_id="app"))
    ch.basic_reject(ch.basic_get(src)[0].delivery_tag, requeue=False)
    method, props, body = wait_get(conn, ch, dead)
    headers = {k: v for k, v in props.headers.items() if not k.startswith("x-last-death-")}
    for death in headers["x-death"]:
        death["time"] = "T"
    return (body, method.exchange, method.routing_key, props.expiration, props.priority,
            props.delivery_mode, props.correlation_id, props.app_id, _typed(headers))


def scenario_x_death_history(conn):
    ch = conn.channel()
    retry = fresh(ch, "d-retry", **{"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": "d-work"})
    work = fresh(ch, "d-work", **{"x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": retry})
    ch.basic_publish("", work, b"job")
    history = []
    for _ in range(3):
        method = None
        for _ in range(500):
            method, props, _ = ch.basic_get(work)
            if method is not None:
                break
            conn.process_data_events(time_limit=0.02)
        assert method is not None
        headers = props.headers or {}
        history.append(([(d["queue"], d["reason"], d["count"], sorted(d))
                         for d in headers.get("x-death", [])],
                        sorted((k, v) for k, v in headers.items()
                               if k.startswith("x-first-death-"))))
        ch.basic_reject(method.delivery_tag, requeue=False)
    return history


def scenario_dead_letter_cycle(conn):
    ch = conn.channel()
    dlx = fresh_exchange(ch, "d-cycle-dlx", "fanout")
    cyclic = fresh(ch, "d-cyclic", **{"x-message-ttl": 10, "x-dead-letter-exchange": dlx})
    witness = fresh(ch, "d-witness")
    ch.queue_bind(cyclic, dlx)
    ch.queue_bind(witness, dlx)
    ch.basic_publish("", cyclic, b"x")
    _, props, body = wait_get(conn, ch, witness)
    return body, ch.queue_declare(cyclic, passive=True).method.message_count, [
        (d["queue"], d["reason"]) for d in props.headers["x-death"]]


def scenario_length_limits(conn):
    ch = conn.channel()
    dlx = fresh_exchange(ch, "d-len-dlx", "fanout")
    dead = fresh(ch, "d-len-dead")
    ch.queue_bind(dead, dlx)
    by_bytes = fresh(ch, "d-bytes", **{"x-max-length-bytes": 10, "x-dead-letter-exchange": dlx})
    for body in (b"12345", b"67890", b"abc", b""):
        ch.basic_publish("", by_bytes, body)
    kept = drain(ch, by_bytes)
    dropped = []
    while len(dropped) < 1:
        _, props, body = wait_get(conn, ch, dead)
        dropped.append((body, props.headers["x-death"][0]["reason"]))
    ch.confirm_delivery()
    rdlx = fresh(ch, "d-rdlx", **{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": dlx})
    confirms = []
    for body in (b"first", b"", b"third"):
        confirms.append(outcome(lambda body=body: ch.basic_publish("", rdlx, body)))
    for _ in range(2):
        _, props, body = wait_get(conn, ch, dead)
        dropped.append((body, props.headers["x-death"][0]["reason"]))
    got: list[bytes] = []
    consumer = conn.channel()
    for name, overflow in (("d-zero-drop", "drop-head"), ("d-zero-reject", "reject-publish")):
        q = fresh(ch, name, **{"x-max-length": 0, "x-overflow": overflow})
        consumer.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
        confirms.append(outcome(lambda q=q: ch.basic_publish("", q, q.encode())))
    pump_until(conn, lambda: len(got) >= 1)
    return kept, sorted(dropped), drain(ch, rdlx), confirms, got


def scenario_ttl_at_the_head(conn):
    ch = conn.channel()
    dlx = fresh_exchange(ch, "d-ttl-dlx", "fanout")
    dead = fresh(ch, "d-ttl-dead")
    ch.queue_bind(dead, dlx)
    q = fresh(ch, "d-ttl", **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="600000"))
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="20"))
    first = ch.basic_get(q, auto_ack=True)[2]
    _, props, second = wait_get(conn, ch, dead)
    pq = fresh(ch, "d-ttl-prio", **{"x-max-priority": 2, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", pq, b"high", pika.BasicProperties(priority=2))
    ch.basic_publish("", pq, b"low", pika.BasicProperties(expiration="10"))
    high = ch.basic_get(pq, auto_ack=True)[2]
    _, _, low = wait_get(conn, ch, dead)
    both = fresh(ch, "d-ttl-both", **{"x-message-ttl": 600000, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", both, b"min", pika.BasicProperties(expiration="20"))
    _, props2, third = wait_get(conn, ch, dead)
    return (first, second, props.headers["x-death"][0]["original-expiration"], high, low,
            drain(ch, pq), third, props2.headers["x-death"][0].get("original-expiration"))


def scenario_expiration_property(conn):
    seen = []
    for i, expiration in enumerate(("foo", "-1", "1.5", " 10", "10a", "", "+60000",
                                    "315360000001", "0", "0060000", "-0", "1e3")):
        def publish(expiration=expiration, i=i):
            ch = conn.channel()
            # a fresh name each time: RabbitMQ 3.10 can route a publish that follows a delete
            # and redeclare of the same name to the deleted queue
            q = fresh(ch, f"d-exp{i}")
            ch.confirm_delivery()  # the count below must see the message
            ch.basic_publish("", q, b"x", pika.BasicProperties(expiration=expiration))
            return ch.queue_declare(q, passive=True).method.message_count
        seen.append((expiration, outcome(publish)))
    return seen


def scenario_all_argument_errors(conn):
    import decimal

    seen = []
    for args in ({"x-message-ttl": -1}, {"x-message-ttl": "abc"},
                 {"x-message-ttl": decimal.Decimal("1.5")}, {"x-message-ttl": 2**40},
                 {"x-message-ttl": True}, {"x-expires": 0}, {"x-expires": -5},
                 {"x-expires": 315360000001}, {"x-max-length": -1}, {"x-max-length": {"a": 1}},
                 {"x-max-length-bytes": -1}, {"x-max-priority": 256}, {"x-max-priority": -1},
                 {"x-max-priority": "x"}, {"x-dead-letter-routing-key": "k"},
                 {"x-dead-letter-exchange": 5}, {"x-overflow": "foo"}, {"x-overflow": 5},
                 {"x-single-active-consumer": "yes"}, {"x-single-active-consumer": 1},
                 {"x-queue-mode": "foo"}, {"x-queue-type": "foo"},
                 {"x-dead-letter-exchange": "not-declared"}, {"x-max-priority": 0},
                 {"x-message-ttl": 0}):
        def declare(args=args):
            ch = conn.channel()
            ch.queue_delete("d-args")
            ch.queue_declare("d-args", arguments=args)
            ch.queue_delete("d-args")
            return "ok"
        seen.append(outcome(declare))
    return seen


def scenario_consumer_distribution(conn):
    ch = conn.channel()
    q = fresh(ch, "d-rr")
    got: list[tuple[str, bytes]] = []
    for name in ("a", "b", "c"):
        conn.channel().basic_consume(q, lambda c, m, p, b, n=name: got.append((n, b)),
                                     auto_ack=True)
    for i in range(6):
        ch.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got) >= 6)
    q2 = fresh(ch, "d-prio-consumers")
    got2: list[str] = []
    for prio, name in ((0, "lo"), (5, "hi"), (5, "hi2")):
        c = conn.channel()
        c.basic_qos(prefetch_count=2)
        c.basic_consume(q2, lambda c_, m, p, b, n=name: got2.append(n),
                        arguments={"x-priority": prio})
    for i in range(6):
        ch.basic_publish("", q2, b"%d" % i)
    pump_until(conn, lambda: len(got2) >= 6)
    return sorted(got), sorted(got2)


def scenario_counts_with_unacked(conn):
    ch = conn.channel()
    q = fresh(ch, "d-counts")
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    method = ch.basic_get(q)[0]
    purged = ch.queue_purge(q).method.message_count
    ch.basic_reject(method.delivery_tag, requeue=True)
    after_purge = drain(ch, q)
    ch.basic_publish("", q, b"again")
    ch.basic_get(q)
    empty_delete = outcome(lambda: ch.queue_delete(q, if_empty=True).method.message_count)
    ch2 = conn.channel()
    q2 = fresh(ch2, "d-counts2")
    for i in range(3):
        ch2.basic_publish("", q2, b"%d" % i)
    ch2.basic_get(q2)
    return purged, after_purge, empty_delete, ch2.queue_delete(q2).method.message_count


def scenario_limits_with_requeue_and_priorities(conn):
    ch = conn.channel()
    q = fresh(ch, "d-ml", **{"x-max-length": 2})
    for body in (b"1", b"2"):
        ch.basic_publish("", q, body)
    method = ch.basic_get(q)[0]
    ch.basic_publish("", q, b"3")
    ch.basic_nack(method.delivery_tag, requeue=True)  # back at the head, over the limit
    requeued = drain(ch, q)
    pq = fresh(ch, "d-mlp", **{"x-max-length": 2, "x-max-priority": 5})
    for body, prio in ((b"lo", 0), (b"hi", 5), (b"mid", 2)):
        ch.basic_publish("", pq, body, pika.BasicProperties(priority=prio))
    by_priority = drain(ch, pq)  # drop-head drops the head: the highest priority
    big = fresh(ch, "d-mlb", **{"x-max-length-bytes": 2})
    ch.basic_publish("", big, b"too long")
    return requeued, by_priority, drain(ch, big)


def _seen(ch, queue: str) -> list:
    """Every ready message of ``queue`` as the client sees it: body, routing key, typed headers."""
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        headers = props.headers
        if headers is not None:
            headers = {k: v for k, v in headers.items() if not k.startswith("x-last-death-")}
            for death in headers.get("x-death", []):
                death["time"] = "T"
        out.append((body, method.exchange, method.routing_key, _typed(headers)))


def scenario_sender_selected_routing(conn):
    from pika.compat import long

    ch = conn.channel()
    names = [fresh(ch, f"d-ss-{i}") for i in range(4)]
    direct = fresh_exchange(ch, "d-ss-direct", "direct")
    topic = fresh_exchange(ch, "d-ss-topic", "topic")
    fanout = fresh_exchange(ch, "d-ss-fanout", "fanout")
    for q, key in zip(names, ("k0", "k1", "k2", "k3")):
        ch.queue_bind(q, direct, key)
    ch.queue_bind(names[0], topic, "a.*")
    ch.queue_bind(names[1], topic, "#.b")
    ch.queue_bind(names[2], fanout)

    def pub(exchange, key, body, **headers):
        ch.basic_publish(exchange, key, body, pika.BasicProperties(headers=headers))

    pub(direct, "k0", b"cc+bcc", CC=["k1"], BCC=["k2"], n=long(3), i=3)
    pub(direct, "none", b"only-bcc", BCC=["k3"])
    pub(direct, "k0", b"dups", CC=["k0", "k1", "k1"], BCC=["k1", "k3"])
    pub(direct, "k0", b"odd-members", CC=[5, b"k1", {"k": "k2"}, "k3", True])
    pub(topic, "x", b"topic", CC=["a.1"], BCC=["z.b"])
    pub(fanout, "k0", b"fanout", CC=["k1"])
    pub("", names[0], b"default", CC=[names[1], "d-ss-missing"], BCC=[names[3]])
    pub(direct, "k0", b"empty", CC=[], BCC=[])
    seen = [_seen(ch, q) for q in names]
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append(
        (b, m.routing_key, m.reply_code, p.headers)))
    ch.confirm_delivery()
    for body, headers in ((b"m-cc", {"CC": ["k1"]}), (b"m-bcc", {"BCC": ["k2"]}),
                          (b"m-none", {"CC": ["zz"], "BCC": ["yy"]})):
        seen.append(outcome(lambda body=body, headers=headers: ch.basic_publish(
            direct, "unbound", body, pika.BasicProperties(headers=headers), mandatory=True)))
    conn.process_data_events(time_limit=0)
    return seen, returned, [_seen(ch, q) for q in names]


def scenario_sender_selected_errors(conn):
    import datetime
    import decimal

    seen = []
    for headers in ({"CC": "k"}, {"BCC": "k"}, {"CC": 5}, {"CC": 2**40},
                    {"CC": decimal.Decimal("1.5")}, {"CC": {"a": 1}}, {"CC": None},
                    {"CC": True}, {"CC": b"k"}, {"CC": datetime.datetime(2020, 1, 1)},
                    {"BCC": 5, "CC": "k"}, {"CC": ["k"], "BCC": False}):
        ch = conn.channel()
        fresh(ch, "d-ss-err")
        ch.confirm_delivery()
        seen.append(outcome(lambda ch=ch, headers=headers: ch.basic_publish(
            "", "d-ss-err", b"x", pika.BasicProperties(headers=headers))))
    ch = conn.channel()
    seen.append(outcome(lambda: ch.basic_publish(
        "d-ss-no-such-exchange", "k", b"x", pika.BasicProperties(headers={"CC": "k"}))
        or ch.queue_declare("d-ss-err", passive=True)))
    ch = conn.channel()
    ch.tx_select()
    seen.append(outcome(lambda: ch.basic_publish(
        "", "d-ss-err", b"x", pika.BasicProperties(headers={"BCC": 1}))
        or ch.queue_declare("d-ss-err", passive=True)))
    seen.append(conn.channel().queue_declare("d-ss-err", passive=True).method.message_count)
    return seen


def scenario_sender_selected_dead_letters(conn):
    ch = conn.channel()
    names = [fresh(ch, f"d-ssd-{i}") for i in range(3)]
    dlx = fresh_exchange(ch, "d-ssd-dlx", "direct")
    for q, key in zip(names, ("rk", "cc", "bcc")):
        ch.queue_bind(q, dlx, key)
    entry = fresh_exchange(ch, "d-ssd-in", "direct")
    plain = fresh(ch, "d-ssd-src", **{"x-dead-letter-exchange": dlx})
    fixed = fresh(ch, "d-ssd-fixed", **{"x-dead-letter-exchange": dlx,
                                          "x-dead-letter-routing-key": "rk"})
    ch.queue_bind(plain, entry, "rk")
    ch.queue_bind(fixed, entry, "fixed")
    props = pika.BasicProperties(headers={"CC": ["cc"], "BCC": ["bcc"]})
    ch.basic_publish(entry, "rk", b"plain", props)
    ch.basic_publish(entry, "fixed", b"fixed", props)
    for q in (plain, fixed):
        ch.basic_reject(ch.basic_get(q)[0].delivery_tag, requeue=False)
    # a dead letter of a dead letter: expired in a queue with the default exchange as its DLX
    twice = fresh(ch, "d-ssd-twice", **{"x-message-ttl": 0, "x-dead-letter-exchange": ""})
    again = fresh(ch, "d-ssd-again", **{"x-dead-letter-exchange": ""})
    ch.queue_bind(twice, entry, "twice")
    ch.basic_publish(entry, "twice", b"twice", pika.BasicProperties(
        headers={"CC": [again], "BCC": [names[0]]}))
    pump_until(conn, lambda: ch.queue_declare(again, passive=True).method.message_count)
    ch.basic_reject(ch.basic_get(again)[0].delivery_tag, requeue=False)
    pump_until(conn, lambda: ch.queue_declare(names[0], passive=True).method.message_count >= 4)
    # names[0] now holds both first dead letters and both deaths of "twice" (by its BCC key)
    return [_seen(ch, q) for q in (*names, again, twice)]


def scenario_alternate_exchange_after_e2e(conn):
    ch = conn.channel()
    q_back, q_alt = fresh(ch, "d-ae-back"), fresh(ch, "d-ae-alt")
    ch.exchange_delete("d-ae-front")
    alt = fresh_exchange(ch, "d-ae-alt", "fanout")
    ch.exchange_declare("d-ae-front", "direct", arguments={"alternate-exchange": alt})
    back = fresh_exchange(ch, "d-ae-back", "direct")
    ch.exchange_bind(back, "d-ae-front", "to-back")
    ch.queue_bind(q_back, back, "to-back")
    ch.queue_bind(q_alt, alt)
    ch.basic_publish("d-ae-front", "to-back", b"through")
    ch.basic_publish("d-ae-front", "elsewhere", b"alternate")
    ch.queue_unbind(q_back, back, "to-back")
    # the front exchange routes to back, which routes nowhere: the alternate is not used
    ch.basic_publish("d-ae-front", "to-back", b"dropped")
    return drain(ch, q_back), drain(ch, q_alt)


@pytest.mark.leveret_only
@pytest.mark.parametrize("scenario", [
    scenario_limits_with_requeue_and_priorities,
    scenario_requeue_across_channels,
    scenario_qos_combinations,
    scenario_tx_and_tag_errors,
    scenario_dead_letter_headers,
    scenario_x_death_history,
    scenario_dead_letter_cycle,
    scenario_length_limits,
    scenario_ttl_at_the_head,
    scenario_expiration_property,
    scenario_all_argument_errors,
    scenario_consumer_distribution,
    scenario_counts_with_unacked,
    scenario_sender_selected_routing,
    scenario_sender_selected_errors,
    scenario_sender_selected_dead_letters,
    scenario_alternate_exchange_after_e2e,
], ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_delivery_same_as_rabbitmq(broker, rabbitmq_shared_vhost_url, scenario):
    ours, theirs = run_both(broker, rabbitmq_shared_vhost_url, scenario)
    assert ours == theirs

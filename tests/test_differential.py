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

"""Permissions enforced on every AMQP operation as RabbitMQ does (rabbit_channel's
check_resource_access): which permission on which resource, in which order against the other
checks, with RabbitMQ's texts. The table below is what RabbitMQ 3.10 answered; each test runs
on Leveret and, when it is there, on the local RabbitMQ (a user and vhost of its own)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import aio_pika
import aiormq.exceptions
import pika
import pika.exceptions
import pytest

from conftest import rabbitmq_api, rabbitmq_available
from leveret import Broker

# a resource's name says what the restricted user may do with it: c(onfigure), w(rite), r(ead)
CONFIGURE = "^(c|cw|cr|cwr)-"
WRITE = "^(w|cw|wr|cwr)-"
READ = "^(r|cr|wr|cwr)-"
TOPIC = {"cwr-t": ("^a\\.", "^b\\."),  # a topic exchange: publish a.*, bind b.*
         "cwr-d": ("^a\\.", "^b\\."),  # a direct exchange: topic permissions do not apply
         "cwr-u": ("^{username}\\.", "^{vhost}\\.")}

# an operation gets a channel and the run's names ({"user": ..., "vhost": ...})
Op = Callable[[pika.adapters.blocking_connection.BlockingChannel, dict[str, str]], object]


def publish(exchange: str, key: str = "k") -> Op:
    # a publish error closes the channel asynchronously: a round trip after it shows it
    return lambda ch, names: (ch.basic_publish(exchange, key.format(**names), b"x"),
                              ch.basic_qos(prefetch_count=1))


DENIED = "access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"
DEFAULT = "operation not permitted on the default exchange"


def denied(kind: str, name: str) -> tuple[int, str]:
    return 403, DENIED.format(kind=kind, name=name, vhost="{vhost}", user="{user}")


def topic_denied(key: str, exchange: str) -> tuple[int, str]:
    return 403, (f"access to topic '{key}' in exchange '{exchange}' in vhost '{{vhost}}' "
                 f"refused for user '{{user}}'")


def no(kind: str, name: str) -> tuple[int, str]:
    return 404, f"no {kind} '{name}' in vhost '{{vhost}}'"


# (operation, what it does, the outcome RabbitMQ 3.10 gave: "ok" or (code, text))
TABLE: list[tuple[str, Op, object]] = [
    ("exchange.declare, configure granted", lambda ch, _: ch.exchange_declare("c-x"), "ok"),
    ("exchange.declare, no configure", lambda ch, _: ch.exchange_declare("none-x"),
     denied("exchange", "none-x")),
    ("exchange.declare of amq.direct, no configure",
     lambda ch, _: ch.exchange_declare("amq.direct", durable=True),
     denied("exchange", "amq.direct")),
    ("exchange.declare amq.* new, no configure", lambda ch, _: ch.exchange_declare("amq.cnew"),
     denied("exchange", "amq.cnew")),
    ("exchange.declare, unknown type first", lambda ch, _: ch.exchange_declare("", "nosuchtype"),
     ("connection", 503, "unknown exchange type 'nosuchtype'")),
    ("exchange.declare passive needs nothing",
     lambda ch, _: ch.exchange_declare("none-x", passive=True), "ok"),
    ("exchange.declare passive of the default exchange",
     lambda ch, _: ch.exchange_declare("", passive=True), (403, DEFAULT)),
    ("exchange.declare passive, missing", lambda ch, _: ch.exchange_declare("c-gone", passive=True),
     no("exchange", "c-gone")),
    ("exchange.declare of the default exchange", lambda ch, _: ch.exchange_declare(""),
     (403, DEFAULT)),
    ("alternate exchange: read on the new exchange",
     lambda ch, _: ch.exchange_declare("c-ae", arguments={"alternate-exchange": "w-x"}),
     denied("exchange", "c-ae")),
    ("alternate exchange: write on it",
     lambda ch, _: ch.exchange_declare("cr-ae", arguments={"alternate-exchange": "none-x"}),
     denied("exchange", "none-x")),
    ("alternate exchange granted",
     lambda ch, _: ch.exchange_declare("cr-ae2", arguments={"alternate-exchange": "w-x"}), "ok"),
    ("exchange.delete, no configure", lambda ch, _: ch.exchange_delete("none-x"),
     denied("exchange", "none-x")),
    ("exchange.delete of a missing one, no configure",
     lambda ch, _: ch.exchange_delete("none-gone"), denied("exchange", "none-gone")),
    ("exchange.delete of a missing one", lambda ch, _: ch.exchange_delete("c-gone"), "ok"),
    ("exchange.delete amq.*", lambda ch, _: ch.exchange_delete("amq.direct"),
     (403, "deletion of system exchange 'amq.direct' in vhost '{vhost}' not allowed")),
    ("exchange.delete of the default exchange", lambda ch, _: ch.exchange_delete(""),
     (403, DEFAULT)),
    ("queue.declare, no configure (it exists)", lambda ch, _: ch.queue_declare("none-q"),
     denied("queue", "none-q")),
    ("queue.declare, configure granted", lambda ch, _: ch.queue_declare("c-q"), "ok"),
    ("queue.declare amq.*: the name first", lambda ch, _: ch.queue_declare("amq.q"),
     (403, "queue name 'amq.q' contains reserved prefix 'amq.*'")),
    ("queue.declare server-named: configure on amq.gen-*", lambda ch, _: ch.queue_declare(""),
     denied("queue", "amq.gen-*")),
    ("queue.declare passive needs nothing",
     lambda ch, _: ch.queue_declare("none-q2", passive=True), "ok"),
    ("queue.declare passive, missing", lambda ch, _: ch.queue_declare("none-gone", passive=True),
     no("queue", "none-gone")),
    ("dead-letter exchange: read on the new queue",
     lambda ch, _: ch.queue_declare("c-dlx", arguments={"x-dead-letter-exchange": "w-x"}),
     denied("queue", "c-dlx")),
    ("dead-letter exchange: write on it",
     lambda ch, _: ch.queue_declare("cr-dlx", arguments={"x-dead-letter-exchange": "none-x"}),
     denied("exchange", "none-x")),
    ("dead-letter exchange granted",
     lambda ch, _: ch.queue_declare("cr-dlx2", arguments={"x-dead-letter-exchange": "w-x"}), "ok"),
    ("dead-letter to the default exchange is amq.default",
     lambda ch, _: ch.queue_declare("cr-dlx3", arguments={"x-dead-letter-exchange": ""}),
     denied("exchange", "amq.default")),
    ("queue.bind granted", lambda ch, _: ch.queue_bind("w-q", "r-x", "k"), "ok"),
    ("queue.bind: write on the queue", lambda ch, _: ch.queue_bind("r-q", "r-x", "k"),
     denied("queue", "r-q")),
    ("queue.bind: read on the exchange", lambda ch, _: ch.queue_bind("w-q", "none-x", "k"),
     denied("exchange", "none-x")),
    ("queue.bind to the default exchange", lambda ch, _: ch.queue_bind("w-q", "", "k"),
     (403, DEFAULT)),
    ("queue.bind to the default exchange: the queue first",
     lambda ch, _: ch.queue_bind("none-q", "", "k"), denied("queue", "none-q")),
    ("queue.bind, missing queue", lambda ch, _: ch.queue_bind("w-gone", "r-x", "k"),
     no("queue", "w-gone")),
    ("queue.bind, missing exchange", lambda ch, _: ch.queue_bind("w-q", "r-gone", "k"),
     no("exchange", "r-gone")),
    ("queue.unbind granted", lambda ch, _: ch.queue_unbind("w-q", "r-x", "k"), "ok"),
    ("queue.unbind: write on the queue", lambda ch, _: ch.queue_unbind("r-q", "r-x", "k"),
     denied("queue", "r-q")),
    ("queue.unbind: read on the exchange", lambda ch, _: ch.queue_unbind("w-q", "none-x", "k"),
     denied("exchange", "none-x")),
    ("exchange.bind granted", lambda ch, _: ch.exchange_bind("w-x2", "r-x", "k"), "ok"),
    ("exchange.bind: write on the destination", lambda ch, _: ch.exchange_bind("r-x", "r-x", "k"),
     denied("exchange", "r-x")),
    ("exchange.bind: read on the source", lambda ch, _: ch.exchange_bind("w-x2", "none-x", "k"),
     denied("exchange", "none-x")),
    ("exchange.bind to the default exchange: write on amq.default",
     lambda ch, _: ch.exchange_bind("", "r-x", "k"), denied("exchange", "amq.default")),
    ("exchange.unbind granted", lambda ch, _: ch.exchange_unbind("w-x2", "r-x", "k"), "ok"),
    ("exchange.unbind: read on the source", lambda ch, _: ch.exchange_unbind("w-x2", "none-x", "k"),
     denied("exchange", "none-x")),
    ("queue.purge granted", lambda ch, _: ch.queue_purge("r-q"), "ok"),
    ("queue.purge: read", lambda ch, _: ch.queue_purge("w-q"), denied("queue", "w-q")),
    ("queue.purge, missing", lambda ch, _: ch.queue_purge("r-gone"), no("queue", "r-gone")),
    ("queue.delete: configure", lambda ch, _: ch.queue_delete("none-q"), denied("queue", "none-q")),
    ("queue.delete of a missing one", lambda ch, _: ch.queue_delete("c-gone"), "ok"),
    ("basic.get granted", lambda ch, _: ch.basic_get("r-q"), "ok"),
    ("basic.get: read", lambda ch, _: ch.basic_get("none-q"), denied("queue", "none-q")),
    ("basic.get, missing", lambda ch, _: ch.basic_get("r-gone"), no("queue", "r-gone")),
    ("basic.consume: read", lambda ch, _: ch.basic_consume("none-q", print),
     denied("queue", "none-q")),
    ("basic.consume granted", lambda ch, _: ch.basic_consume("r-q", print), "ok"),
    ("basic.publish: write", publish("none-x"), denied("exchange", "none-x")),
    ("basic.publish granted", publish("w-x"), "ok"),
    ("basic.publish to the default exchange is amq.default", publish(""),
     denied("exchange", "amq.default")),
    ("basic.publish, missing exchange", publish("w-gone"), no("exchange", "w-gone")),
    ("basic.publish, missing exchange, no write: 403 first", publish("none-gone"),
     denied("exchange", "none-gone")),
    ("topic: publish with a key granted", publish("cwr-t", "a.1"), "ok"),
    ("topic: publish with a key refused", publish("cwr-t", "x.1"), topic_denied("x.1", "cwr-t")),
    ("topic: bind with a key granted", lambda ch, _: ch.queue_bind("cwr-q", "cwr-t", "b.1"), "ok"),
    ("topic: bind with a key refused", lambda ch, _: ch.queue_bind("cwr-q", "cwr-t", "x.1"),
     topic_denied("x.1", "cwr-t")),
    ("topic: unbind with a key refused", lambda ch, _: ch.queue_unbind("cwr-q", "cwr-t", "x.1"),
     topic_denied("x.1", "cwr-t")),
    ("topic: exchange.bind with a key refused",
     lambda ch, _: ch.exchange_bind("cwr-t", "cwr-t", "x.1"), topic_denied("x.1", "cwr-t")),
    ("topic permissions on a direct exchange do not apply", publish("cwr-d", "x.1"), "ok"),
    ("topic: {username} in an expression", publish("cwr-u", "{user}.1"), "ok"),
    ("topic: {username} in an expression, refused", publish("cwr-u", "other.1"),
     topic_denied("other.1", "cwr-u")),
    ("topic: {vhost} in an expression",
     lambda ch, names: ch.queue_bind("cwr-q", "cwr-u", f"{names['vhost']}.1"), "ok"),
]


def prepare(ch) -> None:
    """What the administrator declares before the restricted user starts."""
    for name, kind in (("r-x", "direct"), ("none-x", "direct"), ("w-x", "direct"),
                       ("w-x2", "direct"), ("cwr-t", "topic"), ("cwr-d", "direct"),
                       ("cwr-u", "topic")):
        ch.exchange_declare(name, kind)
    for name in ("none-q", "r-q", "w-q", "cwr-q", "none-q2"):
        ch.queue_declare(name)


def run_table(port: int, vhost: str, user: str) -> list[tuple[str, object]]:
    def connect(name: str, password: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", port, vhost, pika.PlainCredentials(name, password)))

    admin = connect("guest", "guest")
    prepare(admin.channel())
    conn = connect(user, "pw")
    results = []
    for what, op, _ in TABLE:
        if not conn.is_open:
            conn = connect(user, "pw")
        ch = conn.channel()
        try:
            op(ch, {"user": user, "vhost": vhost})
            ch.close()
            outcome: object = "ok"
        except pika.exceptions.ChannelClosedByBroker as exc:
            outcome = (exc.reply_code, exc.reply_text)
        except pika.exceptions.ConnectionClosedByBroker as exc:
            outcome = ("connection", exc.reply_code, exc.reply_text)
        results.append((what, outcome))
    for c in (conn, admin):
        if c.is_open:
            c.close()
    return results


def expected(vhost: str, user: str) -> list[tuple[str, object]]:
    out = []
    for what, _, outcome in TABLE:
        if isinstance(outcome, tuple):
            code = outcome[-2]
            prefix = {403: "ACCESS_REFUSED", 404: "NOT_FOUND", 503: "COMMAND_INVALID"}[code]
            text = f"{prefix} - " + outcome[-1].format(vhost=vhost, user=user)
            outcome = (*outcome[:-1], text)
        out.append((what, outcome))
    return out


def same(results: list[tuple[str, object]], wanted: list[tuple[str, object]]) -> list[str]:
    """The rows that differ (a server-named queue's random name matches amq.gen-*)."""
    bad = []
    for (what, got), (_, want) in zip(results, wanted):
        got_s, want_s = str(got), str(want)
        if "amq.gen-*" in want_s:
            got_s = re.sub(r"amq\.gen-[A-Za-z0-9_-]+", "amq.gen-*", got_s)
        if got_s != want_s:
            bad.append(f"{what}: got {got_s}, RabbitMQ gives {want_s}")
    return bad


def names() -> tuple[str, str]:
    return f"leveret-perm-u-{uuid.uuid4().hex[:8]}", f"leveret-perm-v-{uuid.uuid4().hex[:8]}"


def test_every_operation_checks_the_permission_rabbitmq_checks():
    user, vhost = names()
    with Broker.in_thread() as broker:
        broker.call(lambda: broker.broker.access.add_vhost(vhost, grant_to="guest"))
        broker.add_user(user, "pw")
        broker.set_permissions(user, vhost, CONFIGURE, WRITE, READ)
        for exchange, (write, read) in TOPIC.items():
            broker.set_topic_permissions(user, vhost, exchange, write, read)
        results = run_table(broker.port, vhost, user)
    assert same(results, expected(vhost, user)) == []


@pytest.mark.rabbitmq
def test_the_table_is_what_rabbitmq_does():
    if not rabbitmq_available() or rabbitmq_api("GET", "/whoami")[0] != 200:
        pytest.skip("no RabbitMQ with its management API on localhost")
    user, vhost = names()
    rabbitmq_api("PUT", f"/users/{user}", {"password": "pw", "tags": ""})
    rabbitmq_api("PUT", f"/vhosts/{vhost}", {})
    try:
        rabbitmq_api("PUT", f"/permissions/{vhost}/guest",
                     {"configure": ".*", "write": ".*", "read": ".*"})
        rabbitmq_api("PUT", f"/permissions/{vhost}/{user}",
                     {"configure": CONFIGURE, "write": WRITE, "read": READ})
        for exchange, (write, read) in TOPIC.items():
            rabbitmq_api("PUT", f"/topic-permissions/{vhost}/{user}",
                         {"exchange": exchange, "write": write, "read": read})
        results = run_table(5672, vhost, user)
    finally:
        rabbitmq_api("DELETE", f"/users/{user}")
        rabbitmq_api("DELETE", f"/vhosts/{vhost}")
    assert same(results, expected(vhost, user)) == []


# ---------------------------------------------------------------------- beyond the table


@pytest.fixture
def restricted() -> Iterator[tuple[Broker, str]]:
    with Broker.in_thread() as broker:
        broker.add_user("app", "pw")
        broker.set_permissions("app", "/", "^app\\.", "^(app\\.|amq\\.default$)", "^app\\.")
        yield broker, f"amqp://app:pw@127.0.0.1:{broker.port}/"


def test_changed_permissions_apply_to_open_channels(restricted):
    broker, url = restricted
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("app.q")
    ch.basic_publish("", "app.q", b"1")  # confirmed: the write was checked and remembered
    broker.set_permissions("app", "/", "^app\\.", "^$", "^app\\.")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_publish("", "app.q", b"2")
    assert info.value.reply_code == 403
    assert "access to exchange 'amq.default' in vhost '/' refused for user 'app'" in (
        info.value.reply_text)
    ch = conn.channel()
    assert ch.basic_get("app.q", auto_ack=True)[2] == b"1"  # read is still granted
    broker.set_permissions("app", "/", "^app\\.", ".*", "^app\\.")
    ch.basic_publish("", "app.q", b"3")
    assert ch.basic_get("app.q", auto_ack=True)[2] == b"3"
    broker.clear_permissions("app", "/")  # no permissions at all: every check refuses
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("app.other")
    assert info.value.reply_code == 403
    conn.close()


def test_a_consumer_keeps_consuming_after_read_is_revoked(restricted):
    """RabbitMQ checks read when a consumer starts, not for each delivery."""
    broker, url = restricted
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare("app.q")
    got: list[bytes] = []
    ch.basic_consume("app.q", lambda c, m, p, body: got.append(body), auto_ack=True)
    broker.set_permissions("app", "/", "^app\\.", ".*", "^$")
    ch.basic_publish("", "app.q", b"still")
    while not got:
        conn.process_data_events(time_limit=0.1)
    assert got == [b"still"]
    conn.close()


def test_redeclaring_a_predeclared_exchange_as_it_is_works(broker):
    """amq.* is reserved for creation only (rabbit_channel:check_name): amq.direct may be
    redeclared with its own attributes, but not with others."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.exchange_declare("amq.direct", "direct", durable=True)
    ch.exchange_declare("amq.topic", "topic", durable=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.exchange_declare("amq.fanout", "fanout", durable=False)
    assert info.value.reply_code == 406
    conn.close()


async def test_aio_pika_sees_access_refused():
    async with Broker() as broker:
        broker.add_user("app", "pw")
        broker.set_permissions("app", "/", "^app\\.", "^app\\.", "^app\\.")
        conn = await aio_pika.connect(f"amqp://app:pw@127.0.0.1:{broker.port}/")
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue("app.work")
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as info:
                await ch.declare_queue("other.work")
            assert "access to queue 'other.work' in vhost '/' refused for user 'app'" in str(
                info.value)
            ch = await conn.channel()
            exchange = await ch.declare_exchange("app.events", aio_pika.ExchangeType.TOPIC)
            queue = await ch.declare_queue("app.work")
            await queue.bind(exchange, "#")
            await exchange.publish(aio_pika.Message(b"hello"), "x.y")
            message = await queue.get(timeout=5)
            assert message.body == b"hello"
            await message.ack()


def test_a_remembered_publish_check_does_not_outlive_its_exchange(restricted):
    """A channel remembers that it may publish to an exchange; an exchange deleted and
    declared again as a topic exchange with topic permissions is checked again."""
    broker, url = restricted
    broker.set_topic_permissions("app", "/", "app.x", "^allowed\\.", ".*")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("app.x", "direct")
    ch.basic_publish("app.x", "other.key", b"1")  # a direct exchange: no topic check
    ch.exchange_delete("app.x")
    ch.exchange_declare("app.x", "topic")
    ch.basic_publish("app.x", "allowed.key", b"2")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.basic_publish("app.x", "other.key", b"3")
    assert info.value.reply_text == ("ACCESS_REFUSED - access to topic 'other.key' in exchange "
                                     "'app.x' in vhost '/' refused for user 'app'")
    conn.close()


def _publish_as(port: int, user: str, vhost: str, user_id: str) -> object:
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials(user, "pw")))
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        ch.basic_publish("amq.direct", "nowhere", b"x", pika.BasicProperties(user_id=user_id))
        outcome: object = "ok"
    except pika.exceptions.ChannelClosedByBroker as exc:
        outcome = (exc.reply_code, exc.reply_text)
    conn.close()
    return outcome


def test_only_an_impersonator_may_publish_as_someone_else():
    """rabbitmq.com/docs/validated-user-id: the impersonator tag lifts the user_id check;
    the same on the local RabbitMQ when it is there."""
    user, vhost = names()
    plain = user + "-plain"
    with Broker.in_thread() as broker:
        broker.call(lambda: broker.broker.access.add_vhost(vhost))
        for name, tags in ((user, ["impersonator"]), (plain, [])):
            broker.add_user(name, "pw", tags=tags)
            broker.set_permissions(name, vhost)
        ours = [_publish_as(broker.port, u, vhost, "someone-else") for u in (user, plain)]
    assert ours == ["ok", (406, f"PRECONDITION_FAILED - user_id property set to 'someone-else' "
                                f"but authenticated user was '{plain}'")]
    if not rabbitmq_available() or rabbitmq_api("GET", "/whoami")[0] != 200:
        return
    rabbitmq_api("PUT", f"/vhosts/{vhost}", {})
    try:
        for name, tags in ((user, "impersonator"), (plain, "")):
            rabbitmq_api("PUT", f"/users/{name}", {"password": "pw", "tags": tags})
            rabbitmq_api("PUT", f"/permissions/{vhost}/{name}",
                         {"configure": ".*", "write": ".*", "read": ".*"})
        rabbit = [_publish_as(5672, u, vhost, "someone-else") for u in (user, plain)]
    finally:
        for name in (user, plain):
            rabbitmq_api("DELETE", f"/users/{name}")
        rabbitmq_api("DELETE", f"/vhosts/{vhost}")
    assert ours == rabbit

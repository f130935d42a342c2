"""Dead letters, TTL, length limits, priorities, single active consumer, argument checks.

These use only AMQP (bar the memory watermark test), so ``LEVERET_TEST_TARGET=rabbitmq`` runs
them against a real RabbitMQ as well.
"""

from __future__ import annotations

import datetime

import pika
import pika.exceptions
import pytest

from test_delivery import Inbox, vhost_name
from test_exchanges import closed_with, drain


def get_one(connection, ch, queue: str, timeout: float = 10.0):
    """Wait (by polling basic.get between I/O turns) for a message on ``queue``."""
    for _ in range(int(timeout / 0.05)):
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        connection.process_data_events(time_limit=0.05)
    raise AssertionError(f"nothing arrived on {queue}")


def dlx_setup(ch, source: str, **args) -> str:
    ch.exchange_declare("dlx", "fanout")
    dead = ch.queue_declare("dead-" + source).method.queue
    ch.queue_bind(dead, "dlx")
    ch.queue_declare(source, arguments={"x-dead-letter-exchange": "dlx", **args})
    return dead


# ---------------------------------------------------------------- dead letters


def test_rejected_message_is_dead_lettered_with_x_death(connection, channel):
    dead = dlx_setup(channel, "work")
    channel.basic_publish("", "work", b"bad", pika.BasicProperties(headers={"keep": "me"}))
    method, _, _ = channel.basic_get("work")
    channel.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = get_one(connection, channel, dead)
    assert body == b"bad"
    assert method.exchange == "dlx" and method.routing_key == "work"
    headers = props.headers
    assert headers["keep"] == "me"
    (death,) = headers["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == "work"
    assert death["exchange"] == ""
    assert death["routing-keys"] == ["work"]
    assert isinstance(death["time"], datetime.datetime)
    assert headers["x-first-death-reason"] == "rejected"
    assert headers["x-first-death-queue"] == "work"
    assert headers["x-first-death-exchange"] == ""


def test_nack_dead_letters_with_routing_key_override(connection, channel):
    channel.exchange_declare("dlx-direct", "direct")
    channel.queue_declare("parking")
    channel.queue_bind("parking", "dlx-direct", "parked")
    channel.queue_declare("src", arguments={"x-dead-letter-exchange": "dlx-direct",
                                            "x-dead-letter-routing-key": "parked"})
    channel.basic_publish("", "src", b"x")
    method, _, _ = channel.basic_get("src")
    channel.basic_nack(method.delivery_tag, requeue=False)
    method, props, _ = get_one(connection, channel, "parking")
    assert method.routing_key == "parked"
    assert props.headers["x-death"][0]["routing-keys"] == ["src"]


def test_x_death_count_increments(connection, channel):
    channel.exchange_declare("loop-dlx", "fanout")
    channel.queue_declare("again", arguments={"x-dead-letter-exchange": "loop-dlx"})
    channel.queue_bind("again", "loop-dlx")  # dead letters come straight back
    channel.basic_publish("", "again", b"x")
    for _ in range(2):
        method, _, _ = get_one_manual(connection, channel, "again")
        channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = get_one(connection, channel, "again")
    (death,) = props.headers["x-death"]
    assert death["count"] == 2 and death["reason"] == "rejected"


def get_one_manual(connection, ch, queue: str):
    for _ in range(200):
        method, props, body = ch.basic_get(queue)
        if method is not None:
            return method, props, body
        connection.process_data_events(time_limit=0.05)
    raise AssertionError("nothing arrived")


def test_missing_dlx_drops_silently(channel):
    channel.queue_declare("orphan", arguments={"x-dead-letter-exchange": "not-there"})
    channel.basic_publish("", "orphan", b"x")
    method, _, _ = channel.basic_get("orphan")
    channel.basic_reject(method.delivery_tag, requeue=False)
    assert drain(channel, "orphan") == []


def test_dead_letter_keeps_header_types(connection, channel):
    """The client's headers come back with their wire types (a long stays a long)."""
    from pika.compat import long

    dead = dlx_setup(channel, "typed")
    headers = {"as-long": long(7), "as-int": 7, "raw": b"\x00\x01", "flag": True, "s": "text",
               "nested": {"n": long(1)}, "list": [1, "two"]}
    channel.basic_publish("", "typed", b"x", pika.BasicProperties(
        headers=headers, priority=3, delivery_mode=2, message_id="mid", content_type="a/b"))
    method, _, _ = channel.basic_get("typed")
    channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = get_one(connection, channel, dead)
    got = props.headers
    assert isinstance(got["as-long"], long) and not isinstance(got["as-int"], long)
    assert isinstance(got["nested"]["n"], long)
    for key, value in headers.items():
        assert got[key] == value, key
    assert isinstance(got["x-death"][0]["count"], long)  # RabbitMQ writes count as a long
    assert (props.priority, props.delivery_mode, props.message_id, props.content_type) == (
        3, 2, "mid", "a/b")


def test_x_death_counts_per_queue_and_reason_most_recent_first(connection, channel):
    # work rejects to retry (TTL 20 ms), which expires back into work
    channel.queue_declare("retry", arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "work2"})
    channel.queue_declare("work2", arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "retry"})
    channel.basic_publish("", "work2", b"job", pika.BasicProperties(expiration="60000"))
    deaths = []
    for _ in range(3):
        method, props, _ = get_one_manual(connection, channel, "work2")
        deaths.append((props.headers or {}).get("x-death"))
        channel.basic_reject(method.delivery_tag, requeue=False)
    assert deaths[0] is None
    first, second = deaths[1], deaths[2]
    assert [(d["queue"], d["reason"], d["count"]) for d in first] == [
        ("retry", "expired", 1), ("work2", "rejected", 1)]
    assert [(d["queue"], d["reason"], d["count"]) for d in second] == [
        ("retry", "expired", 2), ("work2", "rejected", 2)]
    # the per-message TTL was recorded by the first death and dropped from the message
    assert second[1]["original-expiration"] == "60000"
    assert "original-expiration" not in second[0]
    # an entry keeps the time of its first death
    assert second[1]["time"] == first[1]["time"]
    _, props, _ = get_one(connection, channel, "work2")
    assert props.headers["x-first-death-queue"] == "work2"
    assert props.headers["x-first-death-reason"] == "rejected"
    assert props.expiration is None


@pytest.mark.leveret_only  # RabbitMQ 3.13+ adds these; the local reference RabbitMQ is 3.10
def test_x_last_death_headers(connection, channel):
    channel.queue_declare("hop2", arguments={"x-message-ttl": 10, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": "end"})
    channel.queue_declare("hop1", arguments={"x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": "hop2"})
    channel.queue_declare("end")
    channel.basic_publish("", "hop1", b"x")
    method, _, _ = channel.basic_get("hop1")
    channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = get_one(connection, channel, "end")
    h = props.headers
    assert (h["x-first-death-queue"], h["x-first-death-reason"]) == ("hop1", "rejected")
    assert (h["x-last-death-queue"], h["x-last-death-reason"], h["x-last-death-exchange"]) == (
        "hop2", "expired", "")


def test_automatic_dead_letter_cycle_is_dropped(connection, channel):
    """A message expiring back into the queue it expired from is dropped (no rejection in the
    cycle); other queues bound to the dead-letter exchange still get it."""
    channel.exchange_declare("cycle-dlx", "fanout")
    channel.queue_declare("cyclic", arguments={"x-message-ttl": 10,
                                               "x-dead-letter-exchange": "cycle-dlx"})
    channel.queue_declare("witness")
    channel.queue_bind("cyclic", "cycle-dlx")
    channel.queue_bind("witness", "cycle-dlx")
    channel.basic_publish("", "cyclic", b"x")
    _, props, body = get_one(connection, channel, "witness")
    assert body == b"x" and props.headers["x-death"][0]["queue"] == "cyclic"
    # both copies were routed at the same moment: the cyclic one was dropped
    assert channel.queue_declare("cyclic", passive=True).method.message_count == 0


def test_rejection_breaks_a_cycle(connection, channel):
    channel.exchange_declare("again-dlx", "fanout")
    channel.queue_declare("again2", arguments={"x-dead-letter-exchange": "again-dlx"})
    channel.queue_bind("again2", "again-dlx")
    channel.basic_publish("", "again2", b"x")
    for count in (1, 2, 3):
        method, _, _ = get_one_manual(connection, channel, "again2")
        channel.basic_nack(method.delivery_tag, requeue=False)
        _, props, _ = get_one_manual_peek(connection, channel, "again2")
        assert props.headers["x-death"][0]["count"] == count


def get_one_manual_peek(connection, ch, queue: str):
    """Get without acking, then requeue: the message stays where it was."""
    method, props, body = get_one_manual(connection, ch, queue)
    ch.basic_nack(method.delivery_tag, requeue=True)
    return method, props, body


def test_routing_key_override_drops_cc(connection, channel):
    channel.exchange_declare("dlx-cc", "direct")
    channel.queue_declare("cc-parking")
    channel.queue_bind("cc-parking", "dlx-cc", "parked")
    channel.queue_declare("cc-src", arguments={"x-dead-letter-exchange": "dlx-cc",
                                               "x-dead-letter-routing-key": "parked"})
    channel.basic_publish("", "cc-src", b"x", pika.BasicProperties(headers={"CC": ["other"]}))
    method, _, _ = channel.basic_get("cc-src")
    channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = get_one(connection, channel, "cc-parking")
    assert "CC" not in props.headers
    assert props.headers["x-death"][0]["routing-keys"] == ["cc-src", "other"]


# ---------------------------------------------------------------- TTL


def test_queue_ttl_expires_and_dead_letters(connection, channel):
    dead = dlx_setup(channel, "ttl", **{"x-message-ttl": 50})
    channel.basic_publish("", "ttl", b"old")
    method, props, body = get_one(connection, channel, dead)
    assert body == b"old"
    death = props.headers["x-death"][0]
    assert death["reason"] == "expired" and death["queue"] == "ttl"
    assert drain(channel, "ttl") == []


def test_per_message_expiration(connection, channel):
    dead = dlx_setup(channel, "msgttl")
    channel.basic_publish("", "msgttl", b"short", pika.BasicProperties(expiration="30"))
    channel.basic_publish("", "msgttl", b"long", pika.BasicProperties(expiration="600000"))
    method, props, body = get_one(connection, channel, dead)
    assert body == b"short"
    assert props.expiration is None  # removed on dead-lettering...
    assert props.headers["x-death"][0]["original-expiration"] == "30"  # ...and kept here
    assert drain(channel, "msgttl") == [b"long"]


def test_expired_message_is_never_delivered(connection, channel):
    channel.queue_declare("never", arguments={"x-message-ttl": 0})
    channel.basic_publish("", "never", b"x")
    assert drain(channel, "never") == []


def test_ttl_zero_still_reaches_a_waiting_consumer(connection, channel):
    channel.queue_declare("instant", arguments={"x-message-ttl": 0})
    inbox = Inbox()
    channel.basic_consume("instant", inbox, auto_ack=True)
    channel.basic_publish("", "instant", b"now")
    assert [x[1] for x in inbox.wait(connection, 1)] == [b"now"]


def test_invalid_expiration_is_406(connection):
    ch = connection.channel()
    ch.queue_declare("badexp")
    ch.basic_publish("", "badexp", b"x", pika.BasicProperties(expiration="soon"))
    with closed_with(406):
        ch.queue_declare("badexp", passive=True)


def test_x_expires_deletes_unused_queue(connection, channel):
    channel.queue_declare("fleeting", arguments={"x-expires": 100})
    probe = connection.channel()
    probe.confirm_delivery()
    # publishing does not renew the lease (a declare or basic.get would): probe with mandatory
    # publishes until one comes back unroutable because the queue is gone
    for _ in range(200):
        try:
            probe.basic_publish("", "fleeting", b"probe", mandatory=True)
        except pika.exceptions.UnroutableError:
            break
        connection.process_data_events(time_limit=0.05)
    else:
        raise AssertionError("queue was not deleted")
    with closed_with(404):
        connection.channel().queue_declare("fleeting", passive=True)


def test_per_message_ttl_uses_the_smaller_of_queue_and_message(connection, channel):
    dead = dlx_setup(channel, "both-ttl", **{"x-message-ttl": 600000})
    channel.basic_publish("", "both-ttl", b"short", pika.BasicProperties(expiration="20"))
    assert get_one(connection, channel, dead)[2] == b"short"


def test_next_head_expires_on_time_after_the_head_leaves(connection, channel):
    """The expiry timer follows the head: when a long-lived head is taken, a short-lived
    message behind it is dead-lettered on time, without another publish or get."""
    dead = dlx_setup(channel, "rearm")
    channel.basic_publish("", "rearm", b"long", pika.BasicProperties(expiration="600000"))
    channel.basic_publish("", "rearm", b"short", pika.BasicProperties(expiration="20"))
    assert channel.basic_get("rearm", auto_ack=True)[2] == b"long"
    assert get_one(connection, channel, dead, timeout=10)[2] == b"short"


def test_expired_message_behind_the_head_waits_for_it(connection, channel):
    """RabbitMQ expires at the head only; a priority queue's head is its highest priority."""
    dead = dlx_setup(channel, "prio-ttl", **{"x-max-priority": 2})
    channel.basic_publish("", "prio-ttl", b"high", pika.BasicProperties(priority=2))
    channel.basic_publish("", "prio-ttl", b"low", pika.BasicProperties(expiration="10"))
    assert channel.basic_get("prio-ttl", auto_ack=True)[2] == b"high"
    assert get_one(connection, channel, dead)[2] == b"low"
    assert drain(channel, "prio-ttl") == []


@pytest.mark.leveret_only
def test_recovered_messages_expire_on_time_after_a_restart(tmp_path):
    from leveret import Broker

    durable = pika.BasicProperties(delivery_mode=2)
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("restart-dlx", "fanout", durable=True)
        ch.queue_declare("restart-dead", durable=True)
        ch.queue_bind("restart-dead", "restart-dlx")
        ch.queue_declare("restart-ttl", durable=True, arguments={
            "x-message-ttl": 3000, "x-dead-letter-exchange": "restart-dlx"})
        ch.basic_publish("", "restart-ttl", b"x", durable)
        conn.close()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        # nobody touches restart-ttl: only its expiry timer can move the message
        broker.wait_for_messages("restart-dead", 1, timeout=30)
        assert broker.queue("restart-ttl").messages == 0


def test_requeued_expired_message_is_dead_lettered_not_redelivered(connection, channel):
    dead = dlx_setup(channel, "requeue-ttl", **{"x-message-ttl": 30})
    channel.basic_publish("", "requeue-ttl", b"x")
    method, _, _ = channel.basic_get("requeue-ttl")
    assert method is not None
    # hold it past its TTL: wait for a later message's expiry to prove the time has passed
    channel.basic_publish("", "requeue-ttl", b"marker")
    assert get_one(connection, channel, dead)[2] == b"marker"
    channel.basic_nack(method.delivery_tag, requeue=True)
    _, props, body = get_one(connection, channel, dead)
    assert body == b"x" and props.headers["x-death"][0]["reason"] == "expired"
    assert drain(channel, "requeue-ttl") == []


# ---------------------------------------------------------------- length limits


def test_max_length_drop_head_dead_letters_oldest(connection, channel):
    dead = dlx_setup(channel, "bounded", **{"x-max-length": 2})
    for i in range(4):
        channel.basic_publish("", "bounded", b"m%d" % i)
    assert drain(channel, "bounded") == [b"m2", b"m3"]
    first = get_one(connection, channel, dead)
    second = get_one(connection, channel, dead)
    assert [first[2], second[2]] == [b"m0", b"m1"]
    assert first[1].headers["x-death"][0]["reason"] == "maxlen"


def test_max_length_bytes(channel):
    channel.queue_declare("bytes", arguments={"x-max-length-bytes": 10})
    for body in (b"12345", b"67890", b"abc"):
        channel.basic_publish("", "bytes", body)
    assert drain(channel, "bytes") == [b"67890", b"abc"]


def test_reject_publish_nacks_the_publisher(channel):
    channel.queue_declare("full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    channel.basic_publish("", "full", b"first")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", "full", b"second")
    assert drain(channel, "full") == [b"first"]


def test_reject_publish_counts_empty_messages(channel):
    channel.queue_declare("full-empty", arguments={"x-max-length": 1,
                                                   "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    channel.basic_publish("", "full-empty", b"")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", "full-empty", b"")


def test_reject_publish_refuses_even_with_a_waiting_consumer(connection, channel):
    channel.queue_declare("zero-cap", arguments={"x-max-length": 0,
                                                 "x-overflow": "reject-publish"})
    channel.queue_declare("zero-drop", arguments={"x-max-length": 0})
    inbox = Inbox()
    consumer = connection.channel()
    consumer.basic_consume("zero-cap", inbox, auto_ack=True)
    consumer.basic_consume("zero-drop", inbox, auto_ack=True)
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", "zero-cap", b"refused")
    channel.basic_publish("", "zero-drop", b"handed-over")  # drop-head: delivered at once
    assert [x[1] for x in inbox.wait(connection, 1)] == [b"handed-over"]


def test_reject_publish_dlx(connection, channel):
    dead = dlx_setup(channel, "full-dlx", **{"x-max-length": 1,
                                             "x-overflow": "reject-publish-dlx"})
    channel.basic_publish("", "full-dlx", b"first")
    channel.basic_publish("", "full-dlx", b"second")
    assert get_one(connection, channel, dead)[2] == b"second"
    assert drain(channel, "full-dlx") == [b"first"]


# ---------------------------------------------------------------- priorities, SAC


def test_priority_queue(channel):
    channel.queue_declare("prio", arguments={"x-max-priority": 5})
    for body, prio in ((b"low", 1), (b"high", 5), (b"none", None), (b"mid", 3),
                       (b"over", 9), (b"high2", 5)):
        channel.basic_publish("", "prio", body, pika.BasicProperties(priority=prio))
    # over-the-max priorities count as the max; FIFO within a priority
    assert drain(channel, "prio") == [b"high", b"over", b"high2", b"mid", b"low", b"none"]


def test_priority_requeue_keeps_position(channel):
    channel.queue_declare("prio2", arguments={"x-max-priority": 2})
    for body, prio in ((b"a", 2), (b"b", 2), (b"c", 1)):
        channel.basic_publish("", "prio2", body, pika.BasicProperties(priority=prio))
    first, _, _ = channel.basic_get("prio2")
    channel.basic_nack(first.delivery_tag, requeue=True)
    assert drain(channel, "prio2") == [b"a", b"b", b"c"]


def test_single_active_consumer(connection, channel):
    channel.queue_declare("sac", arguments={"x-single-active-consumer": True})
    a, b = Inbox(), Inbox()
    tag_a = channel.basic_consume("sac", a, auto_ack=True)
    channel.basic_consume("sac", b, auto_ack=True)
    for i in range(4):
        channel.basic_publish("", "sac", b"%d" % i)
    a.wait(connection, 4)
    assert len(a.items) == 4 and b.items == []
    channel.basic_cancel(tag_a)
    channel.basic_publish("", "sac", b"next")
    assert [x[1] for x in b.wait(connection, 1)] == [b"next"]


def test_single_active_consumer_takeover_gets_requeued_messages_first(broker, connection,
                                                                       channel):
    """The active consumer's connection dies with two messages unacked: they are requeued
    before the next consumer takes over, so it sees the queue's order."""
    from pamqp import commands as spec

    from rawamqp import RawClient

    channel.queue_declare("sac-order", arguments={"x-single-active-consumer": True})
    for i in range(4):
        channel.basic_publish("", "sac-order", b"%d" % i)
    first = RawClient(broker.host, broker.port)
    first.handshake(vhost=vhost_name(broker))
    first.open_channel(1)
    first.send_method(1, spec.Basic.Qos(prefetch_count=2))
    first.recv_until(spec.Basic.QosOk)
    first.send_method(1, spec.Basic.Consume(queue="sac-order", consumer_tag="first"))
    first.recv_until(spec.Basic.Deliver)
    first.recv_until(spec.Basic.Deliver)
    second = Inbox()
    channel.basic_consume("sac-order", second, auto_ack=True)
    assert channel.queue_declare("sac-order", passive=True).method.message_count == 2
    first.close()  # no basic.cancel, no channel.close: the connection just goes
    got = [(body, redelivered) for _, body, redelivered, _ in second.wait(connection, 4)]
    assert got == [(b"0", True), (b"1", True), (b"2", False), (b"3", False)]


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "args,text",
    [
        ({"x-message-ttl": -1}, "{value_negative,-1}"),
        ({"x-message-ttl": "10"}, '"expected integer, got longstr"'),
        ({"x-expires": 0}, "{value_zero,0}"),
        ({"x-max-length": -1}, "{value_negative,-1}"),
        ({"x-max-priority": 256}, "{max_value_exceeded,256}"),
        ({"x-overflow": "nope"}, "invalid_overflow"),
        ({"x-dead-letter-routing-key": "rk"}, "routing_key_but_no_dlx_defined"),
        ({"x-single-active-consumer": "yes"}, "{unacceptable_type,longstr}"),
    ],
)
def test_invalid_queue_arguments_are_406(connection, args, text):
    ch = connection.channel()
    with closed_with(406):
        ch.queue_declare("argcheck", arguments=args)
    # the text is RabbitMQ's, word for word
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        connection.channel().queue_declare("argcheck", arguments=args)
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg '{list(args)[0]}' for queue 'argcheck' in vhost "
        f"'{_vhost_of(connection)}': {text}")


@pytest.mark.parametrize(
    "first,second,text",
    [
        ({"x-message-ttl": 10}, {"x-message-ttl": 20}, "received '20' but current is '10'"),
        ({}, {"x-max-length": 5},
         "received the value '5' of type 'signedint' but current is none"),
        ({"x-single-active-consumer": True}, {},
         "received none but current is the value 'true' of type 'bool'"),
        ({"x-single-active-consumer": True}, {"x-single-active-consumer": False},
         "received 'false' but current is 'true'"),
        ({"x-overflow": "reject-publish"}, {},
         "received none but current is the value 'reject-publish' of type 'longstr'"),
    ],
)
def test_redeclare_with_other_arguments_is_406(connection, first, second, text):
    ch = connection.channel()
    ch.queue_declare("redeclared", arguments=first)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("redeclared", arguments=second)
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg '{list(first or second)[0]}' for queue "
        f"'redeclared' in vhost '{_vhost_of(connection)}': {text}")
    connection.channel().queue_delete("redeclared")


def test_redeclare_tolerates_the_default_queue_type_and_unknown_arguments(connection):
    ch = connection.channel()
    ch.queue_declare("lenient", arguments={"x-queue-type": "classic", "x-custom": 1})
    ch.queue_declare("lenient", arguments={"x-custom": 2})


def _vhost_of(connection) -> str:
    return connection._impl.params.virtual_host  # noqa: SLF001


# ---------------------------------------------------------------- memory watermark


@pytest.mark.leveret_only
def test_memory_high_watermark_blocks_publishers():
    from leveret import Broker

    with Broker.in_thread(memory_high_watermark=1000,
                          memory_calculation_strategy="queued") as broker:
        blocked, unblocked = [], []
        params = pika.URLParameters(broker.url)
        pub = pika.BlockingConnection(params)
        pub.add_on_connection_blocked_callback(lambda *a: blocked.append(True))
        pub.add_on_connection_unblocked_callback(lambda *a: unblocked.append(True))
        ch = pub.channel()
        ch.queue_declare("heavy")
        ch.basic_publish("", "heavy", b"x" * 2000)  # over the watermark now
        ch.basic_publish("", "heavy", b"y")  # this publish trips the alarm
        for _ in range(100):
            if blocked:
                break
            pub.process_data_events(time_limit=0.05)
        assert blocked == [True]
        # a consumer on another connection still works and frees the memory
        cons = pika.BlockingConnection(params)
        cch = cons.channel()
        assert cch.basic_get("heavy", auto_ack=True)[2] == b"x" * 2000
        for _ in range(100):
            if unblocked:
                break
            pub.process_data_events(time_limit=0.05)
        assert unblocked == [True]
        assert cch.basic_get("heavy", auto_ack=True)[2] == b"y"
        cons.close()
        pub.close()


# ---------------------------------------------------------------- the same through aio-pika


async def aio_channel(broker, **kwargs):
    import aio_pika

    conn = await aio_pika.connect(broker.url)
    return conn, await conn.channel(**kwargs)


async def aio_dlx(ch, source: str, **args):
    import aio_pika

    dlx = await ch.declare_exchange("aio-dlx", aio_pika.ExchangeType.FANOUT)
    dead = await ch.declare_queue("dead-" + source)
    await dead.bind(dlx)
    queue = await ch.declare_queue(source, arguments={"x-dead-letter-exchange": "aio-dlx",
                                                      **args})
    return queue, dead


async def aio_get(broker, queue, count: int = 1):
    await broker.wait_for_messages(queue.name, count)
    return await queue.get(no_ack=True)


async def test_aio_drop_head_dead_letters_with_x_death(abroker):
    import aio_pika

    conn, ch = await aio_channel(abroker)
    async with conn:
        src, dead = await aio_dlx(ch, "aio-bounded", **{"x-max-length": 1})
        for body in (b"old", b"new"):
            await ch.default_exchange.publish(aio_pika.Message(body, headers={"n": 1}),
                                              "aio-bounded")
        got = await aio_get(abroker, dead)
        assert got.body == b"old" and got.headers["n"] == 1
        (death,) = got.headers["x-death"]
        assert (death["reason"], death["queue"], death["count"]) == ("maxlen", "aio-bounded", 1)
        assert got.headers["x-first-death-reason"] == "maxlen"
        assert (await src.get(no_ack=True)).body == b"new"


async def test_aio_per_message_ttl_and_queue_ttl(abroker):
    import aio_pika

    conn, ch = await aio_channel(abroker)
    async with conn:
        _, dead = await aio_dlx(ch, "aio-ttl", **{"x-message-ttl": 600000})
        await ch.default_exchange.publish(aio_pika.Message(b"soon", expiration=0.02), "aio-ttl")
        got = await aio_get(abroker, dead)
        assert got.body == b"soon" and got.expiration is None
        assert got.headers["x-death"][0]["reason"] == "expired"
        assert got.headers["x-death"][0]["original-expiration"] == "20"


async def test_aio_reject_publish_dlx_nacks_and_dead_letters(abroker):
    import aio_pika

    conn, ch = await aio_channel(abroker, publisher_confirms=True)
    async with conn:
        src, dead = await aio_dlx(ch, "aio-full", **{"x-max-length": 1,
                                                     "x-overflow": "reject-publish-dlx"})
        await ch.default_exchange.publish(aio_pika.Message(b"kept"), "aio-full")
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await ch.default_exchange.publish(aio_pika.Message(b"refused"), "aio-full")
        got = await aio_get(abroker, dead)
        assert got.body == b"refused" and got.headers["x-death"][0]["reason"] == "maxlen"
        assert (await src.get(no_ack=True)).body == b"kept"


async def test_aio_priorities_with_requeue(abroker):
    import aio_pika

    conn, ch = await aio_channel(abroker)
    async with conn:
        q = await ch.declare_queue("aio-prio", arguments={"x-max-priority": 9})
        for body, prio in ((b"low", 1), (b"top", 9), (b"mid", 5), (b"top2", 9)):
            await ch.default_exchange.publish(aio_pika.Message(body, priority=prio), "aio-prio")
        first = await q.get()
        assert first.body == b"top"
        await first.nack(requeue=True)  # back to its place: first among the 9s
        bodies = []
        while (msg := await q.get(no_ack=True, fail=False)) is not None:
            bodies.append((msg.body, msg.redelivered))
        assert bodies == [(b"top", True), (b"top2", False), (b"mid", False), (b"low", False)]


async def test_aio_single_active_consumer_hands_over_on_cancel(abroker):
    import asyncio

    import aio_pika

    conn, ch = await aio_channel(abroker)
    async with conn:
        q = await ch.declare_queue("aio-sac", arguments={"x-single-active-consumer": True})
        first: asyncio.Queue = asyncio.Queue()
        second: asyncio.Queue = asyncio.Queue()
        tag = await q.consume(first.put, no_ack=True)
        await q.consume(second.put, no_ack=True)
        for i in range(3):
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), "aio-sac")
        assert [(await first.get()).body for _ in range(3)] == [b"0", b"1", b"2"]
        assert second.empty()
        await q.cancel(tag)
        await ch.default_exchange.publish(aio_pika.Message(b"3"), "aio-sac")
        assert (await asyncio.wait_for(second.get(), 10)).body == b"3"


async def test_aio_x_expires_spares_a_consumed_queue(abroker):
    import asyncio

    conn, ch = await aio_channel(abroker)
    async with conn:
        kept = await ch.declare_queue("aio-kept", arguments={"x-expires": 30})

        async def ignore(message) -> None:
            pass

        tag = await kept.consume(ignore)
        await ch.declare_queue("aio-clock", arguments={"x-expires": 30})  # expires later
        while "aio-clock" in [q.name for q in abroker.queues()]:
            await asyncio.sleep(0.005)
        assert "aio-kept" in [q.name for q in abroker.queues()]  # it has a consumer
        await kept.cancel(tag)
        while "aio-kept" in [q.name for q in abroker.queues()]:  # unused now: it goes
            await asyncio.sleep(0.005)


async def test_aio_invalid_argument_and_expiration(abroker):
    import asyncio

    import aio_pika
    import aiormq

    conn = await aio_pika.connect(abroker.url)
    async with conn:
        ch = await conn.channel()
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed) as info:
            await ch.declare_queue("aio-bad", arguments={"x-message-ttl": -1})
        assert "invalid arg 'x-message-ttl' for queue 'aio-bad'" in str(info.value)
        assert "{value_negative,-1}" in str(info.value)
        ch = await conn.channel()
        await ch.declare_queue("aio-exp")
        # aio-pika checks expirations itself; its aiormq channel sends what it is given
        raw = await ch.get_underlay_channel()
        # the channel is closed under whatever is pending (aiormq may cancel it with the reason)
        with pytest.raises((aio_pika.exceptions.ChannelPreconditionFailed,
                            asyncio.CancelledError)) as info:
            await raw.basic_publish(b"x", routing_key="aio-exp",
                                    properties=aiormq.spec.Basic.Properties(expiration="later"))
            await ch.declare_queue("aio-exp", passive=True)
        assert "PRECONDITION_FAILED - invalid expiration 'later': no_integer" in str(info.value)

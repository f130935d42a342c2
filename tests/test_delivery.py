"""Consumers, acknowledgements, prefetch, publisher confirms and transactions, end to end.

Every test here uses only AMQP, so ``LEVERET_TEST_TARGET=rabbitmq`` runs the same scenarios
against a real RabbitMQ (see conftest.py).
"""

from __future__ import annotations

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import commands as spec

from test_exchanges import closed_with, drain


def publish_n(ch, queue: str, n: int, prefix: str = "m") -> None:
    for i in range(n):
        ch.basic_publish("", queue, f"{prefix}{i}".encode())


class Inbox:
    """A consumer callback that records deliveries."""

    def __init__(self) -> None:
        self.items: list[tuple[int, bytes, bool, str]] = []

    def __call__(self, ch, method, props, body) -> None:
        self.items.append((method.delivery_tag, body, method.redelivered, method.consumer_tag))

    def wait(self, conn, count: int) -> list[tuple[int, bytes, bool, str]]:
        for _ in range(200):
            if len(self.items) >= count:
                break
            conn.process_data_events(time_limit=0.05)
        return self.items


# ---------------------------------------------------------------- consumers


def test_server_generated_consumer_tag(broker):
    from pamqp import commands as spec

    client = raw_client(broker)
    client.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = client.recv_until(spec.Queue.DeclareOk)
    client.send_method(1, spec.Basic.Consume(queue=ok.queue, consumer_tag=""))
    _, consume_ok = client.recv_until(spec.Basic.ConsumeOk)
    assert consume_ok.consumer_tag.startswith("amq.ctag-")
    client.close()


def test_round_robin_between_consumers(connection, channel):
    channel.queue_declare("rr")
    a, b = Inbox(), Inbox()
    channel.basic_consume("rr", a, auto_ack=True)
    channel.basic_consume("rr", b, auto_ack=True)
    publish_n(channel, "rr", 6)
    for _ in range(100):
        if len(a.items) + len(b.items) == 6:
            break
        connection.process_data_events(time_limit=0.05)
    assert len(a.items) == 3 and len(b.items) == 3
    assert {x[1] for x in a.items} | {x[1] for x in b.items} == {b"m%d" % i for i in range(6)}


def test_exclusive_consumer_refuses_others(connection):
    ch = connection.channel()
    ch.queue_declare("excl")
    ch.basic_consume("excl", lambda *a: None, exclusive=True)
    ch2 = connection.channel()
    with closed_with(403):
        ch2.basic_consume("excl", lambda *a: None)
    ch3 = connection.channel()
    ch3.queue_declare("excl2")
    ch3.basic_consume("excl2", lambda *a: None)
    with closed_with(403):
        ch3.basic_consume("excl2", lambda *a: None, exclusive=True)


def vhost_name(broker) -> str:
    """The vhost under test: a RabbitMQ target's own, else the default one."""
    vhost = getattr(broker, "vhost", "/")
    return vhost if isinstance(vhost, str) else "/"


def raw_client(broker):
    from rawamqp import RawClient

    client = RawClient(broker.host, broker.port)
    client.handshake(vhost=vhost_name(broker))
    client.open_channel(1)
    return client


def test_reusing_consumer_tag_is_530(broker):
    from pamqp import commands as spec

    client = raw_client(broker)
    client.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = client.recv_until(spec.Queue.DeclareOk)
    for _ in range(2):
        client.send_method(1, spec.Basic.Consume(queue=ok.queue, consumer_tag="mine"))
    _, close = client.recv_until(spec.Connection.Close)
    assert close.reply_code == 530
    client.close()


def test_deleted_queue_cancels_consumers(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("doomed")
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume("doomed", lambda *a: None)
    other = conn.channel()
    other.queue_delete("doomed")
    for _ in range(100):
        if cancelled:
            break
        conn.process_data_events(time_limit=0.05)
    assert cancelled == [tag]
    conn.close()


# ---------------------------------------------------------------- acknowledgements


def test_multiple_ack(connection, channel):
    channel.queue_declare("multi")
    publish_n(channel, "multi", 5)
    channel.basic_qos(prefetch_count=10)
    inbox = Inbox()
    channel.basic_consume("multi", inbox)
    items = inbox.wait(connection, 5)
    channel.basic_ack(items[2][0], multiple=True)  # acks 1..3
    channel.basic_cancel(items[0][3])
    connection.process_data_events(time_limit=0.1)
    # 4 and 5 were not acked: cancelling does not return them; closing the channel does
    channel.close()
    ch = connection.channel()
    assert drain(ch, "multi") == [b"m3", b"m4"]


def test_ack_zero_multiple_acks_everything(connection, channel):
    channel.queue_declare("zero")
    publish_n(channel, "zero", 4)
    inbox = Inbox()
    channel.basic_consume("zero", inbox)
    inbox.wait(connection, 4)
    channel.basic_ack(0, multiple=True)
    channel.close()
    assert drain(connection.channel(), "zero") == []


def test_unknown_delivery_tag_is_406(connection):
    ch = connection.channel()
    ch.queue_declare("unknown-tag")
    ch.basic_ack(99)
    with closed_with(406):
        ch.queue_declare("unknown-tag", passive=True)


def test_double_ack_is_406(connection):
    ch = connection.channel()
    ch.queue_declare("double")
    ch.basic_publish("", "double", b"x")
    method, _, _ = ch.basic_get("double")
    ch.basic_ack(method.delivery_tag)
    ch.basic_ack(method.delivery_tag)
    with closed_with(406):
        ch.queue_declare("double", passive=True)


def test_ack_of_no_ack_delivery_is_406(connection):
    ch = connection.channel()
    ch.queue_declare("noack")
    ch.basic_publish("", "noack", b"x")
    method, _, _ = ch.basic_get("noack", auto_ack=True)
    ch.basic_ack(method.delivery_tag)
    with closed_with(406):
        ch.queue_declare("noack", passive=True)


def test_reject_requeue_returns_to_original_position(connection, channel):
    channel.queue_declare("order")
    publish_n(channel, "order", 5)
    tags = [channel.basic_get("order")[0].delivery_tag for _ in range(3)]
    channel.basic_reject(tags[1], requeue=True)  # m1 goes back before m3, m4
    channel.basic_nack(tags[0], requeue=True)  # m0 goes back to the front
    channel.basic_ack(tags[2])
    got = []
    while True:
        method, _, body = channel.basic_get("order", auto_ack=True)
        if method is None:
            break
        got.append((body, method.redelivered))
    assert got == [(b"m0", True), (b"m1", True), (b"m3", False), (b"m4", False)]


def test_nack_multiple_requeue(connection, channel):
    channel.queue_declare("nackm")
    publish_n(channel, "nackm", 4)
    methods = [channel.basic_get("nackm")[0] for _ in range(3)]
    channel.basic_nack(methods[2].delivery_tag, multiple=True, requeue=True)
    assert drain(channel, "nackm") == [b"m0", b"m1", b"m2", b"m3"]


def test_reject_without_requeue_drops(channel):
    channel.queue_declare("drop")
    channel.basic_publish("", "drop", b"x")
    method, _, _ = channel.basic_get("drop")
    channel.basic_reject(method.delivery_tag, requeue=False)
    assert drain(channel, "drop") == []


def test_channel_close_requeues_in_order(connection):
    ch = connection.channel()
    ch.queue_declare("close-requeue")
    publish_n(ch, "close-requeue", 4)
    ch.basic_get("close-requeue")
    ch.basic_get("close-requeue")
    ch.close()
    got = []
    ch2 = connection.channel()
    while True:
        method, _, body = ch2.basic_get("close-requeue", auto_ack=True)
        if method is None:
            break
        got.append((body, method.redelivered))
    assert got == [(b"m0", True), (b"m1", True), (b"m2", False), (b"m3", False)]


def test_basic_recover_requeues(connection, channel):
    channel.queue_declare("recover")
    publish_n(channel, "recover", 2)
    channel.basic_get("recover")
    channel.basic_recover(requeue=True)
    method, _, body = channel.basic_get("recover", auto_ack=True)
    assert (body, method.redelivered) == (b"m0", True)


def test_basic_get_message_count(channel):
    channel.queue_declare("count")
    publish_n(channel, "count", 3)
    assert channel.basic_get("count", auto_ack=True)[0].message_count == 2


# ---------------------------------------------------------------- prefetch


def test_prefetch_per_consumer(connection, channel):
    channel.queue_declare("pf")
    publish_n(channel, "pf", 10)
    channel.basic_qos(prefetch_count=3)
    inbox = Inbox()
    channel.basic_consume("pf", inbox)
    items = inbox.wait(connection, 3)
    connection.process_data_events(time_limit=0.2)
    assert len(inbox.items) == 3  # no more until something is acked
    channel.basic_ack(items[0][0])
    inbox.wait(connection, 4)
    connection.process_data_events(time_limit=0.2)
    assert len(inbox.items) == 4


def test_prefetch_global_shared_by_channel(connection, channel):
    channel.queue_declare("pg1")
    channel.queue_declare("pg2")
    publish_n(channel, "pg1", 5)
    publish_n(channel, "pg2", 5)
    channel.basic_qos(prefetch_count=4, global_qos=True)
    inbox = Inbox()
    channel.basic_consume("pg1", inbox)
    channel.basic_consume("pg2", inbox)
    inbox.wait(connection, 4)
    connection.process_data_events(time_limit=0.2)
    assert len(inbox.items) == 4


def test_prefetch_zero_is_unlimited(connection, channel):
    channel.queue_declare("pf0")
    publish_n(channel, "pf0", 50)
    channel.basic_qos(prefetch_count=0)
    inbox = Inbox()
    channel.basic_consume("pf0", inbox)
    assert len(inbox.wait(connection, 50)) == 50


def ready_counts(ch, *queues: str) -> list[int]:
    return [ch.queue_declare(q, passive=True).method.message_count for q in queues]


def two_queues_of_five(ch) -> None:
    for q in ("lim1", "lim2"):
        ch.queue_declare(q)
        publish_n(ch, q, 5)


def test_per_consumer_qos_lifts_the_channel_limit(connection, channel):
    """RabbitMQ: basic.qos(global=false) also removes a channel-wide limit set before it."""
    two_queues_of_five(channel)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    channel.basic_qos(prefetch_count=2, global_qos=False)
    inbox = Inbox()
    channel.basic_consume("lim1", inbox)
    channel.basic_consume("lim2", inbox)
    assert len(inbox.wait(connection, 4)) == 4
    assert ready_counts(channel, "lim1", "lim2") == [3, 3]


def test_per_consumer_then_channel_limit(connection, channel):
    """Per-consumer qos first, then the channel-wide one: both hold (/docs/consumer-prefetch)."""
    two_queues_of_five(channel)
    channel.basic_qos(prefetch_count=2, global_qos=False)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    inbox = Inbox()
    tag1 = channel.basic_consume("lim1", inbox)
    channel.basic_consume("lim2", inbox)
    inbox.wait(connection, 3)
    assert sum(ready_counts(channel, "lim1", "lim2")) == 7  # 3 out, shared by the channel
    assert sum(1 for item in inbox.items if item[3] == tag1) <= 2


def test_basic_get_is_outside_the_prefetch_limit(connection, channel):
    channel.queue_declare("get-qos")
    publish_n(channel, "get-qos", 5)
    channel.basic_qos(prefetch_count=1, global_qos=True)
    method, _, _ = channel.basic_get("get-qos")  # unacked, yet the consumer still gets one
    inbox = Inbox()
    channel.basic_consume("get-qos", inbox)
    assert len(inbox.wait(connection, 1)) == 1
    channel.basic_ack(method.delivery_tag)  # and acking it frees no consumer slot
    assert ready_counts(channel, "get-qos") == [3]


# ---------------------------------------------------------------- publishers


def test_confirms_ack_every_publish(channel):
    channel.confirm_delivery()
    channel.queue_declare("confirmed")
    for i in range(20):
        channel.basic_publish("", "confirmed", b"%d" % i)  # raises if nacked
    assert len(drain(channel, "confirmed")) == 20


def test_mandatory_unroutable_is_returned(channel):
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish("", "no-such-queue", b"lost", mandatory=True)


def test_unroutable_without_mandatory_is_confirmed(channel):
    channel.confirm_delivery()
    channel.basic_publish("amq.direct", "nobody", b"dropped")  # no exception: acked


async def test_return_arrives_before_confirm_aio_pika(abroker):
    conn = await aio_pika.connect(abroker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        with pytest.raises(aio_pika.exceptions.DeliveryError) as info:
            await ch.default_exchange.publish(aio_pika.Message(b"x"), "nowhere", mandatory=True)
        assert info.value.message.body == b"x"


def test_immediate_is_refused(broker):
    from pamqp import commands as spec
    from pamqp import frame as pframe
    from pamqp import header as pheader

    client = raw_client(broker)
    client.send(pframe.marshal(spec.Basic.Publish(exchange="", routing_key="q", immediate=True), 1)
                + pframe.marshal(pheader.ContentHeader(0, 0, spec.Basic.Properties()), 1))
    _, close = client.recv_until(spec.Connection.Close)
    assert close.reply_code == 540  # NOT_IMPLEMENTED - immediate=true
    client.close()


def test_tx_commit_and_rollback(connection):
    ch = connection.channel()
    ch.queue_declare("tx")
    ch.tx_select()
    ch.basic_publish("", "tx", b"rolled-back")
    ch.tx_rollback()
    ch.basic_publish("", "tx", b"committed")
    other = connection.channel()
    assert drain(other, "tx") == []  # nothing visible before commit
    ch.tx_commit()
    assert drain(other, "tx") == [b"committed"]


def test_tx_covers_acks(connection):
    ch = connection.channel()
    ch.queue_declare("txack")
    ch.basic_publish("", "txack", b"a")
    ch.tx_select()
    method, _, _ = ch.basic_get("txack")
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()  # the ack is undone: the message stays unacked on this channel
    ch.close()
    ch2 = connection.channel()
    method, _, body = ch2.basic_get("txack", auto_ack=True)
    assert body == b"a" and method.redelivered


def test_tx_second_ack_of_a_tag_is_406_before_commit(connection):
    ch = connection.channel()
    ch.queue_declare("tx-double")
    publish_n(ch, "tx-double", 3)
    ch.tx_select()
    tags = [ch.basic_get("tx-double")[0].delivery_tag for _ in range(3)]
    ch.basic_ack(tags[1], multiple=True)
    ch.basic_ack(tags[2])
    ch.basic_ack(tags[0])  # already taken by the multiple ack of this transaction
    with closed_with(406):
        ch.queue_declare("tx-double", passive=True)


def test_tx_rollback_lets_the_tags_be_acked_again(connection):
    ch = connection.channel()
    ch.queue_declare("tx-again")
    publish_n(ch, "tx-again", 1)
    ch.tx_select()
    method, _, _ = ch.basic_get("tx-again")
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    ch.basic_ack(method.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert drain(connection.channel(), "tx-again") == []


def test_confirm_and_tx_do_not_mix(connection):
    ch = connection.channel()
    ch.tx_select()
    with closed_with(406):
        ch.confirm_delivery()


# ---------------------------------------------------------------- confirms on the wire


def confirm_outcomes(client, count: int) -> tuple[dict[int, str], int]:
    """Read confirms until every tag up to ``count`` is settled: {tag: 'ack'|'nack'}, frames."""
    outcomes: dict[int, str] = {}
    frames_seen = 0
    while len(outcomes) < count:
        _, frame = client.recv_frame()
        if isinstance(frame, (spec.Basic.Ack, spec.Basic.Nack)):
            frames_seen += 1
            kind = "ack" if isinstance(frame, spec.Basic.Ack) else "nack"
            if frame.multiple:  # every tag up to this one not confirmed yet
                tags = [t for t in range(1, frame.delivery_tag + 1) if t not in outcomes]
            else:
                tags = [frame.delivery_tag]
            for tag in tags:
                assert tag not in outcomes, f"tag {tag} confirmed twice"
                outcomes[tag] = kind
    return outcomes, frames_seen


def raw_publish_frames(queue: str, body: bytes = b"x", mandatory: bool = False) -> bytes:
    from pamqp import body as pbody
    from pamqp import frame as pframe
    from pamqp import header as pheader

    return (pframe.marshal(spec.Basic.Publish(exchange="", routing_key=queue,
                                              mandatory=mandatory), 1)
            + pframe.marshal(pheader.ContentHeader(0, len(body), spec.Basic.Properties()), 1)
            + pframe.marshal(pbody.ContentBody(body), 1))


def confirming_client(broker):
    client = raw_client(broker)
    client.send_method(1, spec.Confirm.Select())
    client.recv_until(spec.Confirm.SelectOk)
    return client


def test_confirms_cover_every_publish_once(broker):
    client = confirming_client(broker)
    client.send_method(1, spec.Queue.Declare(queue="confirm-burst"))
    client.recv_until(spec.Queue.DeclareOk)
    client.send(b"".join(raw_publish_frames("confirm-burst") for _ in range(50)))
    outcomes, _ = confirm_outcomes(client, 50)
    assert outcomes == {tag: "ack" for tag in range(1, 51)}
    client.close()


@pytest.mark.leveret_only  # RabbitMQ coalesces too, but how much depends on its timing
def test_confirms_are_coalesced_into_multiple_acks(broker):
    client = confirming_client(broker)
    client.send_method(1, spec.Queue.Declare(queue="confirm-coalesced"))
    client.recv_until(spec.Queue.DeclareOk)
    client.send(b"".join(raw_publish_frames("confirm-coalesced") for _ in range(50)))
    _, frames_seen = confirm_outcomes(client, 50)
    assert frames_seen < 50
    client.close()


def test_nacks_between_acks_for_reject_publish(broker):
    client = confirming_client(broker)
    client.send_method(1, spec.Queue.Declare(queue="confirm-full", arguments={
        "x-max-length": 2, "x-overflow": "reject-publish"}))
    client.recv_until(spec.Queue.DeclareOk)
    client.send(b"".join(raw_publish_frames("confirm-full") for _ in range(4))
                + raw_publish_frames("no-such-queue"))  # unroutable: acked
    outcomes, _ = confirm_outcomes(client, 5)
    assert outcomes == {1: "ack", 2: "ack", 3: "nack", 4: "nack", 5: "ack"}
    client.close()


def test_mandatory_return_comes_before_its_confirm(broker):
    client = confirming_client(broker)
    client.send(raw_publish_frames("no-such-queue", b"back", mandatory=True))
    seen = []
    while not seen or not isinstance(seen[-1], spec.Basic.Ack):
        _, frame = client.recv_frame()
        seen.append(frame)
    assert [type(f).__name__ for f in seen] == ["Return", "ContentHeader", "ContentBody", "Ack"]
    assert seen[0].reply_code == 312 and seen[0].reply_text == "NO_ROUTE"
    assert seen[2].value == b"back" and seen[3].delivery_tag == 1
    client.close()


@pytest.mark.parametrize("notify", [True, False])
def test_server_cancel_only_with_the_capability(broker, connection, notify):
    from rawamqp import RawClient

    client = RawClient(broker.host, broker.port)
    client.send(b"AMQP\x00\x00\x09\x01")
    client.recv_until(spec.Connection.Start)
    client.send_method(0, spec.Connection.StartOk(
        client_properties={"capabilities": {"consumer_cancel_notify": notify}},
        mechanism="PLAIN", response="\0guest\0guest", locale="en_US"))
    _, tune = client.recv_until(spec.Connection.Tune)
    client.send_method(0, spec.Connection.TuneOk(channel_max=tune.channel_max,
                                                 frame_max=tune.frame_max, heartbeat=0))
    client.send_method(0, spec.Connection.Open(virtual_host=vhost_name(broker)))
    client.recv_until(spec.Connection.OpenOk)
    client.open_channel(1)
    client.send_method(1, spec.Queue.Declare(queue="cancel-notify"))
    client.recv_until(spec.Queue.DeclareOk)
    client.send_method(1, spec.Basic.Consume(queue="cancel-notify", consumer_tag="watcher"))
    client.recv_until(spec.Basic.ConsumeOk)
    connection.channel().queue_delete("cancel-notify")
    client.send_method(1, spec.Basic.Qos(prefetch_count=1))
    _, frame = client.recv_frame()
    if notify:
        assert isinstance(frame, spec.Basic.Cancel)
        assert (frame.consumer_tag, frame.nowait) == ("watcher", True)
        _, frame = client.recv_frame()
    assert isinstance(frame, spec.Basic.QosOk)
    client.close()

"""Direct reply-to (rabbitmq.com/docs/direct-reply-to) through pika and aio-pika RPC patterns,
on Leveret and on the local RabbitMQ with the same assertions (the ``target`` fixture). Where
RabbitMQ 3.10 and 4.2 differ (a delivered mandatory reply, binding an address), Leveret follows
4.2 and the test says which is which."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pika
import pika.exceptions
import pytest

REPLY_TO = "amq.rabbitmq.reply-to"


def connect(target) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(target.url))


def channel_error(target, action) -> tuple[int, str]:
    conn = connect(target)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            action(conn.channel())
        return info.value.reply_code, info.value.reply_text
    finally:
        if conn.is_open:
            conn.close()


def wait_for(conn: pika.BlockingConnection, done) -> None:
    for _ in range(400):
        if done():
            return
        conn.process_data_events(time_limit=0.025)
    raise AssertionError("nothing arrived")


def serve_once(conn: pika.BlockingConnection, queue: str, respond) -> None:
    """An RPC server on its own channel: answers each request via the default exchange."""
    server = conn.channel()

    def on_request(ch, method, props, body):
        ch.basic_publish("", props.reply_to, respond(body),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    server.basic_consume(queue, on_request)


def test_pika_rpc_round_trip(target):
    conn = connect(target)
    ch = conn.channel()
    rpc_queue = f"rpc-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(rpc_queue, auto_delete=True)
    serve_once(conn, rpc_queue, lambda body: body.upper())
    replies: list[tuple] = []
    ctag = ch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append(
        (m.consumer_tag, m.redelivered, m.exchange, m.routing_key, p.correlation_id, b)),
        auto_ack=True)
    for n in range(3):
        ch.basic_publish("", rpc_queue, b"ping %d" % n,
                         pika.BasicProperties(reply_to=REPLY_TO, correlation_id=str(n)))
    wait_for(conn, lambda: len(replies) == 3)
    assert sorted(r[4:] for r in replies) == [("0", b"PING 0"), ("1", b"PING 1"),
                                               ("2", b"PING 2")]
    tag, redelivered, exchange, routing_key, _, _ = replies[0]
    assert (tag, redelivered, exchange) == (ctag, False, "")
    assert routing_key.startswith(REPLY_TO + ".")  # the channel's own address
    assert all(r[3] == routing_key for r in replies)
    conn.close()


def test_server_sees_a_per_channel_address_it_can_declare(target):
    conn = connect(target)
    requester, other, server = conn.channel(), conn.channel(), conn.channel()
    q = server.queue_declare("", exclusive=True).method.queue
    for ch in (requester, other):
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
        ch.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    addresses = []
    for _ in range(2):
        method, props, _ = None, None, None
        for _ in range(200):
            method, props, _ = server.basic_get(q, auto_ack=True)
            if method is not None:
                break
            conn.process_data_events(time_limit=0.02)
        addresses.append(props.reply_to)
    assert addresses[0] != addresses[1]  # one address per channel
    for address in addresses:
        assert address.startswith(REPLY_TO + ".")
        ok = server.queue_declare(address, passive=True).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (address, 0, 1)
    conn.close()


def test_passive_declare_of_the_pseudo_queue_succeeds(target):
    conn = connect(target)
    ch = conn.channel()
    for passive in (True, False):
        ok = ch.queue_declare(REPLY_TO, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)
    conn.close()
    code, text = channel_error(target, lambda ch: ch.queue_declare(REPLY_TO + ".nobody",
                                                                   passive=True))
    assert (code, text) == (404, f"NOT_FOUND - no queue '{REPLY_TO}.nobody' in vhost "
                                 f"'{target.vhost}'")


def test_consuming_with_acknowledgements_is_406(target):
    code, text = channel_error(target, lambda ch: ch.basic_consume(
        REPLY_TO, lambda *a: None, auto_ack=False))
    assert (code, text) == (406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")


def test_a_second_reply_consumer_is_406(target):
    def twice(ch):
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)

    assert channel_error(target, twice) == (406, "PRECONDITION_FAILED - reply consumer "
                                                 "already set")


def test_publishing_with_the_pseudo_queue_before_consuming_is_406(target):
    def publish(ch):
        ch.basic_publish("", "anywhere", b"req", pika.BasicProperties(reply_to=REPLY_TO))
        ch.queue_declare(REPLY_TO, passive=True)  # a round trip to see the close

    assert channel_error(target, publish) == (406, "PRECONDITION_FAILED - fast reply consumer "
                                                   "does not exist")

    def after_cancel(ch):
        tag = ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
        ch.basic_cancel(tag)
        publish(ch)

    assert channel_error(target, after_cancel)[0] == 406


def test_other_reply_to_values_pass_untouched(target):
    conn = connect(target)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=REPLY_TO + "-not-quite",
                                                        headers={"k": "v"}))
    _, props, _ = ch.basic_get(q, auto_ack=True)
    assert (props.reply_to, props.headers) == (REPLY_TO + "-not-quite", {"k": "v"})
    conn.close()


def test_properties_survive_the_rewrite(target):
    conn = connect(target)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    sent = pika.BasicProperties(content_type="application/json", headers={"n": 7, "s": "x"},
                                delivery_mode=2, priority=3, correlation_id="corr",
                                reply_to=REPLY_TO, expiration="60000", message_id="mid",
                                type="t", app_id="app")
    ch.basic_publish("", q, b"{}", sent)
    _, props, body = ch.basic_get(q, auto_ack=True)
    assert props.reply_to.startswith(REPLY_TO + ".")
    for field in ("content_type", "headers", "delivery_mode", "priority", "correlation_id",
                  "expiration", "message_id", "type", "app_id"):
        assert getattr(props, field) == getattr(sent, field), field
    conn.close()


def test_reply_to_a_requester_that_is_gone_is_unroutable(target):
    conn = connect(target)
    requester, server = conn.channel(), conn.channel()
    q = server.queue_declare("", exclusive=True).method.queue
    requester.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    requester.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    wait_for(conn, lambda: server.queue_declare(q, passive=True).method.message_count == 1)
    address = server.basic_get(q, auto_ack=True)[1].reply_to
    requester.close()
    server.confirm_delivery()
    server.basic_publish("", address, b"lost")  # not mandatory: dropped, still confirmed
    with pytest.raises(pika.exceptions.UnroutableError):
        server.basic_publish("", address, b"lost", mandatory=True)  # returned: NO_ROUTE
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        server.queue_declare(address, passive=True)
    assert info.value.reply_code == 404
    conn.close()


def test_mandatory_reply_that_was_delivered(target):
    """RabbitMQ 3.10 returns every mandatory reply as unroutable even when it reached the
    requester; 4.2 (direct reply-to as volatile queues) does not, and Leveret follows 4.2."""
    conn = connect(target)
    requester, server = conn.channel(), conn.channel()
    got = []
    requester.basic_consume(REPLY_TO, lambda c, m, p, b: got.append(b), auto_ack=True)
    q = server.queue_declare("", exclusive=True).method.queue
    requester.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    wait_for(conn, lambda: server.queue_declare(q, passive=True).method.message_count == 1)
    address = server.basic_get(q, auto_ack=True)[1].reply_to
    server.confirm_delivery()
    if target.is_rabbitmq:
        with pytest.raises(pika.exceptions.UnroutableError):
            server.basic_publish("", address, b"reply", mandatory=True)
    else:
        server.basic_publish("", address, b"reply", mandatory=True)  # confirmed, not returned
    wait_for(conn, lambda: got == [b"reply"])
    conn.close()


def test_binding_an_address(target):
    """4.2: 403; 3.10: 404 (it has no such queue). Leveret follows 4.2."""
    conn = connect(target)
    ch = conn.channel()
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    wait_for(conn, lambda: ch.queue_declare(q, passive=True).method.message_count == 1)
    address = ch.basic_get(q, auto_ack=True)[1].reply_to
    conn.close()
    code, text = channel_error(target, lambda ch: ch.queue_bind(address, "amq.direct", "k"))
    if target.is_rabbitmq:
        assert code == 404
    else:
        assert (code, text) == (403, "ACCESS_REFUSED - cannot bind or unbind to a volatile "
                                     "(direct reply-to) queue")


def test_basic_get_on_the_pseudo_queue_is_404(target):
    code, text = channel_error(target, lambda ch: ch.basic_get(REPLY_TO))
    assert (code, text) == (404, f"NOT_FOUND - no queue '{REPLY_TO}' in vhost '{target.vhost}'")


async def test_aio_pika_rpc_with_direct_reply_to(target):
    conn = await aio_pika.connect(target.url)
    server_ch, client_ch = await conn.channel(), await conn.channel()
    rpc_queue = await server_ch.declare_queue(exclusive=True)

    async def on_request(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            await server_ch.default_exchange.publish(
                aio_pika.Message(message.body[::-1], correlation_id=message.correlation_id),
                routing_key=message.reply_to)

    await rpc_queue.consume(on_request)

    futures: dict[str, asyncio.Future] = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        futures[message.correlation_id].set_result(message.body)

    reply_queue = await client_ch.get_queue(REPLY_TO)  # a passive declare
    await reply_queue.consume(on_reply, no_ack=True)
    loop = asyncio.get_running_loop()
    for word in ("alpha", "beta", "gamma"):
        futures[word] = loop.create_future()
        await client_ch.default_exchange.publish(
            aio_pika.Message(word.encode(), correlation_id=word, reply_to=REPLY_TO),
            routing_key=rpc_queue.name)
    results = await asyncio.wait_for(asyncio.gather(*futures.values()), 10)
    assert results == [b"ahpla", b"ateb", b"ammag"]
    await conn.close()


async def test_aio_pika_consume_with_ack_fails(target):
    conn = await aio_pika.connect(target.url)
    ch = await conn.channel()
    queue = await ch.get_queue(REPLY_TO)

    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        pass

    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed) as info:
        await queue.consume(ignore, no_ack=False)
    assert "reply consumer cannot acknowledge" in str(info.value)
    await conn.close()

"""The connection and channel protocol seen from real clients and from a raw socket."""

from __future__ import annotations

import os
import struct

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

from rawamqp import PROTOCOL_HEADER, RawClient, heartbeat_frame


def raw(broker) -> RawClient:
    return RawClient(broker.host, broker.port)


# ---------------------------------------------------------------- handshake


@pytest.mark.leveret_only
def test_server_properties_and_capabilities(broker):
    client = raw(broker)
    start = client.handshake()
    props = start.server_properties
    assert props["product"] == "RabbitMQ"  # clients take their RabbitMQ code paths
    assert "Leveret" in props["platform"] and "leveret_version" in props
    caps = props["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps[cap] is True, cap
    assert set(start.mechanisms.split()) == {"PLAIN", "AMQPLAIN"}
    client.close()


def test_tune_proposes_rabbitmq_defaults(broker):
    client = raw(broker)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    client.send_method(0, spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response="\0guest\0guest", locale="en_US"))
    _, tune = client.recv_until(spec.Connection.Tune)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    client.close()


def test_wrong_protocol_header_is_answered_with_ours(broker):
    client = raw(broker)
    client.send(b"AMQP\x01\x01\x00\x0a")
    assert client.read_to_eof() == PROTOCOL_HEADER


def test_http_request_is_answered_with_protocol_header(broker):
    client = raw(broker)
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    assert client.read_to_eof() == PROTOCOL_HEADER


def test_amqplain_mechanism(broker):
    from pamqp import encode

    client = raw(broker)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    table = encode.field_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:].decode()
    client.send_method(0, spec.Connection.StartOk(
        client_properties={}, mechanism="AMQPLAIN", response=table, locale="en_US"))
    _, tune = client.recv_until(spec.Connection.Tune)
    assert tune.frame_max == 131072
    client.close()


def test_bad_credentials_pika(broker):
    params = pika.URLParameters(broker.url.replace("guest:guest", "guest:wrong"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(info.value)


def test_bad_credentials_raw_gets_403(broker):
    client = raw(broker)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    client.send_method(0, spec.Connection.StartOk(
        client_properties={"capabilities": {"authentication_failure_close": True}},
        mechanism="PLAIN", response="\0guest\0nope", locale="en_US"))
    _, close = client.recv_until(spec.Connection.Close)
    assert close.reply_code == 403
    assert close.reply_text.startswith("ACCESS_REFUSED")


async def test_bad_credentials_aio_pika(abroker):
    url = abroker.url.replace("guest:guest", "nobody:guest")
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(url)


def test_unknown_vhost_is_530(broker):
    params = pika.URLParameters(f"amqp://guest:guest@{broker.host}:{broker.port}/no-such-vhost")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(params)
    assert "(530) 'NOT_ALLOWED - vhost no-such-vhost not found'" in str(info.value)


@pytest.mark.leveret_only  # RabbitMQ 3.10 drops the socket; we say why first
def test_frame_max_above_server_is_refused(broker):
    client = raw(broker)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    client.send_method(0, spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response="\0guest\0guest", locale="en_US"))
    client.recv_until(spec.Connection.Tune)
    client.send_method(0, spec.Connection.TuneOk(channel_max=2047, frame_max=1 << 24,
                                                 heartbeat=0))
    _, close = client.recv_until(spec.Connection.Close)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        530, "NOT_ALLOWED - negotiated frame_max = 16777216 is higher than the maximum allowed "
             "value (131072)", 10, 30)


def test_negotiated_smaller_frame_max_splits_bodies(broker):
    params = pika.URLParameters(broker.url + "?frame_max=4096")
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("split")
    body = bytes(range(256)) * 100  # 25600 bytes: several 4 KiB body frames each way
    ch.basic_publish("", "split", body)
    _, _, got = ch.basic_get("split", auto_ack=True)
    assert got == body
    conn.close()


# ---------------------------------------------------------------- heartbeats


def test_server_sends_heartbeats(broker):
    client = raw(broker)
    client.handshake(heartbeat=1)
    channel, frame = client.recv_frame()  # nothing else is due, so this is a heartbeat
    assert channel == 0
    assert frame.__class__.__name__ == "Heartbeat"
    client.close()


def test_silent_client_is_dropped_after_missed_heartbeats(broker):
    client = raw(broker)
    client.handshake(heartbeat=1)
    # we never send anything; the server must give up on us and close the socket
    client.sock.settimeout(15)
    client.read_to_eof()


def test_client_heartbeats_keep_connection_alive(broker):
    client = raw(broker)
    client.handshake(heartbeat=1)
    for _ in range(4):
        client.recv_frame()  # the server's heartbeat, every 0.5 s
        client.send(heartbeat_frame())
    client.open_channel(1)  # still open and serving
    client.close()


def test_pika_sees_heartbeats(broker):
    params = pika.URLParameters(broker.url + "?heartbeat=1")
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("hb")
    conn.sleep(3.0)  # pika answers heartbeats while it sleeps; we must not be dropped
    ch.basic_publish("", "hb", b"still here")
    assert ch.basic_get("hb", auto_ack=True)[2] == b"still here"
    conn.close()


# ---------------------------------------------------------------- malformed input


def _expect_connection_close(client: RawClient, code: int) -> spec.Connection.Close:
    _, close = client.recv_until(spec.Connection.Close)
    assert close.reply_code == code, close.reply_text
    return close


def test_bad_frame_end_is_501(broker):
    client = raw(broker)
    client.handshake()
    frame = bytearray(pframe.marshal(spec.Channel.Open(), 1))
    frame[-1] = 0x00
    client.send(bytes(frame))
    _expect_connection_close(client, 501)


def test_frame_over_frame_max_is_501(broker):
    client = raw(broker)
    client.handshake(frame_max=4096)
    client.open_channel(1)
    body = b"x" * 5000
    client.send(struct.pack(">BHI", 3, 1, len(body)) + body + b"\xce")
    _expect_connection_close(client, 501)


def test_unknown_frame_type_is_501(broker):
    client = raw(broker)
    client.handshake()
    client.send(struct.pack(">BHI", 9, 0, 1) + b"x" + b"\xce")
    _expect_connection_close(client, 501)


def test_body_without_publish_is_505(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(1)
    client.send(struct.pack(">BHI", 3, 1, 3) + b"abc" + b"\xce")
    _expect_connection_close(client, 505)


def test_method_instead_of_content_header_is_505(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(1)
    client.send_method(1, spec.Basic.Publish(exchange="", routing_key="q"))
    client.send_method(1, spec.Queue.Declare(queue="q"))
    _expect_connection_close(client, 505)


def test_frame_on_unopened_channel_is_504(broker):
    client = raw(broker)
    client.handshake()
    client.send_method(7, spec.Queue.Declare(queue="q"))
    _expect_connection_close(client, 504)


def test_second_channel_open_is_504(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(1)
    client.send_method(1, spec.Channel.Open())
    _expect_connection_close(client, 504)


def test_channel_method_on_channel_zero_is_504(broker):
    client = raw(broker)
    client.handshake()
    client.send_method(0, spec.Queue.Declare(queue="q"))
    close = _expect_connection_close(client, 504)  # as RabbitMQ 3.10 answers it
    assert close.reply_text.startswith("CHANNEL_ERROR")


def test_garbage_method_arguments_close_connection(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(1)
    # queue.declare with its arguments cut short
    payload = struct.pack(">HH", 50, 10) + b"\x00\x00\x09"
    client.send(struct.pack(">BHI", 1, 1, len(payload)) + payload + b"\xce")
    close = _expect_connection_close(client, 501)  # RabbitMQ: "FRAME_ERROR - cannot decode"
    assert close.reply_text.startswith("FRAME_ERROR - cannot decode")


@pytest.mark.leveret_only  # RabbitMQ 3.10's reader crashes on it (unknown_method_id)
def test_unknown_method_is_503(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(1)
    payload = struct.pack(">HH", 99, 99)
    client.send(struct.pack(">BHI", 1, 1, len(payload)) + payload + b"\xce")
    _expect_connection_close(client, 503)


def test_misbehaving_client_does_not_harm_others(broker, channel):
    channel.queue_declare("survivor")
    bad = raw(broker)
    bad.handshake()
    bad.send(b"\x01\x00\x01\xff\xff\xff\xff" + b"garbage" * 10)
    bad.read_to_eof()
    channel.basic_publish("", "survivor", b"fine")
    assert channel.basic_get("survivor", auto_ack=True)[2] == b"fine"


def test_truncated_handshake_then_disconnect(broker, channel):
    client = raw(broker)
    client.send(PROTOCOL_HEADER[:4])
    client.close()
    channel.queue_declare("after")
    assert channel.queue_declare("after", passive=True).method.queue == "after"


# ---------------------------------------------------------------- channel lifecycle


def test_after_channel_close_only_close_ok_counts(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(1)
    client.send_method(1, spec.Queue.Declare(queue="missing", passive=True))
    _, close = client.recv_until(spec.Channel.Close)
    assert close.reply_code == 404
    assert (close.class_id, close.method_id) == (50, 10)
    # anything but close-ok on the closing channel is ignored
    client.send_method(1, spec.Queue.Declare(queue="ignored"))
    client.send_method(1, spec.Channel.CloseOk())
    client.open_channel(1)  # the number can be reused after close-ok
    client.send_method(1, spec.Queue.Declare(queue="ignored", passive=True))
    _, close = client.recv_until(spec.Channel.Close)
    assert close.reply_code == 404  # the ignored declare really was ignored
    client.close()


def test_client_channel_close_gets_close_ok(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(3)
    client.send_method(3, spec.Channel.Close(reply_code=200, reply_text="bye",
                                                class_id=0, method_id=0))
    channel, _ = client.recv_until(spec.Channel.CloseOk)
    assert channel == 3
    client.close()


def test_connection_close_handshake(broker):
    client = raw(broker)
    client.handshake()
    client.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye",
                                                   class_id=0, method_id=0))
    client.recv_until(spec.Connection.CloseOk)


# ---------------------------------------------------------------- messaging path


def test_publish_get_consume_ack_pika(channel):
    channel.queue_declare("work")
    for i in range(3):
        channel.basic_publish("", "work", f"m{i}".encode(),
                              pika.BasicProperties(content_type="text/plain",
                                                   headers={"n": i}))
    method, props, body = channel.basic_get("work")
    assert body == b"m0" and props.headers == {"n": 0} and props.content_type == "text/plain"
    assert method.message_count == 2
    channel.basic_ack(method.delivery_tag)
    got = []
    for method, props, body in channel.consume("work", inactivity_timeout=5):
        got.append((body, props.headers["n"]))
        channel.basic_ack(method.delivery_tag)
        if len(got) == 2:
            break
    channel.cancel()
    assert got == [(b"m1", 1), (b"m2", 2)]
    assert channel.queue_declare("work", passive=True).method.message_count == 0


def test_unacked_messages_return_when_connection_closes(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("keep")
    ch.basic_publish("", "keep", b"one")
    method, _, _ = ch.basic_get("keep")
    assert method.redelivered is False
    conn.close()
    conn2 = pika.BlockingConnection(pika.URLParameters(broker.url))
    method, _, body = conn2.channel().basic_get("keep", auto_ack=True)
    assert body == b"one" and method.redelivered is True
    conn2.close()


def test_basic_cancel_stops_deliveries(channel):
    channel.queue_declare("c")
    tag = channel.basic_consume("c", lambda *a: None)
    channel.basic_cancel(tag)
    channel.basic_publish("", "c", b"x")
    assert channel.basic_get("c", auto_ack=True)[2] == b"x"  # still in the queue


def test_ten_megabyte_message_intact(channel):
    body = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    channel.queue_declare("big")
    channel.basic_publish("", "big", body)
    _, _, got = channel.basic_get("big", auto_ack=True)
    assert got == body


def test_empty_body(channel):
    channel.queue_declare("empty")
    channel.basic_publish("", "empty", b"")
    method, _, body = channel.basic_get("empty", auto_ack=True)
    assert body == b"" and method is not None


def test_get_empty(channel):
    channel.queue_declare("nothing")
    assert channel.basic_get("nothing") == (None, None, None)


def test_raw_publish_header_body_frames_in_one_write(broker):
    client = raw(broker)
    client.handshake()
    client.open_channel(1)
    queue = f"rawq-{os.getpid()}-{id(client)}"
    client.send_method(1, spec.Queue.Declare(queue=queue, exclusive=True))
    client.recv_until(spec.Queue.DeclareOk)
    body = b"hello raw"
    data = (pframe.marshal(spec.Basic.Publish(exchange="", routing_key=queue), 1)
            + pframe.marshal(pheader.ContentHeader(0, len(body),
                                                   spec.Basic.Properties(delivery_mode=2)), 1)
            + pframe.marshal(pframe.body.ContentBody(body), 1)) * 3
    client.send(data)
    for _ in range(3):
        client.send_method(1, spec.Basic.Get(queue=queue, no_ack=True))
        _, get_ok = client.recv_until(spec.Basic.GetOk)
        _, head = client.recv_until(pheader.ContentHeader)
        assert head.properties.delivery_mode == 2 and head.body_size == len(body)
        _, content = client.recv_frame()
        assert content.value == body
    client.close()


async def test_aio_pika_publish_consume(abroker):
    conn = await aio_pika.connect(abroker.url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("aio")
        await ch.default_exchange.publish(aio_pika.Message(b"hi", headers={"k": "v"}),
                                          routing_key="aio")
        async with q.iterator() as it:
            async for message in it:
                async with message.process():
                    assert message.body == b"hi"
                    assert message.headers == {"k": "v"}
                    break
        assert (await ch.declare_queue("aio", passive=True)).declaration_result.message_count == 0


async def test_aio_pika_get_and_confirms(abroker):
    conn = await aio_pika.connect(abroker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("aio-get")
        for i in range(10):
            confirmation = await ch.default_exchange.publish(
                aio_pika.Message(str(i).encode()), routing_key="aio-get")
            assert confirmation is not None
        msg = await q.get()
        assert msg.body == b"0"
        await msg.ack()
        assert (await q.get(no_ack=True)).body == b"1"

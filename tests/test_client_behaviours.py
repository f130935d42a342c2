"""What clients' own test suites trip on, run on Leveret and on the local RabbitMQ 3.10 with the
same assertions (the ``target`` fixture): unbind of what is gone, the default and ``amq.*``
exchanges, headers bindings, exclusive redeclares, the class and method ids a close names,
the server properties, and leaving the socket to the client after close-ok."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import aio_pika
import aio_pika.patterns
import aiormq
import pika
import pika.exceptions
import pytest
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

from leveret import RABBITMQ_VERSION, Broker, __version__

from rawamqp import RawClient

NODE_DIR = Path(__file__).parent / "node"


def pika_channel(target):
    conn = pika.BlockingConnection(pika.URLParameters(target.url))
    return conn, conn.channel()


def channel_error(target, action) -> tuple[int, str]:
    """Run ``action(channel)`` on a fresh connection; the channel.close it causes."""
    conn, ch = pika_channel(target)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            action(ch)
        return info.value.reply_code, info.value.reply_text
    finally:
        if conn.is_open:
            conn.close()


def raw_client(target) -> RawClient:
    client = RawClient(target.host, target.port)
    client.handshake(vhost=target.vhost)
    client.open_channel(1)
    return client


def first_close(client: RawClient) -> tuple[int, object]:
    """The next channel.close or connection.close: (channel, frame)."""
    return client.recv_until((spec.Channel.Close, spec.Connection.Close))  # type: ignore[arg-type]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- unbind of what is gone


def test_unbind_of_a_missing_queue_or_exchange_is_unbind_ok(target):
    conn, ch = pika_channel(target)
    q = unique("unbind")
    ch.queue_declare(q, auto_delete=True)
    ch.queue_bind(q, "amq.direct", "k")
    ch.queue_unbind("no-such-queue", "amq.direct", "k")  # each answered unbind-ok
    ch.queue_unbind(q, "no-such-exchange", "k")
    ch.queue_unbind(q, "amq.direct", "never-bound")
    ch.exchange_unbind("no-such-exchange", "amq.direct", "k")
    ch.exchange_unbind("amq.fanout", "no-such-exchange", "k")
    ch.queue_unbind(q, "amq.direct", "k")
    ch.basic_publish("amq.direct", "k", b"unbound", mandatory=True)  # the binding is gone
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    conn.close()


async def test_aio_pika_teardown_after_auto_delete_queue_went(target):
    """aio-pika's RPC teardown unbinds a queue that auto-delete already removed."""
    conn = await aio_pika.connect(target.url)
    ch = await conn.channel()
    ex = await ch.declare_exchange(unique("rpc-ex"), aio_pika.ExchangeType.DIRECT,
                                   auto_delete=True)
    queue = await ch.declare_queue(unique("rpc-q"), auto_delete=True)
    await queue.bind(ex, "k")
    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        pass

    tag = await queue.consume(ignore)
    await queue.cancel(tag)  # last consumer gone: the queue is deleted
    await queue.unbind(ex, "k")  # unbind-ok, the channel stays open
    assert not ch.is_closed
    await conn.close()


async def test_aio_pika_rpc_pattern_round_trip_and_close(target):
    """aio_pika.patterns.RPC end to end: a headers binding with x-match any, an exclusive
    no-ack consumer, then close(): cancel (the auto-delete result queue goes), unbind from the
    auto-delete exchange that went with it, delete. Each step must be answered -ok."""
    conn = await aio_pika.connect(target.url)
    channel = await conn.channel()
    rpc = await aio_pika.patterns.RPC.create(channel)

    async def multiply(*, x: int, y: int) -> int:
        return x * y

    await rpc.register(unique("multiply"), multiply, auto_delete=True)
    name = next(iter(rpc.routes))
    assert await asyncio.wait_for(rpc.call(name, kwargs={"x": 6, "y": 7}), 10) == 42
    await rpc.close()
    assert not channel.is_closed
    await conn.close()


# ---------------------------------------------------------------- default and amq.* exchanges


def test_passive_declare_of_the_default_exchange_is_403(target):
    code, text = channel_error(target, lambda ch: ch.exchange_declare("", passive=True))
    assert (code, text) == (403, "ACCESS_REFUSED - operation not permitted on the default "
                                 "exchange")


def test_builtin_amq_exchanges_can_be_redeclared_with_their_own_type(target):
    conn, ch = pika_channel(target)
    for name, kind in (("amq.direct", "direct"), ("amq.fanout", "fanout"),
                       ("amq.topic", "topic"), ("amq.headers", "headers"),
                       ("amq.match", "headers")):
        ch.exchange_declare(name, kind, durable=True)  # declare-ok
    conn.close()
    code, text = channel_error(target, lambda ch: ch.exchange_declare("amq.direct", "fanout",
                                                                      durable=True))
    assert code == 406 and text == ("PRECONDITION_FAILED - inequivalent arg 'type' for exchange "
                                    f"'amq.direct' in vhost '{target.vhost}': received 'fanout' "
                                    "but current is 'direct'")
    code, text = channel_error(target, lambda ch: ch.exchange_declare("amq.direct", "direct"))
    assert code == 406 and "inequivalent arg 'durable'" in text
    code, text = channel_error(target, lambda ch: ch.exchange_declare("amq.brand-new", "direct",
                                                                      durable=True))
    assert (code, text) == (403, "ACCESS_REFUSED - exchange name 'amq.brand-new' contains "
                                 "reserved prefix 'amq.*'")


# ---------------------------------------------------------------- headers bindings


@pytest.mark.parametrize("x_match, expected", [
    ("some", "Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or "
             "any-with-x"),
    (5, "Invalid x-match field type signedint (value 5); expected longstr"),
])
def test_headers_binding_with_a_bad_x_match_is_406_at_bind_time(target, x_match, expected):
    def bind(ch):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.headers", "", arguments={"x-match": x_match, "a": "1"})

    assert channel_error(target, bind) == (406, "PRECONDITION_FAILED - " + expected)

    def bind_exchange(ch):
        ch.exchange_declare("hx", "fanout", auto_delete=True)
        ch.exchange_bind("hx", "amq.match", "", arguments={"x-match": x_match})

    assert channel_error(target, bind_exchange) == (406, "PRECONDITION_FAILED - " + expected)


def test_headers_binding_accepts_every_x_match_kind(target):
    conn, ch = pika_channel(target)
    q = ch.queue_declare("", exclusive=True).method.queue
    for kind in ("all", "any", "all-with-x", "any-with-x"):
        ch.queue_bind(q, "amq.headers", "", arguments={"x-match": kind, "k": kind})
    ch.queue_bind(q, "amq.direct", "k", arguments={"x-match": "ignored by direct"})
    ch.basic_publish("amq.headers", "", b"m", pika.BasicProperties(headers={"k": "any"}))
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m"
    conn.close()


# ---------------------------------------------------------------- exclusive queues


def test_exclusive_queue_redeclared_without_exclusive_is_405_even_from_its_owner(target):
    q = unique("excl")

    def redeclare(ch):
        ch.queue_declare(q, exclusive=True)
        ch.queue_declare(q, exclusive=True, passive=True)  # passive: the flag is not compared
        ch.queue_declare(q, exclusive=True)  # same flags: declare-ok
        ch.queue_declare(q, exclusive=False)

    code, text = channel_error(target, redeclare)
    assert (code, text) == (
        405, f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost "
             f"'{target.vhost}'. It could be originally declared on another connection or the "
             "exclusive property value does not match that of the original declaration.")


# ---------------------------------------------------------------- what a close names


def _content(size: int) -> bytes:
    return pframe.marshal(pheader.ContentHeader(0, size, spec.Basic.Properties()), 1)


def _publish(client: RawClient, immediate: bool = False) -> None:
    client.send_method(1, spec.Basic.Publish(exchange="", routing_key="nowhere",
                                             immediate=immediate))


@pytest.mark.parametrize("case, sends, expected", [
    ("immediate", lambda c: (_publish(c, immediate=True), c.send(_content(0))),
     (0, 540, "NOT_IMPLEMENTED - immediate=true", 60, 40)),
    ("unknown exchange type", lambda c: c.send_method(1, spec.Exchange.Declare(
        exchange="x", exchange_type="no-such-type")),
     (0, 503, "COMMAND_INVALID - unknown exchange type 'no-such-type'", 40, 10)),
    ("prefetch size", lambda c: c.send_method(1, spec.Basic.Qos(prefetch_size=10)),
     (0, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)", 60, 10)),
    ("flow off", lambda c: c.send_method(1, spec.Channel.Flow(active=False)),
     (0, 540, "NOT_IMPLEMENTED - active=false", 20, 20)),
    ("consumer tag reused", lambda c: (
        c.send_method(1, spec.Queue.Declare(queue="", exclusive=True)),
        c.send_method(1, spec.Basic.Consume(queue="", consumer_tag="t")),
        c.send_method(1, spec.Basic.Consume(queue="", consumer_tag="t"))),
     (0, 530, "NOT_ALLOWED - attempt to reuse consumer tag 't'", 60, 20)),
    ("queue method on channel 0", lambda c: c.send_method(0, spec.Queue.Declare(queue="x")),
     (0, 504, "CHANNEL_ERROR - unexpected method in connection state running", 50, 10)),
    ("channel.open on channel 0", lambda c: c.send_method(0, spec.Channel.Open()),
     (0, 504, "CHANNEL_ERROR - unexpected method in connection state running", 20, 10)),
    ("second channel.open", lambda c: c.send_method(1, spec.Channel.Open()),
     (0, 504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)),
    ("channel not open", lambda c: c.send_method(5, spec.Queue.Declare(queue="x")),
     (0, 504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)),
    ("body without publish", lambda c: c.send(pframe.marshal(pbody.ContentBody(b"abc"), 1)),
     (0, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0)),
    ("header without publish", lambda c: c.send(_content(3)),
     (0, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0)),
    ("method instead of header", lambda c: (
        _publish(c), c.send_method(1, spec.Queue.Declare(queue="x"))),
     (0, 505, "UNEXPECTED_FRAME - expected content header for class 60, got non content "
              "header frame instead", 60, 40)),
    ("publish instead of header", lambda c: (_publish(c), _publish(c)),
     (0, 505, "UNEXPECTED_FRAME - expected content header for class 60, got non content "
              "header frame instead", 60, 40)),
    ("header of another class", lambda c: (_publish(c), c.send(
        struct.pack(">BHI", 2, 1, 14) + struct.pack(">HHQH", 50, 0, 3, 0) + b"\xce")),
     (0, 505, "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 "
              "instead", 60, 40)),
    ("publish to a missing exchange", lambda c: (
        c.send_method(1, spec.Basic.Publish(exchange="no-such-exchange", routing_key="x")),
        c.send(_content(0))),
     (1, 404, "NOT_FOUND - no exchange 'no-such-exchange' in vhost '{vhost}'", 60, 40)),
    ("ack of an unknown tag", lambda c: c.send_method(1, spec.Basic.Ack(delivery_tag=5)),
     (1, 406, "PRECONDITION_FAILED - unknown delivery tag 5", 60, 80)),
    ("reject of an unknown tag", lambda c: c.send_method(1, spec.Basic.Reject(delivery_tag=5)),
     (1, 406, "PRECONDITION_FAILED - unknown delivery tag 5", 60, 90)),
    ("commit outside a transaction", lambda c: c.send_method(1, spec.Tx.Commit()),
     (1, 406, "PRECONDITION_FAILED - channel is not transactional", 90, 20)),
])
def test_close_names_the_offending_method(target, case, sends, expected):
    client = raw_client(target)
    sends(client)
    channel, close = first_close(client)
    channel_no, code, text, class_id, method_id = expected
    assert (channel, close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        channel_no, code, text.format(vhost=target.vhost), class_id, method_id)
    client.close()


# ---------------------------------------------------------------- channel_max


def test_channel_max_limits_open_channels_not_their_numbers(target):
    """aiormq's test_bad_channel opens channel 65535 on a connection tuned to 2047 channels:
    RabbitMQ counts the open channels (rabbit_reader:create_channel), so any number is fine
    until channel_max of them are open; the next channel.open closes the connection."""
    client = RawClient(target.host, target.port)
    client.handshake(vhost=target.vhost, channel_max=2)
    client.open_channel(65535)
    client.open_channel(3000)
    client.send_method(7, spec.Channel.Open())
    channel, close = first_close(client)
    assert (channel, close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        0, 530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated "
                "channel_max (2)", 0, 0)
    client.close()


@pytest.mark.parametrize("channel_max, frame_max, text", [
    (0, 131072, "negotiated channel_max = 0 (no limit) is higher than the maximum allowed "
                "value (2047)"),
    (2047, 0, "negotiated frame_max = 0 is higher than the maximum allowed value (131072)"),
    (2047, 4095, "negotiated frame_max = 4095 is lower than the minimum allowed value (4096)"),
])
def test_tune_ok_without_limits_is_refused(target, channel_max, frame_max, text):
    """0 in tune-ok means "no limit", which a server with a limit refuses
    (rabbit_reader:validate_negotiated_integer_value). RabbitMQ drops the socket without
    saying why; Leveret sends its text in a connection.close first. Either way no
    connection.open-ok comes."""
    client = RawClient(target.host, target.port)
    client.send(b"AMQP\x00\x00\x09\x01")
    client.recv_until(spec.Connection.Start)
    client.send_method(0, spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response="\0guest\0guest", locale="en_US"))
    client.recv_until(spec.Connection.Tune)
    client.send_method(0, spec.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max,
                                                 heartbeat=0))
    client.send_method(0, spec.Connection.Open(virtual_host=target.vhost))
    frames = []
    try:
        while True:
            frames.append(client.recv_frame()[1])
    except (EOFError, ConnectionResetError):
        pass
    client.close()
    assert not any(isinstance(f, spec.Connection.OpenOk) for f in frames)
    if not target.is_rabbitmq:
        close = frames[0]
        assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
            530, f"NOT_ALLOWED - {text}", 10, 30)


async def test_aiormq_opens_the_highest_channel_number(target):
    conn = await aiormq.connect(target.url)
    try:
        channel = await conn.channel(65535)
        declared = await channel.queue_declare(exclusive=True)
        assert declared.queue.startswith("amq.gen-")
    finally:
        await conn.close()


# ---------------------------------------------------------------- server properties


def test_server_properties_are_rabbitmqs_with_leveret_named(target):
    """Clients branch on ``product`` and ``version`` (kombu, Spring): Leveret advertises what
    RabbitMQ advertises, so the capability tables and the keys are the same on both."""
    client = RawClient(target.host, target.port)
    props = client.handshake(vhost=target.vhost).server_properties
    client.close()
    assert props["product"] == "RabbitMQ"
    assert set(props) - {"leveret_version"} == {"product", "version", "platform", "copyright",
                                                "information", "cluster_name", "capabilities"}
    assert props["capabilities"] == {
        "publisher_confirms": True, "exchange_exchange_bindings": True, "basic.nack": True,
        "consumer_cancel_notify": True, "connection.blocked": True,
        "consumer_priorities": True, "authentication_failure_close": True,
        "per_consumer_qos": True, "direct_reply_to": True}
    if target.is_rabbitmq:
        assert props["version"] == RABBITMQ_VERSION  # the release Leveret follows
    else:
        assert props["version"] == RABBITMQ_VERSION
        assert props["leveret_version"] == __version__
        assert f"Leveret {__version__}" in props["platform"]
        assert "Leveret" in props["information"]


async def test_aio_pika_sees_rabbitmq(target):
    conn = await aio_pika.connect(target.url)
    props = conn.transport.connection.server_properties
    assert (props["product"], props["version"]) == ("RabbitMQ", RABBITMQ_VERSION)
    await conn.close()


# ---------------------------------------------------------------- after close-ok


def test_client_close_leaves_the_socket_to_the_client(target):
    """connection.close is answered close-ok, then the socket is the client's to close: what
    it still writes is discarded, not answered with a reset (amqplib's EPIPE). Exclusive
    queues are gone by the time close-ok arrives."""
    client = raw_client(target)
    q = unique("closing")
    client.send_method(1, spec.Queue.Declare(queue=q, exclusive=True))
    client.recv_until(spec.Queue.DeclareOk)
    client.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0,
                                                method_id=0))
    client.recv_until(spec.Connection.CloseOk)
    # what a client with buffered publishes still writes after its close (256 KiB)
    frame = (pframe.marshal(spec.Basic.Publish(exchange="", routing_key=q), 1) + _content(8192)
             + pframe.marshal(pbody.ContentBody(b"x" * 8192), 1))
    client.sock.sendall(frame * 32)
    # a server that closed its end would have reset the connection by now (the reset comes
    # back within a round trip of the first write); RabbitMQ waits for the client
    readable, _, _ = select.select([client.sock], [], [], 0.3)
    assert not readable, "the server closed the socket under the client's writes"
    client.sock.sendall(frame)
    client.close()
    conn, ch = pika_channel(target)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(q, passive=True)
    assert info.value.reply_code == 404
    conn.close()


@pytest.mark.leveret_only
def test_socket_left_open_after_close_ok_is_dropped_at_server_stop():
    with Broker.in_thread() as broker:
        client = RawClient(broker.host, broker.port)
        client.handshake()
        client.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye",
                                                    class_id=0, method_id=0))
        client.recv_until(spec.Connection.CloseOk)
    # the broker stopped without waiting out the grace period, and dropped the socket
    assert client.read_to_eof() == b""
    client.close()


def _amqplib() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (ci/install_node_clients.sh)")
    if not (NODE_DIR / "node_modules" / "amqplib").is_dir():
        pytest.skip("amqplib is not installed: run ci/install_node_clients.sh")
    return NODE_DIR


def test_amqplib_close_with_buffered_publishes(target):
    """amqplib writes buffered publishes around its connection.close; RabbitMQ closes
    cleanly, and so must Leveret (it used to reset the socket: EPIPE ended amqplib's run)."""
    node_dir = _amqplib()
    result = subprocess.run(["node", "close_flush.js", target.url, "5"], cwd=node_dir,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NODE_PATH": str(node_dir / "node_modules")})
    assert result.stdout.strip() == "OK", result.stdout + result.stderr


async def test_connection_close_from_aio_pika_is_clean(target):
    conn = await aio_pika.connect(target.url)
    ch = await conn.channel()
    for _ in range(50):
        await ch.default_exchange.publish(aio_pika.Message(b"x" * 4096), "nowhere")
    await asyncio.wait_for(conn.close(), 10)
    assert conn.is_closed

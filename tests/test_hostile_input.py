"""Input a well-behaved client never sends, and names pamqp would refuse: a clear error with
RabbitMQ's reply code (never 541 INTERNAL_ERROR, never a traceback in the log), and every
other client unaffected.
"""

from __future__ import annotations

import logging
import struct

import pika
import pytest
from pamqp import commands as spec
from pamqp import encode
from pamqp import frame as pframe

from leveret import Broker

from rawamqp import PROTOCOL_HEADER, RawClient

# ---------------------------------------------------------------- helpers


def method_frame(channel: int, class_id: int, method_id: int, args: bytes) -> bytes:
    payload = struct.pack(">HH", class_id, method_id) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def nested_table(depth: int) -> bytes:
    """A field table holding a table holding ... ``depth`` tables in all."""
    inner = b""
    for _ in range(depth - 1):
        inner = b"\x01aF" + struct.pack(">I", len(inner)) + inner
    return struct.pack(">I", len(inner)) + inner


def shortstr(text: str) -> bytes:
    raw = text.encode()
    return bytes((len(raw),)) + raw


def start_ok(client_properties: bytes, mechanism: str = "PLAIN",
             response: bytes = b"\0guest\0guest") -> bytes:
    return method_frame(0, 10, 11, client_properties + shortstr(mechanism)
                        + struct.pack(">I", len(response)) + response + shortstr("en_US"))


def vhost_of(broker) -> str:
    return pika.URLParameters(broker.url).virtual_host


def opened(broker) -> RawClient:
    client = RawClient(broker.host, broker.port)
    client.handshake(vhost=vhost_of(broker))
    client.open_channel(1)
    return client


def close_reply(client: RawClient) -> spec.Connection.Close:
    """The connection.close the broker answers with (skipping anything before it)."""
    _, close = client.recv_until(spec.Connection.Close)
    return close


@pytest.fixture
def no_tracebacks(caplog):
    """Fails the test if the broker logged a traceback or an internal error."""
    caplog.set_level(logging.INFO)
    yield
    bad = [r for r in caplog.records if r.exc_info or "internal error" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


def still_serves(broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    conn.channel().queue_declare("", exclusive=True)
    conn.close()


# ---------------------------------------------------------------- nested field tables

# a queue.declare / exchange.declare / ... whose table argument is ``table``
TABLE_METHODS = {
    "queue.declare": lambda t: method_frame(1, 50, 10, b"\0\0" + shortstr("nested") + b"\0" + t),
    "exchange.declare": lambda t: method_frame(1, 40, 10, b"\0\0" + shortstr("nested")
                                               + shortstr("direct") + b"\0" + t),
    "queue.bind": lambda t: method_frame(1, 50, 20, b"\0\0" + shortstr("q") + shortstr("amq.direct")
                                         + shortstr("k") + b"\0" + t),
    "queue.unbind": lambda t: method_frame(1, 50, 50, b"\0\0" + shortstr("q")
                                           + shortstr("amq.direct") + shortstr("k") + t),
    "exchange.bind": lambda t: method_frame(1, 40, 30, b"\0\0" + shortstr("amq.topic")
                                            + shortstr("amq.direct") + shortstr("k") + b"\0" + t),
    "basic.consume": lambda t: method_frame(1, 60, 20, b"\0\0" + shortstr("q") + shortstr("c")
                                            + b"\0" + t),
}


@pytest.mark.leveret_only  # RabbitMQ 3.10 takes any depth; Leveret bounds it (methods.py)
@pytest.mark.parametrize("method", list(TABLE_METHODS))
@pytest.mark.parametrize("depth", [65, 2000])
def test_tables_nested_too_deep_are_a_frame_error(broker, no_tracebacks, method, depth):
    client = opened(broker)
    client.send(TABLE_METHODS[method](nested_table(depth)))
    close = close_reply(client)
    assert close.reply_code == 501
    assert "nested too deep" in close.reply_text
    client.close()
    still_serves(broker)


@pytest.mark.leveret_only
@pytest.mark.parametrize("depth", [65, 500])
def test_nested_client_properties_are_refused_before_authentication(broker, no_tracebacks,
                                                                    depth):
    client = RawClient(broker.host, broker.port)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    client.send(start_ok(nested_table(depth)))
    close = close_reply(client)
    assert close.reply_code == 501 and "nested too deep" in close.reply_text
    client.close()
    still_serves(broker)


@pytest.mark.leveret_only
def test_nested_amqplain_response_is_a_refused_login(broker, no_tracebacks):
    client = RawClient(broker.host, broker.port)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    # LOGIN's value is a table nested past the limit: no user name can come of it
    response = shortstr("LOGIN") + b"F" + nested_table(100)
    props = encode.field_table({"capabilities": {"authentication_failure_close": True}})
    client.send(start_ok(props, "AMQPLAIN", response))
    close = close_reply(client)
    assert close.reply_code == 403
    client.close()
    still_serves(broker)


def test_tables_nested_to_the_limit_are_taken(broker):
    # 64 tables in all, the arguments table included: the depth message headers may have too
    client = opened(broker)
    client.send(TABLE_METHODS["queue.declare"](nested_table(64)))
    _, ok = client.recv_until(spec.Queue.DeclareOk)
    assert ok.queue == "nested"
    client.send_method(1, spec.Queue.Delete(queue="nested"))
    client.recv_until(spec.Queue.DeleteOk)
    client.close()


def test_frames_before_tune_ok_are_at_most_4096_bytes(broker):
    """RabbitMQ takes frames of at most 4096 bytes until connection.tune-ok (rabbit_reader:
    frame_too_large); a bigger start-ok is refused before anything of it is decoded."""
    client = RawClient(broker.host, broker.port)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    pad = b"S" + struct.pack(">I", 5000) + b"x" * 5000
    client.send(start_ok(struct.pack(">I", 4 + len(pad)) + shortstr("pad") + pad))
    replies = []
    try:
        while True:
            replies.append(client.recv_frame()[1])
    except (EOFError, ConnectionResetError):
        pass
    # RabbitMQ closes the socket without a word; Leveret sends 501 first
    assert not any(isinstance(r, spec.Connection.Tune) for r in replies)
    assert all(isinstance(r, spec.Connection.Close) and r.reply_code == 501 for r in replies)
    client.close()


def test_bytes_after_a_methods_arguments_are_a_frame_error(broker, no_tracebacks):
    client = opened(broker)
    args = pframe.marshal(spec.Queue.Declare(queue="trailing", auto_delete=True), 1)[11:-1]
    client.send(method_frame(1, 50, 10, args + b"\x00"))
    close = close_reply(client)
    assert close.reply_code == 501 and "cannot decode" in close.reply_text
    client.close()


# ---------------------------------------------------------------- content headers


@pytest.mark.leveret_only  # RabbitMQ 3.10 answers 541 INTERNAL_ERROR
@pytest.mark.parametrize("props", [b"\x00\x00JUNK", b"\x80\x00\x04textJU",
                                   b"\x01\x00\x0560000JUNK"],
                         ids=["no properties", "content-type", "expiration"])
def test_bytes_after_the_property_list_are_a_frame_error(broker, no_tracebacks, props):
    client = opened(broker)
    client.send_method(1, spec.Queue.Declare(queue="after-props"))
    client.recv_until(spec.Queue.DeclareOk)
    client.send_method(1, spec.Basic.Publish(exchange="", routing_key="after-props"))
    header = struct.pack(">HHQ", 60, 0, 1) + props
    client.send(struct.pack(">BHI", 2, 1, len(header)) + header + b"\xce"
                + struct.pack(">BHI", 3, 1, 1) + b"x\xce")
    close = close_reply(client)
    assert close.reply_code == 501 and "after its property list" in close.reply_text
    client.close()
    # nothing of it reached the queue
    assert broker.queue("after-props").messages == 0


# ---------------------------------------------------------------- names

NAMES = ["f{", "ключ", "a b", "tab\there", "nul\x00x", "*#[]{}()'\"\\", "é" * 127 + "x"]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_any_utf8_name_up_to_255_bytes_in_every_method(broker, no_tracebacks, name):
    """RabbitMQ takes any UTF-8 queue or exchange name of up to 255 bytes; pamqp's own
    validation (``[a-zA-Z0-9-_.:@#,/+ ]*``) must not decide for the broker."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.exchange_declare(name, "topic")
    ok = ch.queue_declare(name)
    assert ok.method.queue == name
    ch.queue_bind(name, name, routing_key=name)
    ch.exchange_bind(name, name, routing_key="other")
    ch.exchange_unbind(name, name, routing_key="other")
    ch.confirm_delivery()
    ch.basic_publish(name, name, b"via the exchange", mandatory=True)
    ch.basic_publish("", name, b"via the default exchange", mandatory=True)
    method, _props, body = ch.basic_get(name, auto_ack=True)
    assert (method.exchange, method.routing_key, body) == (name, name, b"via the exchange")
    got = []
    tag = ch.basic_consume(name, lambda c, m, p, b: got.append((m.consumer_tag, m.routing_key)),
                           auto_ack=True, consumer_tag=name)
    while not got:
        conn.process_data_events(time_limit=1)
    assert got == [(name, name)]
    ch.basic_cancel(tag)
    assert ch.queue_declare(name, passive=True).method.queue == name
    ch.queue_unbind(name, name, routing_key=name)
    ch.queue_purge(name)
    ch.queue_delete(name)
    ch.exchange_delete(name)
    conn.close()


@pytest.mark.leveret_only
def test_odd_durable_names_come_back_after_a_restart(tmp_path):
    names = ["ключ", "f{", "é" * 127 + "x"]
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.confirm_delivery()
        for name in names:
            ch.exchange_declare(name, "direct", durable=True)
            ch.queue_declare(name, durable=True)
            ch.queue_bind(name, name, routing_key=name)
            ch.basic_publish(name, name, name.encode(),
                             pika.BasicProperties(delivery_mode=2))
        conn.close()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        for name in names:
            ch.exchange_declare(name, "direct", passive=True)
            method, _props, body = ch.basic_get(name, auto_ack=True)
            assert (method.routing_key, body) == (name, name.encode())
        conn.close()

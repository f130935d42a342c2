"""Sender-selected distribution: the CC and BCC headers (rabbitmq.com/docs/sender-selected),
end to end with pika. Every test but the restart one also passes against RabbitMQ 3.10
(``LEVERET_TEST_TARGET=rabbitmq``)."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest
from pika.compat import long

from leveret import Broker

# one value of each field type as it goes on the wire, with the name RabbitMQ 3.10 gives it
WIRE_VALUES = [
    (b"t\x01", "bool"), (b"b\x01", "byte"), (b"B\x01", "unsignedbyte"),
    (b"s\x00\x01", "short"), (b"u\x00\x01", "unsignedshort"), (b"I\x00\x00\x00\x01", "signedint"),
    (b"i\x00\x00\x00\x01", "unsignedint"), (b"l" + bytes(8), "long"), (b"L" + bytes(8), "long"),
    (b"f" + bytes(4), "float"), (b"d" + bytes(8), "double"), (b"D" + bytes(5), "decimal"),
    (b"T" + bytes(8), "timestamp"), (b"V", "void"), (b"x\x00\x00\x00\x00", "binary"),
    (b"F\x00\x00\x00\x00", "table"), (b"S\x00\x00\x00\x01k", "longstr"),
]


@contextlib.contextmanager
def closed_with(code: int, text: str | None = None) -> Iterator[None]:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        yield
    assert info.value.reply_code == code, info.value
    if text is not None:
        assert info.value.reply_text == text


def get_all(ch, queue: str) -> list[tuple[bytes, str, dict | None]]:
    """(body, delivery routing key, headers) of every ready message, acked."""
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.routing_key, props.headers))


def bodies(ch, queue: str) -> list[bytes]:
    return [body for body, _, _ in get_all(ch, queue)]


def queues(ch, *names: str) -> None:
    for name in names:
        ch.queue_delete(name)
        ch.queue_declare(name)


def headers(**values) -> pika.BasicProperties:
    return pika.BasicProperties(headers=values)


def typed(value):
    """A header value with its decoded type, so a long and an int differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def test_direct_exchange_routes_by_cc_and_bcc(channel):
    queues(channel, "ss-a", "ss-b", "ss-c", "ss-d")
    channel.exchange_declare("ss-direct", "direct")
    for q, key in (("ss-a", "ka"), ("ss-b", "kb"), ("ss-c", "kc"), ("ss-d", "kd")):
        channel.queue_bind(q, "ss-direct", key)
    channel.basic_publish("ss-direct", "ka", b"m", headers(CC=["kb"], BCC=["kc"], other="x"))
    seen = {q: get_all(channel, q) for q in ("ss-a", "ss-b", "ss-c", "ss-d")}
    # every copy keeps the publish routing key and CC, and nobody sees BCC
    copy = (b"m", "ka", {"CC": ["kb"], "other": "x"})
    assert seen == {"ss-a": [copy], "ss-b": [copy], "ss-c": [copy], "ss-d": []}


def test_topic_exchange_matches_every_key(channel):
    queues(channel, "ss-t1", "ss-t2", "ss-t3")
    channel.exchange_declare("ss-topic", "topic")
    channel.queue_bind("ss-t1", "ss-topic", "orders.*")
    channel.queue_bind("ss-t2", "ss-topic", "#.eu")
    channel.queue_bind("ss-t3", "ss-topic", "audit.#")
    channel.basic_publish("ss-topic", "nothing", b"t",
                          headers(CC=["orders.new", "x.eu"], BCC=["audit.log"]))
    assert [bodies(channel, q) for q in ("ss-t1", "ss-t2", "ss-t3")] == [[b"t"], [b"t"], [b"t"]]


def test_default_exchange_takes_each_key_as_a_queue_name(channel):
    queues(channel, "ss-q1", "ss-q2", "ss-q3")
    channel.basic_publish("", "ss-q1", b"d", headers(CC=["ss-q2", "no-such-queue"], BCC=["ss-q3"]))
    got = [get_all(channel, q) for q in ("ss-q1", "ss-q2", "ss-q3")]
    assert got == [[(b"d", "ss-q1", {"CC": ["ss-q2", "no-such-queue"]})]] * 3


def test_each_queue_gets_the_message_once(channel):
    queues(channel, "ss-once", "ss-twice")
    channel.exchange_declare("ss-dup", "direct")
    channel.queue_bind("ss-once", "ss-dup", "k1")
    channel.queue_bind("ss-once", "ss-dup", "k2")
    channel.queue_bind("ss-twice", "ss-dup", "k3")
    channel.basic_publish("ss-dup", "k1", b"1", headers(CC=["k1", "k2", "k2", "k3"], BCC=["k3"]))
    assert (bodies(channel, "ss-once"), bodies(channel, "ss-twice")) == ([b"1"], [b"1"])


def test_bcc_is_not_seen_by_a_consumer(connection):
    ch = connection.channel()
    queues(ch, "ss-consumed")
    ch.basic_publish("", "ss-other", b"only-bcc", headers(BCC=["ss-consumed"]))
    ch.basic_publish("", "ss-other", b"with-more", pika.BasicProperties(
        headers={"BCC": ["ss-consumed"], "n": long(7), "i": 7, "flag": True},
        correlation_id="c", priority=3))
    got = []
    ch.basic_consume("ss-consumed", lambda c, m, p, b: got.append((b, m.routing_key, p)),
                     auto_ack=True)
    while len(got) < 2:
        connection.process_data_events(time_limit=1)
    (b1, rk1, p1), (b2, rk2, p2) = got
    # BCC was the only header: the table stays, empty (RabbitMQ 3.10 does the same)
    assert (b1, rk1, p1.headers) == (b"only-bcc", "ss-other", {})
    # the other headers keep their wire types, the other properties stay
    assert (b2, rk2, typed(p2.headers), p2.correlation_id, p2.priority) == (
        b"with-more", "ss-other",
        {"n": ("long", 7), "i": ("int", 7), "flag": ("bool", True)}, "c", 3)


def test_members_that_are_not_long_strings_are_ignored(channel):
    queues(channel, "ss-s1", "ss-s2")
    channel.basic_publish("", "ss-s1", b"m", headers(CC=[5, b"ss-s2", {"a": "ss-s2"}]))
    assert (bodies(channel, "ss-s1"), bodies(channel, "ss-s2")) == ([b"m"], [])


@pytest.mark.parametrize(("header", "value", "type_name"), [
    ("CC", "ss-s1", "longstr"),
    ("BCC", 5, "signedint"),
    ("CC", {"k": "v"}, "table"),
    ("CC", None, "void"),
    ("BCC", True, "bool"),
    ("CC", b"bin", "binary"),
])
def test_a_value_that_is_not_an_array_refuses_the_publish(connection, header, value, type_name):
    ch = connection.channel()
    ch.queue_declare("ss-s1")
    ch.basic_publish("", "ss-s1", b"bad", headers(**{header: value}))
    with closed_with(406, "PRECONDITION_FAILED - invalid message: "
                          f'{{unacceptable_type_in_header,"{header}",{type_name}}}'):
        ch.queue_declare("ss-s1", passive=True)
    assert connection.channel().queue_declare("ss-s1", passive=True).method.message_count == 0


def test_cc_is_checked_before_bcc_and_after_the_exchange(connection):
    ch = connection.channel()
    ch.basic_publish("ss-missing", "k", b"x", headers(BCC=5, CC="k"))
    with closed_with(404):
        ch.queue_declare("ss-any")
    ch = connection.channel()
    ch.basic_publish("amq.direct", "k", b"x", headers(BCC=5, CC="k"))
    with closed_with(406, "PRECONDITION_FAILED - invalid message: "
                          '{unacceptable_type_in_header,"CC",longstr}'):
        ch.queue_declare("ss-any")


def test_mandatory_counts_a_message_routed_only_by_cc_or_bcc(connection):
    ch = connection.channel()
    queues(ch, "ss-m")
    ch.exchange_declare("ss-mand", "direct")
    ch.queue_bind("ss-m", "ss-mand", "bound")
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((b, m.routing_key, p.headers)))
    ch.confirm_delivery()
    ch.basic_publish("ss-mand", "unbound", b"cc", headers(CC=["bound"]), mandatory=True)
    ch.basic_publish("ss-mand", "unbound", b"bcc", headers(BCC=["bound"]), mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("ss-mand", "unbound", b"lost", headers(CC=["no"], BCC=["nope"]),
                         mandatory=True)
    connection.process_data_events(time_limit=0)
    assert bodies(ch, "ss-m") == [b"cc", b"bcc"]
    # the return carries the publish routing key, and no BCC
    assert returned == [(b"lost", "unbound", {"CC": ["no"]})]


def test_fanout_and_headers_exchanges_ignore_the_keys(channel):
    queues(channel, "ss-f", "ss-h", "ss-k")
    channel.exchange_declare("ss-fan", "fanout")
    channel.exchange_declare("ss-hdr", "headers")
    channel.queue_bind("ss-f", "ss-fan")
    channel.queue_bind("ss-h", "ss-hdr", arguments={"x-match": "all", "kind": "a"})
    channel.basic_publish("ss-fan", "", b"f", headers(CC=["ss-k"]))
    channel.basic_publish("ss-hdr", "", b"h", headers(kind="a", BCC=["ss-k"]))
    channel.basic_publish("ss-hdr", "", b"not", headers(kind="b", CC=["ss-k"]))
    assert [bodies(channel, q) for q in ("ss-f", "ss-h", "ss-k")] == [[b"f"], [b"h"], []]


def test_keys_follow_exchange_bindings_and_alternate_exchanges(channel):
    queues(channel, "ss-e1", "ss-e2", "ss-ae")
    for name in ("ss-front", "ss-back", "ss-alt"):
        channel.exchange_delete(name)
    channel.exchange_declare("ss-alt", "direct")
    channel.exchange_declare("ss-front", "direct", arguments={"alternate-exchange": "ss-alt"})
    channel.exchange_declare("ss-back", "direct")
    channel.exchange_bind("ss-back", "ss-front", "to-back")
    channel.queue_bind("ss-e1", "ss-back", "k1")
    channel.queue_bind("ss-e2", "ss-back", "k2")
    channel.queue_bind("ss-ae", "ss-alt", "k3")
    # front routes by to-back; back then routes by every key
    channel.basic_publish("ss-front", "to-back", b"e2e", headers(CC=["k1"], BCC=["k2"]))
    # front routes nowhere: the alternate exchange gets the message with all its keys
    channel.basic_publish("ss-front", "unbound", b"ae", headers(CC=["k3"]))
    # front routes to back, which routes nowhere: no alternate exchange
    channel.basic_publish("ss-front", "to-back", b"dropped", headers(CC=["k3"]))
    assert [bodies(channel, q) for q in ("ss-e1", "ss-e2", "ss-ae")] == [
        [b"e2e"], [b"e2e"], [b"ae"]]


def _wait_get(connection, ch, queue: str):
    for _ in range(200):
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        connection.process_data_events(time_limit=0.05)
    raise AssertionError(f"nothing arrived in {queue}")


def test_dead_letters_are_routed_by_cc_and_bcc_too(connection):
    ch = connection.channel()
    queues(ch, "ss-d1", "ss-d2", "ss-d3")
    ch.exchange_delete("ss-dlx")
    ch.exchange_declare("ss-dlx", "direct")
    for q, key in (("ss-d1", "src-key"), ("ss-d2", "cc-key"), ("ss-d3", "bcc-key")):
        ch.queue_bind(q, "ss-dlx", key)
    ch.queue_delete("ss-src")
    ch.queue_declare("ss-src", arguments={"x-dead-letter-exchange": "ss-dlx"})
    ch.exchange_delete("ss-in")
    ch.exchange_declare("ss-in", "direct")
    ch.queue_bind("ss-src", "ss-in", "src-key")
    ch.basic_publish("ss-in", "src-key", b"dl", headers(CC=["cc-key"], BCC=["bcc-key"]))
    method, _, _ = ch.basic_get("ss-src")
    ch.basic_reject(method.delivery_tag, requeue=False)
    for q in ("ss-d1", "ss-d2", "ss-d3"):
        method, props, body = _wait_get(connection, ch, q)
        assert (body, method.exchange, method.routing_key, props.headers["CC"]) == (
            b"dl", "ss-dlx", "src-key", ["cc-key"])
        # x-death names the routing key and the CC keys, not the BCC ones
        assert props.headers["x-death"][0]["routing-keys"] == ["src-key", "cc-key"]
        assert "BCC" not in props.headers


def test_dead_letter_routing_key_replaces_cc_and_bcc(connection):
    ch = connection.channel()
    queues(ch, "ss-r1", "ss-r2", "ss-r3")
    ch.exchange_delete("ss-dlx2")
    ch.exchange_declare("ss-dlx2", "direct")
    for q, key in (("ss-r1", "fixed"), ("ss-r2", "cc-key"), ("ss-r3", "bcc-key")):
        ch.queue_bind(q, "ss-dlx2", key)
    ch.queue_delete("ss-src2")
    ch.queue_declare("ss-src2", arguments={"x-dead-letter-exchange": "ss-dlx2",
                                           "x-dead-letter-routing-key": "fixed"})
    ch.basic_publish("", "ss-src2", b"dl", headers(CC=["cc-key"], BCC=["bcc-key"]))
    method, _, _ = ch.basic_get("ss-src2")
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, _ = _wait_get(connection, ch, "ss-r1")
    assert method.routing_key == "fixed"
    assert "CC" not in props.headers
    assert props.headers["x-death"][0]["routing-keys"] == ["ss-src2", "cc-key"]
    assert (bodies(ch, "ss-r2"), bodies(ch, "ss-r3")) == ([], [])


def test_transactions_and_confirms_route_by_cc(connection):
    ch = connection.channel()
    queues(ch, "ss-x1", "ss-x2")
    ch.tx_select()
    ch.basic_publish("", "ss-x1", b"tx", headers(BCC=["ss-x2"]))
    assert ch.queue_declare("ss-x2", passive=True).method.message_count == 0
    ch.tx_commit()
    confirmed = connection.channel()
    confirmed.confirm_delivery()
    confirmed.basic_publish("", "ss-x1", b"confirmed", headers(CC=["ss-x2"]))
    assert (bodies(ch, "ss-x1"), bodies(ch, "ss-x2")) == (
        [b"tx", b"confirmed"], [b"tx", b"confirmed"])


@pytest.mark.leveret_only
def test_persistent_message_with_bcc_has_none_after_restart(tmp_path):
    props = pika.BasicProperties(delivery_mode=2, headers={
        "BCC": ["ss-kept-2"], "CC": ["ss-kept-3"], "n": long(1), "b": b"\x00"})
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.confirm_delivery()
        for name in ("ss-kept-1", "ss-kept-2", "ss-kept-3"):
            ch.queue_declare(name, durable=True)
        ch.basic_publish("", "ss-kept-1", b"p", props)
        conn.close()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        for name in ("ss-kept-1", "ss-kept-2", "ss-kept-3"):
            method, got, body = ch.basic_get(name, auto_ack=True)
            assert (body, method.routing_key, got.delivery_mode) == (b"p", "ss-kept-1", 2)
            assert typed(got.headers) == {
                "CC": [("str", "ss-kept-3")], "n": ("long", 1), "b": ("bytes", b"\x00")}
        conn.close()


@pytest.mark.leveret_only
@pytest.mark.parametrize("where", ["restart", "paged-out"])
def test_dead_letters_of_a_stored_message_still_go_by_its_bcc_keys(tmp_path, where):
    """The BCC keys are out of the headers but kept with the message, as RabbitMQ keeps them:
    after a restart, or read back from disk past the memory budget, a dead letter without
    x-dead-letter-routing-key is routed by them too."""
    args = {"x-dead-letter-exchange": "ss-sdlx"}
    budget = 0 if where == "paged-out" else 128 << 20
    props = pika.BasicProperties(delivery_mode=2, headers={"CC": ["cc-key"], "BCC": ["bcc-key"]})
    with Broker.in_thread(data_dir=str(tmp_path), memory_budget=budget) as broker:
        ch = pika.BlockingConnection(pika.URLParameters(broker.url)).channel()
        ch.confirm_delivery()
        ch.exchange_declare("ss-sdlx", "direct", durable=True)
        for q, key in (("ss-s-rk", "ss-stored"), ("ss-s-cc", "cc-key"), ("ss-s-bcc", "bcc-key")):
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, "ss-sdlx", key)
        ch.queue_declare("ss-stored", durable=True, arguments=args)
        for i in range(3):  # with a budget of 0, all but the first wait on disk
            ch.basic_publish("", "ss-stored", b"m%d" % i, props)
        if where == "paged-out":
            assert broker.queue("ss-stored").messages_ram < 3
            dead_letter_all(ch, "ss-stored")
    if where == "restart":
        with Broker.in_thread(data_dir=str(tmp_path)) as broker:
            ch = pika.BlockingConnection(pika.URLParameters(broker.url)).channel()
            dead_letter_all(ch, "ss-stored")
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = pika.BlockingConnection(pika.URLParameters(broker.url)).channel()
        for q in ("ss-s-rk", "ss-s-cc", "ss-s-bcc"):
            got = get_all(ch, q)
            assert [body for body, _, _ in got] == [b"m0", b"m1", b"m2"], q
            assert all("BCC" not in h and h["CC"] == ["cc-key"] for _, _, h in got)


def dead_letter_all(ch, queue: str) -> None:
    while True:
        method, _, _ = ch.basic_get(queue)
        if method is None:
            return
        ch.basic_reject(method.delivery_tag, requeue=False)


def raw_client(broker):
    from rawamqp import RawClient

    vhost = getattr(broker, "vhost", "/")
    client = RawClient(broker.host, broker.port)
    client.handshake(vhost=vhost if isinstance(vhost, str) else "/")
    client.open_channel(1)
    return client


def publish_raw(client, routing_key: str, header_table: bytes, extra_props: bytes = b"") -> None:
    """basic.publish to the default exchange with the given header table entries (wire form);
    ``extra_props`` follow the headers (flags 0x2000 | those of extra_props' properties)."""
    from pamqp import commands as spec

    client.send_method(1, spec.Basic.Publish(exchange="", routing_key=routing_key))
    flags = 0x2000 | (0x0400 if extra_props else 0)  # headers (+ correlation-id)
    props = struct.pack(">HI", flags, len(header_table)) + header_table + extra_props
    payload = struct.pack(">HHQ", 60, 0, 0) + props
    client.send(struct.pack(">BHI", 2, 1, len(payload)) + payload + b"\xce")


@pytest.mark.parametrize(("value", "type_name"), WIRE_VALUES, ids=[n for _, n in WIRE_VALUES])
@pytest.mark.parametrize("header", ["CC", "BCC"])
def test_every_field_type_names_itself_in_the_error(broker, header, value, type_name):
    from pamqp import commands as spec

    client = raw_client(broker)
    publish_raw(client, "ss-raw", bytes((len(header),)) + header.encode() + value)
    _, close = client.recv_until(spec.Channel.Close)
    assert (close.reply_code, close.reply_text) == (
        406, f'PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,"{header}",'
             f'{type_name}}}')
    client.close()


def test_removing_bcc_leaves_every_other_header_byte_as_it_was(broker):
    from pamqp import commands as spec

    client = raw_client(broker)
    client.send_method(1, spec.Queue.Declare(queue="ss-raw-bytes"))
    client.recv_until(spec.Queue.DeclareOk)
    values = [b"b\xff", b"l" + bytes(7) + b"\x05", b"x\x00\x00\x00\x01z", b"u\x00\x07",
              b"L" + bytes(8), b"A\x00\x00\x00\x0bt\x01L" + bytes(7) + b"\x02",
              b"F\x00\x00\x00\x0b\x01nL" + bytes(7) + b"\x03"]
    entries = [b"\x02k" + value[:1] + value for value in values]
    bcc = b"\x03BCC" + b"A\x00\x00\x00\x06S\x00\x00\x00\x01q"
    correlation = b"\x04corr"
    publish_raw(client, "ss-raw-bytes", b"".join(entries[:2]) + bcc + b"".join(entries[2:]),
                correlation)
    client.send_method(1, spec.Basic.Get(queue="ss-raw-bytes", no_ack=True))
    while True:  # get-ok, then the content header: its properties exactly as sent, but BCC
        kind, payload = raw_frame(client)
        if kind == 2:
            break
    # but RabbitMQ 3.10 reads an unsigned 64-bit "L" as a long and writes it back as "l"
    # (in a table or an array too)
    kept = b"".join(entries[:4]) + b"".join(
        b"\x02k" + value[:1] + value.replace(b"L\x00", b"l\x00") for value in values[4:])
    assert payload[12:] == struct.pack(">HI", 0x2400, len(kept)) + kept + correlation
    client.close()


def raw_frame(client) -> tuple[int, bytes]:
    """The next frame's type and payload, straight from the socket."""
    while True:
        if len(client.buf) >= 7:
            kind, _, size = struct.unpack_from(">BHI", client.buf)
            if len(client.buf) >= size + 8:
                payload = client.buf[7 : 7 + size]
                client.buf = client.buf[size + 8 :]
                return kind, payload
        chunk = client.sock.recv(65536)
        if not chunk:
            raise EOFError
        client.buf += chunk

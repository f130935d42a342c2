"""The read side of a connection: a buffer that starts small, grows with the traffic and
shrinks back, and a read budget that makes a busy connection yield to the others.

Messages of every size, sent in one burst or a byte at a time, must arrive whole whatever the
buffer did meanwhile; an idle connection keeps only a few KiB.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time

import aio_pika
import pika
import pytest
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

from rawamqp import RawClient

# sizes around the buffer's steps (4 KiB doubling to 64 KiB), a frame (128 KiB), and past both
SIZES = [0, 1, 4000, 4096, 4097, 8200, 30000, 65535, 65536, 70000, 131064, 131073, 300000]


def _publish_frames(routing_key: str, body: bytes, frame_max: int = 131072,
                    headers: dict[str, object] | None = None) -> bytes:
    out = pframe.marshal(spec.Basic.Publish(exchange="", routing_key=routing_key), 1)
    out += pframe.marshal(pheader.ContentHeader(0, len(body),
                                                spec.Basic.Properties(headers=headers)), 1)
    chunk = frame_max - 8
    for off in range(0, len(body), chunk):
        out += pframe.marshal(pbody.ContentBody(body[off : off + chunk]), 1)
    return out


def _body(size: int, seed: int) -> bytes:
    block = hashlib.sha256(f"{seed}".encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _drain(broker, queue: str, count: int) -> list[bytes]:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    got: list[bytes] = []
    for _ in range(count):
        for _method, _props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=10):
            assert body is not None, f"only {len(got)} of {count} messages arrived"
            got.append(body)
            break
    ch.cancel()
    conn.close()
    return got


def _raw_publisher(broker, queue: str) -> RawClient:
    client = RawClient(broker.host, broker.port)
    client.handshake(vhost=pika.URLParameters(broker.url).virtual_host)
    client.open_channel(1)
    client.send_method(1, spec.Queue.Declare(queue=queue))
    client.recv_until(spec.Queue.DeclareOk)
    return client


def test_messages_of_every_size_in_one_burst(broker):
    queue = "read-buffer-burst"
    client = _raw_publisher(broker, queue)
    bodies = [_body(size, i) for i, size in enumerate(SIZES * 2)]
    client.send(b"".join(_publish_frames(queue, b) for b in bodies))
    assert _drain(broker, queue, len(bodies)) == bodies
    client.close()


def test_messages_trickled_in_odd_pieces(broker):
    # writes that end anywhere inside a frame: every partial-frame path of the buffer
    queue = "read-buffer-trickle"
    client = _raw_publisher(broker, queue)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bodies = [_body(size, i) for i, size in enumerate([0, 5, 4100, 70000, 131073, 3])]
    data = b"".join(_publish_frames(queue, b) for b in bodies)
    pieces = [1, 2, 3, 7, 4093, 1, 65536, 9000, 131072]
    pos = i = 0
    while pos < len(data):
        n = pieces[i % len(pieces)]
        client.send(data[pos : pos + n])
        pos += n
        i += 1
    assert _drain(broker, queue, len(bodies)) == bodies
    client.close()


def _reading_in_place(broker) -> bool:
    """Is a connection of the (embedded) broker reading a body frame's payload in place?"""
    server = broker.broker._server
    return broker._call(lambda: any(c._body is not None for c in server.connections))


def _await_in_place(broker) -> None:
    deadline = time.monotonic() + 10
    while not _reading_in_place(broker):
        assert time.monotonic() < deadline, "the broker never read the body in place"
        time.sleep(0.01)


def _body_frame_parts(routing_key: str, body: bytes) -> tuple[bytes, bytes]:
    """A publish of one body frame, as (everything up to its payload, the payload + 0xCE)."""
    whole = _publish_frames(routing_key, body)
    cut = len(whole) - len(body) - 1
    return whole[:cut], whole[cut:]


@pytest.mark.leveret_only
@pytest.mark.parametrize("first", [0, 1000, 40000, 70000], ids=lambda n: f"{n}-first")
def test_a_large_body_is_read_in_place_whole(broker, first):
    """A body frame of 32 KiB or more whose payload has not all arrived is read straight into
    the message; the bytes already read (none, some, all but the frame-end octet) go first."""
    queue = f"read-in-place-{first}"
    client = _raw_publisher(broker, queue)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = _body(70000, first)
    head, rest = _body_frame_parts(queue, body)
    client.send(head + rest[:first])
    _await_in_place(broker)
    for off in range(first, len(rest), 9000):  # the rest in pieces, the frame end last
        client.send(rest[off : off + 9000])
    tail = _body(5, 99)
    client.send(_publish_frames(queue, tail))
    assert _drain(broker, queue, 2) == [body, tail]
    assert not _reading_in_place(broker)
    client.close()


@pytest.mark.leveret_only
def test_a_run_of_large_bodies_is_read_in_place_one_after_another(broker, monkeypatch):
    """After a body read in place, the next read is offered only enough for the next publish's
    frames up to its body (connection._DIRECT_PEEK), so the bodies of a run of large messages
    are each read in place, not mostly into the read buffer and copied from there (which is
    what became of 25 of 60 such bodies before). A header table larger than that offer and
    small messages in between are read as ever, and everything arrives whole and in order."""
    from leveret import frames

    in_place: list[int] = []
    real = frames.body_buffer

    def counting(size: int, extra: int = 0):
        in_place.append(size)
        return real(size, extra)

    monkeypatch.setattr(frames, "body_buffer", counting)
    queue = "read-in-place-run"
    client = _raw_publisher(broker, queue)
    large = [_body(40000, i) for i in range(60)]
    small = [_body(n, 100 + n) for n in (0, 10, 3000)]
    wide = {f"h{i}": "v" * 40 for i in range(40)}  # a content header frame of ~2 KiB
    data = b"".join(_publish_frames(queue, b) for b in large[:30])
    data += _publish_frames(queue, large[30], headers=wide)
    data += b"".join(_publish_frames(queue, b) for b in small)
    data += b"".join(_publish_frames(queue, b) for b in large[31:])
    client.send(data)
    expected = large[:31] + small + large[31:]
    assert _drain(broker, queue, len(expected)) == expected
    assert len(in_place) >= 55, f"only {len(in_place)} of 60 large bodies read in place"
    assert set(in_place) == {40000}
    client.close()


@pytest.mark.leveret_only
def test_a_body_read_in_place_with_a_bad_frame_end_is_a_frame_error(broker):
    queue = "read-in-place-bad-end"
    client = _raw_publisher(broker, queue)
    body = _body(50000, 7)
    head, rest = _body_frame_parts(queue, body)
    client.send(head + rest[:100])
    _await_in_place(broker)
    client.send(rest[100:-1] + b"\x00")  # the payload, then not 0xCE
    _, close = client.recv_until(spec.Connection.Close)
    assert close.reply_code == 501 and "frame end" in close.reply_text
    client.close()


@pytest.mark.leveret_only
async def test_idle_connection_keeps_a_small_read_buffer(abroker):
    server = abroker._server
    # a connection that has only said hello (not even authenticated)
    reader, writer = await asyncio.open_connection(abroker.host, abroker.port)
    writer.write(b"AMQP\x00\x00\x09\x01")
    await reader.read(1)  # connection.start has arrived
    (pre_auth,) = list(server.connections)
    assert len(pre_auth.buf) <= 4096

    conn = await aio_pika.connect(abroker.url)
    ch = await conn.channel()
    queue = await ch.declare_queue("read-buffer-idle", auto_delete=True)
    big = b"x" * 1_000_000
    for _ in range(4):
        await ch.default_exchange.publish(aio_pika.Message(big), routing_key=queue.name)
    publisher = next(c for c in server.connections if c is not pre_auth)
    # two round trips after the burst: the second arrives alone, a small read
    for _ in range(2):
        await ch.declare_queue(queue.name, passive=True)
    assert len(publisher.buf) <= 4096
    await conn.close()
    writer.close()
    await writer.wait_closed()

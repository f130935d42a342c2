"""The frame codec, compiled and pure, against pamqp as the oracle and against each other.

Every test that takes ``codec`` runs once per implementation (``c`` and ``py``); tests that
compare the twins run both on the same input. Malformed input must come back as an EV_ERROR
event with the reply code RabbitMQ 3.10 answers (checked against a live RabbitMQ), never as an
exception, a crash or a hang.
"""

from __future__ import annotations

import datetime
import decimal
import os
import struct
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import decode as pdecode
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

from leveret import _frames_common as K
from leveret import _frames_py

from _impls import implementations

IMPLS = implementations("leveret._frames_c", "leveret._frames_py")
FAST = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FRAME_MAX = 131072


@pytest.fixture(params=IMPLS, scope="module")
def codec(request: pytest.FixtureRequest) -> ModuleType:
    return request.param


def both() -> list[ModuleType]:
    """The twins to compare: compiled (when built) and pure."""
    try:
        import leveret._frames_c as c
    except ImportError:
        return [_frames_py]
    return [c, _frames_py]


# ---------------------------------------------------------------- wire helpers


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def wire_frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"


def header_frame(channel: int, raw_props: bytes, body_size: int = 0) -> bytes:
    return wire_frame(2, channel, struct.pack(">HHQ", 60, 0, body_size) + raw_props)


def method_frame(channel: int, class_id: int, method_id: int, args: bytes) -> bytes:
    return wire_frame(1, channel, struct.pack(">HH", class_id, method_id) + args)


def frame_ends(raw: bytes) -> list[int]:
    """Offsets just past each frame of a well-formed stream."""
    ends, pos = [], 0
    while pos < len(raw):
        pos += 8 + struct.unpack_from(">I", raw, pos + 3)[0]
        ends.append(pos)
    return ends


def split(codec: ModuleType, raw: bytes, frame_max: int = FRAME_MAX) -> tuple[list, int]:
    return codec.split_frames(bytearray(raw), 0, len(raw), frame_max)


# ---------------------------------------------------------------- strategies

short_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
    lambda s: len(s.encode()) <= 255)
names = st.text(alphabet="abcdefghij.-_:", max_size=12)  # what pamqp accepts as a name
table_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
utc_seconds = st.datetimes(min_value=datetime.datetime(1970, 1, 2),
                           max_value=datetime.datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=datetime.timezone.utc))

# values pamqp itself encodes (t, I/l, f, S, V, T, D, x, A, F)
scalar_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, width=32),
    st.text(max_size=30),
    st.none(),
    utc_seconds,
    st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False),
    st.binary(max_size=10).map(bytearray),
)
field_values = st.recursive(
    scalar_values,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(table_keys, inner, max_size=4)),
    max_leaves=12,
)
tables = st.dictionaries(table_keys, field_values, max_size=5)

properties = st.fixed_dictionaries(
    {},
    optional={
        "content_type": short_text,
        "content_encoding": short_text,
        "headers": tables,
        "delivery_mode": st.sampled_from([1, 2]),
        "priority": st.integers(0, 255),
        "correlation_id": short_text,
        "reply_to": short_text,
        "expiration": st.integers(0, 10**9).map(str),
        "message_id": short_text,
        "timestamp": utc_seconds,
        "message_type": short_text,
        "user_id": short_text,
        "app_id": short_text,
        # cluster_id: deprecated, pamqp refuses to send it (decoding it is tested below)
    },
)


def _table_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(bytes((len(k.encode()),)) + k.encode() + v for k, v in entries)
    return u32(len(body)) + body


# every field type RabbitMQ sends, written by hand (pamqp cannot write b B s u i L d x):
# typed wire values, so the oracle is pamqp's *decoder*
typed_scalars = st.one_of(
    st.integers(0, 255).map(lambda v: b"t" + bytes((v,))),
    st.integers(-128, 127).map(lambda v: b"b" + struct.pack(">b", v)),
    st.integers(0, 255).map(lambda v: b"B" + bytes((v,))),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: b"s" + struct.pack(">h", v)),
    st.integers(0, 2**16 - 1).map(lambda v: b"u" + struct.pack(">H", v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: b"I" + struct.pack(">i", v)),
    st.integers(0, 2**32 - 1).map(lambda v: b"i" + struct.pack(">I", v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: b"l" + struct.pack(">q", v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: b"L" + struct.pack(">q", v)),
    st.floats(allow_nan=False, width=32).map(lambda v: b"f" + struct.pack(">f", v)),
    st.floats(allow_nan=False).map(lambda v: b"d" + struct.pack(">d", v)),
    st.tuples(st.integers(0, 255), st.integers(-(2**31), 2**31 - 1)).map(
        lambda v: b"D" + struct.pack(">Bi", *v)),
    st.binary(max_size=12).map(lambda v: b"S" + u32(len(v)) + v),  # not always UTF-8
    st.text(max_size=12).map(lambda v: b"S" + u32(len(v.encode())) + v.encode()),
    st.binary(max_size=12).map(lambda v: b"x" + u32(len(v)) + v),
    st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32, 253402300799999)).map(
        lambda v: b"T" + struct.pack(">Q", v)),  # seconds, or past 2106 milliseconds
    st.just(b"V"),
)
typed_values = st.recursive(
    typed_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda vs: b"A" + u32(len(b"".join(vs))) + b"".join(vs)),
        st.lists(st.tuples(table_keys, inner), max_size=4).map(lambda e: b"F" + _table_bytes(e)),
    ),
    max_leaves=16,
)
typed_tables = st.lists(st.tuples(table_keys, typed_values), max_size=6).map(_table_bytes)

channels = st.integers(1, 2047)
tags = st.integers(0, 2**63 - 1)  # pamqp encodes long-longs as signed

methods = st.one_of(
    st.builds(spec.Basic.Publish, exchange=names, routing_key=short_text,
              mandatory=st.booleans(), immediate=st.booleans()),
    st.builds(spec.Basic.Ack, delivery_tag=tags, multiple=st.booleans()),
    st.builds(spec.Basic.Nack, delivery_tag=tags, multiple=st.booleans(), requeue=st.booleans()),
    st.builds(spec.Basic.Reject, delivery_tag=tags, requeue=st.booleans()),
    # rare methods: passed through as EV_METHOD for pamqp
    st.builds(spec.Queue.Declare, queue=names, durable=st.booleans(), arguments=tables),
    st.builds(spec.Queue.Bind, queue=names, exchange=names, routing_key=short_text,
              arguments=tables),
    st.builds(spec.Exchange.Declare, exchange=names, exchange_type=st.sampled_from(
        ["direct", "topic", "fanout", "headers"]), arguments=tables),
    st.builds(spec.Basic.Consume, queue=names, consumer_tag=names, no_ack=st.booleans()),
    st.builds(spec.Basic.Qos, prefetch_count=st.integers(0, 65535), global_=st.booleans()),
    st.builds(spec.Basic.Cancel, consumer_tag=names),
    st.builds(spec.Basic.Get, queue=names, no_ack=st.booleans()),
    st.builds(spec.Channel.Close, reply_code=st.integers(200, 599), reply_text=short_text,
              class_id=st.integers(0, 90), method_id=st.integers(0, 120)),
    st.sampled_from([spec.Channel.Open(), spec.Confirm.Select(), spec.Tx.Select(),
                     spec.Basic.Recover(requeue=True)]),
)


@st.composite
def frame_streams(draw: st.DrawFn, max_body: int = 300) -> tuple[list, bytes]:
    """A list of (channel, pamqp frame object) and their bytes on the wire."""
    frames: list[tuple[int, object]] = []
    for _ in range(draw(st.integers(1, 6))):
        ch = draw(channels)
        kind = draw(st.sampled_from(["method", "content", "heartbeat"]))
        if kind == "method":
            frames.append((ch, draw(methods)))
        elif kind == "heartbeat":
            frames.append((0, pheartbeat.Heartbeat()))
        else:
            body = draw(st.binary(max_size=max_body))
            props = spec.Basic.Properties(**draw(properties))
            frames.append((ch, pheader.ContentHeader(0, len(body), props)))
            if body:
                frames.append((ch, pbody.ContentBody(body)))
    return frames, b"".join(marshal(ch, f) for ch, f in frames)


def marshal(channel: int, frame: object) -> bytes:
    if isinstance(frame, pheartbeat.Heartbeat):
        return frame.marshal()
    return pframe.marshal(frame, channel)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the oracle


def props_dict(p: spec.Basic.Properties, raw: bytes) -> dict:
    """pamqp's decoded properties as the dict ``decode_properties`` gives: the ones whose
    flag is set in ``raw`` (pamqp fills absent ones with None, or '' for cluster_id)."""
    flags = struct.unpack_from(">H", raw)[0]
    return {k: getattr(p, k) for i, k in enumerate(K.PROPERTY_NAMES) if flags & (1 << (15 - i))}


def check_event(codec: ModuleType, ev: tuple, channel: int, frame: object) -> None:
    """``ev`` must say what pamqp, decoding the same bytes, says ``frame`` is."""
    assert ev[1] == channel
    if isinstance(frame, spec.Basic.Publish):
        assert ev == (K.EV_PUBLISH, channel, frame.exchange, frame.routing_key,
                      frame.mandatory, frame.immediate)
    elif isinstance(frame, spec.Basic.Ack):
        assert ev == (K.EV_ACK, channel, frame.delivery_tag, frame.multiple)
    elif isinstance(frame, spec.Basic.Nack):
        assert ev == (K.EV_NACK, channel, frame.delivery_tag, frame.multiple, frame.requeue)
    elif isinstance(frame, spec.Basic.Reject):
        assert ev == (K.EV_REJECT, channel, frame.delivery_tag, frame.requeue)
    elif isinstance(frame, pheader.ContentHeader):
        assert ev[0] == K.EV_HEADER
        assert (ev[2], ev[3], ev[4]) == (60, frame.body_size, frame.properties.marshal())
        assert codec.decode_properties(ev[4]) == props_dict(frame.properties, ev[4])
        assert ev[5] == (frame.properties.delivery_mode or 0)
        assert ev[6] == (frame.properties.priority or 0)
        assert ev[7] == frame.properties.expiration
    elif isinstance(frame, pbody.ContentBody):
        assert ev == (K.EV_BODY, channel, frame.value)
    elif isinstance(frame, pheartbeat.Heartbeat):
        assert ev == (K.EV_HEARTBEAT, 0)
    else:
        assert ev[0] == K.EV_METHOD
        assert ev[2] == frame.index  # type: ignore[attr-defined]
        decoded = spec.INDEX_MAPPING[ev[2]]()
        decoded.unmarshal(ev[3])
        assert decoded.marshal() == frame.marshal()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- decoding valid frames


@FAST
@given(frame_streams())
def test_decode_matches_pamqp(codec, stream):
    frames, raw = stream
    events, consumed = split(codec, raw)
    assert consumed == len(raw)
    assert len(events) == len(frames)
    pos = 0
    for ev in events:
        used, pch, pf = pframe.unmarshal(raw[pos:])  # pamqp decodes the same bytes
        pos += used
        check_event(codec, ev, pch, pf)


@FAST
@given(typed_tables, channels)
def test_every_field_type_decodes_like_pamqp(codec, table, ch):
    """Headers with every field type RabbitMQ sends, nested, decode as pamqp decodes them."""
    _, expected = pdecode.field_table(table)
    raw = header_frame(ch, struct.pack(">H", 0x2000) + table)
    events, pos = split(codec, raw)
    assert pos == len(raw) and events[0][0] == K.EV_HEADER
    assert codec.decode_properties(events[0][4]) == {"headers": expected}


def test_rabbitmq_field_types_decode_to_python_types(codec):
    """What a consumer sees: ints, float, Decimal, bytes for non-UTF-8 'S', bytearray for 'x'."""
    entries = [("b", b"b\xff"), ("B", b"B\xff"), ("s", b"s\xff\xfe"), ("u", b"u\xff\xfe"),
               ("i", b"i\xff\xff\xff\xff"), ("L", b"L" + struct.pack(">q", -5)),
               ("d", b"d" + struct.pack(">d", 1.5)), ("x", b"x" + u32(2) + b"\x00\x01"),
               ("V", b"V"), ("D", b"D\x02" + struct.pack(">i", 12345)),
               ("S", b"S" + u32(2) + b"\xff\xfe"), ("T", b"T" + struct.pack(">Q", 86400)),
               ("Tms", b"T" + struct.pack(">Q", 4294967296123))]
    got = codec.decode_properties(struct.pack(">H", 0x2000) + _table_bytes(entries))["headers"]
    utc = datetime.timezone.utc
    assert got == {"b": -1, "B": 255, "s": -2, "u": 65534, "i": 4294967295, "L": -5, "d": 1.5,
                   "x": bytearray(b"\x00\x01"), "V": None, "D": decimal.Decimal("123.45"),
                   "S": b"\xff\xfe", "T": datetime.datetime(1970, 1, 2, tzinfo=utc),
                   "Tms": datetime.datetime.fromtimestamp(4294967296.123, tz=utc)}
    assert type(got["x"]) is bytearray and type(got["D"]) is decimal.Decimal


def test_header_event_extracts_routing_properties(codec):
    props = spec.Basic.Properties(delivery_mode=2, priority=7, expiration="1500",
                                  headers={"x": 1})
    events, _ = split(codec, pframe.marshal(pheader.ContentHeader(0, 42, props), 3))
    assert events == [(K.EV_HEADER, 3, 60, 42, props.marshal(), 2, 7, "1500")]
    events, _ = split(codec, pframe.marshal(pheader.ContentHeader(0, 0), 3))
    assert events[0][5:] == (0, 0, None)


def test_cluster_id_decodes(codec):
    """Deprecated, and pamqp will not send it, but a client may: it is the last property."""
    raw = struct.pack(">H", 0x1004) + b"\x02" + b"\x03abc"
    assert codec.decode_properties(raw) == {"delivery_mode": 2, "cluster_id": "abc"}
    assert codec.encode_properties({"delivery_mode": 2, "cluster_id": "abc"}) == raw
    assert props_dict(_pamqp_properties(raw), raw) == {"delivery_mode": 2, "cluster_id": "abc"}


def test_buffer_kinds_and_offsets(codec):
    """bytes, bytearray and memoryview are all accepted, and only buf[start:end] is read."""
    raw = (pframe.marshal(spec.Basic.Ack(delivery_tag=9), 2)
           + pframe.marshal(pbody.ContentBody(b"xyz"), 2))
    expected = [(K.EV_ACK, 2, 9, False), (K.EV_BODY, 2, b"xyz")]
    padded = b"\xce" * 5 + raw + b"\x01\x00"
    for buf in (padded, bytearray(padded), memoryview(bytearray(padded))):
        assert codec.split_frames(buf, 5, 5 + len(raw), FRAME_MAX) == (expected, 5 + len(raw))
    for kind in (bytes, bytearray, memoryview):
        assert codec.decode_properties(kind(b"\x80\x00\x01a")) == {"content_type": "a"}
    assert codec.split_frames(bytearray(), 0, 0, FRAME_MAX) == ([], 0)
    with pytest.raises(ValueError):
        codec.split_frames(bytearray(raw), 0, len(raw) + 1, FRAME_MAX)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame_streams(max_body=40))
def test_split_at_every_offset(codec, stream):
    """Feed a prefix into a preallocated buffer, then the rest: the partial frame is left
    unconsumed, nothing past ``end`` is read, no event is lost or repeated."""
    _, raw = stream
    ends = frame_ends(raw)
    whole, _ = split(codec, raw)
    for cut in range(len(raw) + 1):
        buf = bytearray(b"\xce" * (len(raw) + 8))  # stale bytes where the rest will arrive
        buf[:cut] = raw[:cut]
        first, pos = codec.split_frames(buf, 0, cut, FRAME_MAX)
        done = [e for e in ends if e <= cut]
        assert pos == (done[-1] if done else 0)
        assert first == whole[: len(done)]
        buf[cut : len(raw)] = raw[cut:]
        rest, end = codec.split_frames(buf, pos, len(raw), FRAME_MAX)
        assert end == len(raw) and first + rest == whole


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame_streams(max_body=40), st.integers(1, 200))
def test_a_budget_stops_before_the_frame_that_starts_past_it(codec, stream, budget):
    """split_frames(..., budget): every frame that starts within ``budget`` bytes is decoded
    whole, none after; the rest decodes from where it stopped, nothing lost or repeated."""
    _, raw = stream
    ends = frame_ends(raw)
    whole, _ = split(codec, raw)
    starts = [0] + ends[:-1]
    events, pos = codec.split_frames(raw, 0, len(raw), FRAME_MAX, budget)
    taken = [s for s in starts if s < budget]
    assert events == whole[: len(taken)]
    assert pos == (ends[len(taken) - 1] if taken else 0)
    rest, end = codec.split_frames(raw, pos, len(raw), FRAME_MAX)
    assert end == len(raw) and events + rest == whole


@pytest.mark.parametrize("extra", [0, 1, 512])
@pytest.mark.parametrize("size", [0, 1, 32768, 131064])
def test_a_body_buffer_is_read_into_and_becomes_the_body(codec, size, extra):
    """body_buffer: room a socket reads a large payload into, with ``extra`` bytes beyond it
    for what follows in the same read (a writable view), finish_body: the payload's bytes,
    the room beyond cut off. The compiled twin reads into the bytes object itself."""
    body, view = codec.body_buffer(size, extra)
    assert len(view) == size + extra
    data = _bytes_of(size)
    view[:size] = data
    view[size:] = b"\xce" * extra  # the frame end and the next frames: not the body's
    view.release()
    done = codec.finish_body(body, size)
    assert type(done) is bytes and done == data and len(done) == size
    assert hash(done) == hash(data) and done + b"!" == data + b"!"
    assert bytes(memoryview(done)) == data
    with pytest.raises(ValueError):
        codec.body_buffer(-1)
    with pytest.raises(ValueError):
        codec.body_buffer(1, -1)


def _bytes_of(size: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(size))


@FAST
@given(frame_streams())
def test_compiled_and_pure_agree(stream):
    _, raw = stream
    results = [split(m, raw) for m in both()]
    assert all(r == results[0] for r in results)


# ---------------------------------------------------------------- malformed input

ACK = method_frame(1, 60, 80, struct.pack(">QB", 1, 0))
PUB = method_frame(1, 60, 40, b"\x00\x00\x01e\x01k\x00")


def _nested(levels: int, kind: bytes) -> bytes:
    """Properties whose headers table is the outermost of ``levels`` nested containers:
    tables ('F') or arrays ('A') inside it."""
    value = b""
    for _ in range(levels - 1):
        content = (b"\x01k" + value if kind == b"F" else value) if value else b""
        value = kind + u32(len(content)) + content
    entries = b"\x01k" + value if value else b""
    return struct.pack(">H", 0x2000) + u32(len(entries)) + entries


def _props(flags: int, data: bytes) -> bytes:
    return header_frame(1, struct.pack(">H", flags) + data)


MALFORMED = {
    # framing: 501 FRAME_ERROR
    "bad frame end": (ACK[:-1] + b"\x00", 1, K.FRAME_ERROR),
    "unknown frame type": (wire_frame(5, 1, b""), 1, K.FRAME_ERROR),
    "method frame too short": (wire_frame(1, 1, b"\x00\x3c"), 1, K.FRAME_ERROR),
    "header frame too short": (wire_frame(2, 1, b"\x00\x3c\x00"), 1, K.FRAME_ERROR),
    "heartbeat with a payload": (wire_frame(8, 0, b"\x01"), 0, K.FRAME_ERROR),
    # RabbitMQ 3.10 answers a heartbeat on a channel with 505
    "heartbeat on a channel": (wire_frame(8, 3, b""), 3, K.UNEXPECTED_FRAME),
    # method arguments: RabbitMQ says "501 FRAME_ERROR - cannot decode"
    "publish truncated": (method_frame(1, 60, 40, b"\x00\x00\x05ab"), 1, K.FRAME_ERROR),
    "publish without bits": (method_frame(1, 60, 40, b"\x00\x00\x01e\x01k"), 1, K.FRAME_ERROR),
    "publish trailing byte": (method_frame(1, 60, 40, b"\x00\x00\x01e\x01k\x00\x00"), 1,
                              K.FRAME_ERROR),
    "publish reserved cut": (method_frame(1, 60, 40, b"\x00"), 1, K.FRAME_ERROR),
    "publish exchange not UTF-8": (method_frame(1, 60, 40, b"\x00\x00\x02\xff\xfe\x00\x00"),
                                   1, K.FRAME_ERROR),
    "ack truncated": (method_frame(1, 60, 80, b"\x00" * 8), 1, K.FRAME_ERROR),
    "ack trailing bytes": (method_frame(1, 60, 80, b"\x00" * 9 + b"zz"), 1, K.FRAME_ERROR),
    "nack truncated": (method_frame(1, 60, 120, b"\x00" * 4), 1, K.FRAME_ERROR),
    "reject truncated": (method_frame(1, 60, 90, b""), 1, K.FRAME_ERROR),
    # content header property list
    "flags truncated": (header_frame(1, b"\x00"), 1, K.FRAME_ERROR),
    "flags continuation cut": (_props(0x0001, b""), 1, K.FRAME_ERROR),
    "five flag words": (_props(0x0001, b"\x00\x01" * 4), 1, K.FRAME_ERROR),
    "short string cut": (_props(0x8000, b"\x09ab"), 1, K.FRAME_ERROR),
    "short string not UTF-8": (_props(0x8000, b"\x02\xff\xfe"), 1, K.FRAME_ERROR),
    "delivery mode missing": (_props(0x1000, b""), 1, K.FRAME_ERROR),
    "timestamp cut": (_props(0x0040, b"\x00" * 7), 1, K.FRAME_ERROR),
    "timestamp past 9999": (_props(0x0040, struct.pack(">Q", 2**64 - 1)), 1, K.FRAME_ERROR),
    "table size past the end": (_props(0x2000, u32(10) + b"\x01a"), 1, K.FRAME_ERROR),
    "unknown field type": (_props(0x2000, u32(3) + b"\x01aZ"), 1, K.FRAME_ERROR),
    "key past the table": (_props(0x2000, u32(2) + b"\x05ab" + b"cdeV"), 1, K.FRAME_ERROR),
    "key not UTF-8": (_props(0x2000, u32(3) + b"\x01\xffV"), 1, K.FRAME_ERROR),
    "value past the table": (_props(0x2000, u32(4) + b"\x01aI\x00" + b"\x00\x00\x00"),
                             1, K.FRAME_ERROR),
    "array past its table": (_props(0x2000, u32(8) + b"\x01aA" + u32(9) + b"t"),
                             1, K.FRAME_ERROR),
    "long string cut": (_props(0x2000, u32(8) + b"\x01aS" + u32(99) + b"x"), 1, K.FRAME_ERROR),
    "bytes cut": (_props(0x2000, u32(5) + b"\x01ax\x00\x00"), 1, K.FRAME_ERROR),
    "decimal cut": (_props(0x2000, u32(6) + b"\x01aD\x01\x00\x00"), 1, K.FRAME_ERROR),
    "timestamp value past 9999": (_props(0x2000, u32(11) + b"\x01aT"
                                         + struct.pack(">Q", 2**63)), 1, K.FRAME_ERROR),
    "tables nested 65 deep": (header_frame(1, _nested(65, b"F")), 1, K.FRAME_ERROR),
    # bytes after the property list would be passed on to consumers verbatim
    "header: a byte after no properties": (_props(0, b"\x00"), 1, K.FRAME_ERROR),
    "header: bytes after the properties": (_props(0x8000, b"\x04text" + b"JUNK"), 1,
                                           K.FRAME_ERROR),
    "header: bytes after the headers table": (_props(0x2000, u32(0) + b"x"), 1, K.FRAME_ERROR),
    "arrays nested 65 deep": (header_frame(1, _nested(65, b"A")), 1, K.FRAME_ERROR),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_frame_is_an_error_event(codec, case):
    """After a good frame, the bad one is an EV_ERROR with RabbitMQ's code; the good one
    is kept and ``consumed`` stops at the start of the bad one."""
    bad, channel, code = MALFORMED[case]
    raw = ACK + bad + ACK
    events, pos = split(codec, raw)
    assert events[0] == (K.EV_ACK, 1, 1, False)
    assert events[1][:3] == (K.EV_ERROR, channel, code) and isinstance(events[1][3], str)
    assert len(events) == 2 and pos == len(ACK)


@pytest.mark.parametrize("kind", [b"F", b"A"])
def test_nesting_up_to_the_limit_is_accepted(codec, kind):
    """64 levels, the headers table included, is the limit (65 is in MALFORMED)."""
    events, _ = split(codec, header_frame(1, _nested(64, kind)))
    assert events[0][0] == K.EV_HEADER
    codec.decode_properties(events[0][4])


def test_deeply_nested_table_is_rejected_not_a_crash(codec):
    events, _ = split(codec, header_frame(1, _nested(5000, b"F")), 0)
    assert events[-1][:3] == (K.EV_ERROR, 1, K.FRAME_ERROR)


def test_oversize_frame_is_an_error_before_it_arrives(codec):
    head = struct.pack(">BHI", 3, 5, 200000)
    events, pos = split(codec, head)
    assert [e[:3] for e in events] == [(K.EV_ERROR, 5, K.FRAME_ERROR)] and pos == 0
    # frame_max bounds the whole frame: payload + 8 bytes of framing
    body = wire_frame(3, 5, bytes(4088))
    assert split(codec, body, 4096)[0][0][0] == K.EV_BODY
    assert split(codec, wire_frame(3, 5, bytes(4089)), 4096)[0][0][:3] == (
        K.EV_ERROR, 5, K.FRAME_ERROR)
    assert split(codec, body, 0)[0][0][0] == K.EV_BODY  # 0: no bound


def test_partial_frame_is_not_an_error(codec):
    for cut in range(len(PUB)):
        assert split(codec, PUB[:cut]) == ([], 0)


def test_timestamp_bounds(codec):
    """Seconds up to 2**32-1, milliseconds above, year 9999 the last one accepted."""
    for value, ok in [(0, True), (2**32 - 1, True), (2**32, True),
                      (253402300799999, True), (253402300800000, False), (2**64 - 1, False)]:
        events, _ = split(codec, _props(0x0040, struct.pack(">Q", value)))
        assert (events[0][0] == K.EV_HEADER) is ok, value
        if ok:
            expected = pdecode.timestamp(struct.pack(">Q", value))[1]
            assert codec.decode_properties(events[0][4]) == {"timestamp": expected}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(properties, typed_tables)
def test_truncated_property_lists(codec, props, table):
    """Properties with a headers table of every field type decode as pamqp decodes them;
    the same header cut anywhere short of its end is a 501 (each cut leaves a declared
    property incomplete)."""
    props.pop("headers", None)
    raw = spec.Basic.Properties(**props).marshal()
    flags, pos = struct.unpack(">H", raw[:2])[0], 2
    for bit in (0x8000, 0x4000):  # content-type and content-encoding come before headers
        if flags & bit:
            pos += 1 + raw[pos]
    raw = struct.pack(">H", flags | 0x2000) + raw[2:pos] + table + raw[pos:]
    events, _ = split(codec, header_frame(1, raw))
    assert codec.decode_properties(events[0][4]) == props_dict(_pamqp_properties(raw), raw)
    for cut in range(len(raw)):
        events, pos = split(codec, ACK + header_frame(1, raw[:cut]))
        assert events[1][:3] == (K.EV_ERROR, 1, K.FRAME_ERROR) and pos == len(ACK)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0, 4096, FRAME_MAX]))
def test_garbage_never_raises(data, frame_max):
    _check_garbage(data, frame_max)


frame_heads = st.sampled_from([b"\x00\x3c\x00\x28", b"\x00\x3c\x00\x50", b"\x00\x3c\x00\x78",
                               b"\x00\x3c\x00\x5a", b"\x00\x3c\x00\x00\x00\x00", b""])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 8, 0, 9]), st.integers(0, 3), frame_heads,
                          st.binary(max_size=40)), max_size=5))
def test_well_framed_garbage_never_raises(parts):
    """Random payloads in correct framing reach the method and header parsers."""
    raw = b"".join(wire_frame(t, ch, head + data) for t, ch, head, data in parts)
    _check_garbage(raw, FRAME_MAX)


def _check_garbage(data: bytes, frame_max: int) -> None:
    outcomes = []
    for m in both():
        events, pos = m.split_frames(bytearray(data), 0, len(data), frame_max)
        assert 0 <= pos <= len(data)
        kinds = [e[0] for e in events]
        if K.EV_ERROR in kinds:
            assert kinds.index(K.EV_ERROR) == len(kinds) - 1
            assert events[-1][2] in (K.FRAME_ERROR, K.UNEXPECTED_FRAME)
        for ev in events:
            if ev[0] == K.EV_HEADER:
                m.decode_properties(ev[4])  # validated by the splitter: must not raise
        # compare without the error text, which may be worded differently
        outcomes.append(([e[:3] if e[0] == K.EV_ERROR else e for e in events], pos))
    assert all(o == outcomes[0] for o in outcomes) or "nan" in repr(outcomes)


@settings(max_examples=200, deadline=None)
@given(properties, st.binary(min_size=1, max_size=40), st.integers(0, 40))
def test_corrupted_headers_never_raise(props, noise, where):
    """Overwrite bytes inside a valid content header: an error event or a valid decode."""
    frame = bytearray(pframe.marshal(pheader.ContentHeader(0, 0, spec.Basic.Properties(**props)),
                                     1))
    for i, b in enumerate(noise):
        pos = 7 + 12 + (where + i) % max(1, len(frame) - 20)
        if pos < len(frame) - 1:
            frame[pos] = b
    _check_garbage(bytes(frame), FRAME_MAX)


# ---------------------------------------------------------------- encoding


def _bodies(ch: int, body: bytes, frame_max: int) -> bytes:
    step = frame_max - 8
    return b"".join(pframe.marshal(pbody.ContentBody(body[i:i + step]), ch)
                    for i in range(0, len(body), step))


def _content(ch: int, props: spec.Basic.Properties, body: bytes, frame_max: int) -> bytes:
    return pframe.marshal(pheader.ContentHeader(0, len(body), props), ch) + _bodies(
        ch, body, frame_max)


@FAST
@given(channels, short_text, tags, st.booleans(), names, short_text, properties,
       st.binary(max_size=20000), st.sampled_from([4096, 8192, FRAME_MAX]))
def test_encode_deliver_matches_pamqp(codec, ch, ctag, tag, redelivered, exchange, rk, props,
                                      body, frame_max):
    p = spec.Basic.Properties(**props)
    out = bytearray(b"prefix")
    codec.encode_deliver(out, ch, ctag, tag, redelivered, exchange, rk, p.marshal(), body,
                         frame_max)
    deliver = spec.Basic.Deliver(consumer_tag=ctag, delivery_tag=tag, redelivered=redelivered,
                                 exchange=exchange, routing_key=rk)
    assert bytes(out) == b"prefix" + pframe.marshal(deliver, ch) + _content(ch, p, body,
                                                                            frame_max)


@FAST
@given(channels, short_text, tags, st.booleans(), names, short_text, properties,
       st.integers(0, 2**64 - 1))
def test_encode_deliver_head_matches_pamqp(codec, ch, ctag, tag, redelivered, exchange, rk,
                                           props, body_size):
    """basic.deliver and the content header alone (a large body's frames are written from the
    message by the connection): what encode_deliver writes before the first body frame."""
    p = spec.Basic.Properties(**props)
    out = bytearray(b"prefix")
    codec.encode_deliver_head(out, ch, ctag, tag, redelivered, exchange, rk, p.marshal(),
                              body_size)
    deliver = spec.Basic.Deliver(consumer_tag=ctag, delivery_tag=tag, redelivered=redelivered,
                                 exchange=exchange, routing_key=rk)
    assert bytes(out) == b"prefix" + pframe.marshal(deliver, ch) + pframe.marshal(
        pheader.ContentHeader(0, body_size, p), ch)


@FAST
@given(channels, tags, st.booleans(), names, short_text, st.integers(0, 2**32 - 1), properties,
       st.binary(max_size=5000))
def test_encode_get_ok_matches_pamqp(codec, ch, tag, redelivered, exchange, rk, count, props,
                                     body):
    p = spec.Basic.Properties(**props)
    out = bytearray()
    codec.encode_get_ok(out, ch, tag, redelivered, exchange, rk, count, p.marshal(), body, 4096)
    get_ok = spec.Basic.GetOk(delivery_tag=tag, redelivered=redelivered, exchange=exchange,
                              routing_key=rk, message_count=count)
    assert bytes(out) == pframe.marshal(get_ok, ch) + _content(ch, p, body, 4096)


@FAST
@given(channels, st.integers(300, 599), short_text, names, short_text, properties,
       st.binary(max_size=5000))
def test_encode_return_matches_pamqp(codec, ch, code, text, exchange, rk, props, body):
    p = spec.Basic.Properties(**props)
    out = bytearray()
    codec.encode_return(out, ch, code, text, exchange, rk, p.marshal(), body, FRAME_MAX)
    ret = spec.Basic.Return(reply_code=code, reply_text=text, exchange=exchange, routing_key=rk)
    assert bytes(out) == pframe.marshal(ret, ch) + _content(ch, p, body, FRAME_MAX)


@FAST
@given(channels, tags, st.booleans(), st.booleans())
def test_encode_confirms_match_pamqp(codec, ch, tag, multiple, requeue):
    out = bytearray()
    codec.encode_ack(out, ch, tag, multiple)
    codec.encode_nack(out, ch, tag, multiple, requeue)
    codec.encode_heartbeat(out)
    assert bytes(out) == (
        pframe.marshal(spec.Basic.Ack(delivery_tag=tag, multiple=multiple), ch)
        + pframe.marshal(spec.Basic.Nack(delivery_tag=tag, multiple=multiple, requeue=requeue),
                         ch)
        + pheartbeat.Heartbeat().marshal())
    assert codec.HEARTBEAT_FRAME == pheartbeat.Heartbeat().marshal()


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 8176, 8177])
def test_body_split_at_frame_max(codec, size):
    """Bodies of exactly one, two, and just over frame_max - 8 bytes."""
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    p = spec.Basic.Properties(content_type="t")
    out = bytearray()
    codec.encode_deliver(out, 1, "c", 1, False, "", "rk", p.marshal(), body, 4096)
    deliver = spec.Basic.Deliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="rk")
    assert bytes(out) == pframe.marshal(deliver, 1) + _content(1, p, body, 4096)
    events, _ = split(codec, bytes(out), 4096)
    assert b"".join(e[2] for e in events if e[0] == K.EV_BODY) == body
    assert len([e for e in events if e[0] == K.EV_BODY]) == -(-size // 4088)


def test_encoders_take_bytes_like_arguments(codec):
    """Body and properties as bytearray/memoryview, names as bytes: same frames as str/bytes."""
    raw_props, body = b"\x80\x00\x01t", b"payload"
    expected = bytearray()
    codec.encode_deliver(expected, 1, "c", 5, True, "ex", "rk", raw_props, body, 0)
    for wrap in (bytearray, memoryview):
        out = bytearray()
        codec.encode_deliver(out, 1, b"c", 5, True, b"ex", "rk", wrap(raw_props), wrap(body), 0)
        assert out == expected


@pytest.mark.parametrize("call", [
    lambda c, out: c.encode_deliver(out, 1, "t", 1, False, "e" * 256, "k", b"\x00\x00", b"",
                                    4096),
    lambda c, out: c.encode_return(out, 1, 312, "x" * 256, "", "k", b"\x00\x00", b"", 4096),
    lambda c, out: c.encode_get_ok(out, 1, 1, False, "", "k", 0, b"\x00\x00", b"body", 8),
    lambda c, out: c.encode_deliver(out, 1, 5, 1, False, "", "k", b"\x00\x00", b"", 4096),
], ids=["short string over 255", "reply text over 255", "frame_max too small", "int name"])
def test_bad_encoder_arguments_raise_and_leave_out_alone(codec, call):
    out = bytearray(b"kept")
    with pytest.raises((ValueError, TypeError)):
        call(codec, out)
    assert out == b"kept"


@FAST
@given(properties)
def test_encode_properties_round_trip(codec, props):
    raw = codec.encode_properties(props)
    assert codec.decode_properties(raw) == props
    assert props_dict(_pamqp_properties(raw), raw) == props


def _pamqp_properties(raw: bytes) -> spec.Basic.Properties:
    frame = pheader.ContentHeader()
    frame.unmarshal(struct.pack(">HHQ", 60, 0, 0) + raw)
    return frame.properties


@FAST
@given(tables)
def test_encode_table_decodes_like_pamqp(codec, table):
    """encode_table's output, read by pamqp, gives the table back (floats as 'd', no loss)."""
    _, decoded = pdecode.field_table(codec.encode_table(table))
    assert decoded == table


# ---------------------------------------------------------------- selection


def test_compiled_codec_is_the_default():
    if os.environ.get("LEVERET_NO_EXTENSIONS", "") not in ("", "0") or os.environ.get(
            "LEVERET_REQUIRE_EXTENSIONS", "") in ("", "0"):
        pytest.skip("only meaningful when the extensions are required (CI sets it)")
    import leveret.frames

    assert leveret.frames.IMPLEMENTATION == "c"


def test_no_extensions_selects_pure():
    import subprocess
    import sys

    env = dict(os.environ, LEVERET_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", "import leveret.frames as f; print(f.IMPLEMENTATION)"],
        env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["py"]


@pytest.mark.parametrize("raw", [b"\x00\x00\x00", b"\x80\x00\x04textJ",
                                 b"\x20\x00" + u32(0) + b"x"])
def test_decode_properties_refuses_bytes_after_the_list(codec, raw):
    with pytest.raises(K.FrameError):
        codec.decode_properties(raw)

"""The frame codec, compiled and pure, against pamqp as the oracle and against each other."""

from __future__ import annotations

import datetime
import decimal
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

from leveret import _frames_common as K

from _impls import implementations

IMPLS = implementations("leveret._frames_c", "leveret._frames_py")
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(params=IMPLS, scope="module")
def codec(request):
    return request.param


def both():
    import leveret._frames_py as py

    try:
        import leveret._frames_c as c
    except ImportError:
        return [py]
    return [c, py]


# ---------------------------------------------------------------- strategies

short_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
    lambda s: len(s.encode()) <= 255)
names = st.text(alphabet="abcdefghij.-_:", max_size=12)  # what pamqp accepts as a name

scalar_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, width=32),
    st.text(max_size=30),
    st.none(),
    st.datetimes(min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1),
                 timezones=st.just(datetime.timezone.utc)).map(lambda d: d.replace(microsecond=0)),
    st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False),
    st.binary(max_size=10).map(bytearray),
)
field_values = st.recursive(
    scalar_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(alphabet="abcxyz-", min_size=1, max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)
tables = st.dictionaries(st.text(alphabet="abcdefxyz-", min_size=1, max_size=10), field_values,
                         max_size=5)

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
        "timestamp": st.datetimes(min_value=datetime.datetime(1970, 1, 2),
                                  max_value=datetime.datetime(2100, 1, 1)).map(
            lambda d: d.replace(microsecond=0, tzinfo=datetime.timezone.utc)),
        "message_type": short_text,
        "user_id": short_text,
        "app_id": short_text,
    },
)

channels = st.integers(1, 2047)
tags = st.integers(0, 2**63 - 1)  # pamqp encodes long-longs as signed

methods = st.one_of(
    st.builds(spec.Basic.Publish, exchange=names, routing_key=short_text,
              mandatory=st.booleans(), immediate=st.booleans()),
    st.builds(spec.Basic.Ack, delivery_tag=tags, multiple=st.booleans()),
    st.builds(spec.Basic.Nack, delivery_tag=tags, multiple=st.booleans(), requeue=st.booleans()),
    st.builds(spec.Basic.Reject, delivery_tag=tags, requeue=st.booleans()),
    st.builds(spec.Queue.Declare, queue=names, durable=st.booleans(), arguments=tables),
    st.builds(spec.Basic.Consume, queue=names, consumer_tag=names, no_ack=st.booleans()),
    st.builds(spec.Basic.Qos, prefetch_count=st.integers(0, 65535), global_=st.booleans()),
)


@st.composite
def frame_streams(draw):
    """A list of (channel, pamqp frame object) and their bytes on the wire."""
    frames = []
    for _ in range(draw(st.integers(1, 6))):
        ch = draw(channels)
        kind = draw(st.sampled_from(["method", "content", "heartbeat"]))
        if kind == "method":
            frames.append((ch, draw(methods)))
        elif kind == "heartbeat":
            frames.append((0, pheartbeat.Heartbeat()))
        else:
            body = draw(st.binary(max_size=300))
            props = spec.Basic.Properties(**draw(properties))
            frames.append((ch, pheader.ContentHeader(0, len(body), props)))
            if body:
                frames.append((ch, pbody.ContentBody(body)))
    data = b"".join(f.marshal() if isinstance(f, pheartbeat.Heartbeat) else pframe.marshal(f, ch)
                    for ch, f in frames)
    return frames, data


def props_dict(p: spec.Basic.Properties) -> dict:
    return {k: getattr(p, k) for k in K.PROPERTY_NAMES if getattr(p, k) not in (None, "")}


def check_event(codec, ev: tuple, channel: int, frame: object) -> None:
    """``ev`` must say what pamqp says ``frame`` is."""
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
        assert (ev[2], ev[3]) == (60, frame.body_size)
        expected = props_dict(frame.properties)
        assert codec.decode_properties(ev[4]) == expected
        assert ev[5] == (frame.properties.delivery_mode or 0)
        assert ev[6] == (frame.properties.priority or 0)
        assert ev[7] == frame.properties.expiration
    elif isinstance(frame, pbody.ContentBody):
        assert ev == (K.EV_BODY, channel, frame.value)
    elif isinstance(frame, pheartbeat.Heartbeat):
        assert ev == (K.EV_HEARTBEAT, 0)
    else:
        assert ev[0] == K.EV_METHOD
        assert ev[2] == frame.index
        decoded = spec.INDEX_MAPPING[ev[2]]()
        decoded.unmarshal(ev[3])
        assert decoded.marshal() == frame.marshal()


# ---------------------------------------------------------------- decoding


@FAST
@given(frame_streams())
def test_decode_matches_pamqp(codec, stream):
    frames, data = stream
    events, consumed = codec.split_frames(bytearray(data), 0, len(data), 131072)
    assert consumed == len(data)
    assert len(events) == len(frames)
    for ev, (ch, frame) in zip(events, frames):
        # pamqp decodes our bytes to the same frame it encoded: it is the oracle
        used, pch, pf = pframe.unmarshal(pframe.marshal(frame, ch)
                                         if not isinstance(frame, pheartbeat.Heartbeat)
                                         else frame.marshal())
        check_event(codec, ev, pch, pf)


@FAST
@given(frame_streams(), st.data())
def test_split_at_every_offset(codec, stream, data):
    _, raw = stream
    whole, _ = codec.split_frames(bytearray(raw), 0, len(raw), 131072)
    for cut in sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))):
        buf = bytearray(raw)
        first, pos = codec.split_frames(buf, 0, cut, 131072)
        assert pos <= cut
        rest, end = codec.split_frames(buf, pos, len(raw), 131072)
        assert end == len(raw)
        assert first + rest == whole


def test_split_every_single_offset_small_stream(codec):
    frames = [
        pframe.marshal(spec.Basic.Publish(exchange="ex", routing_key="rk"), 1),
        pframe.marshal(pheader.ContentHeader(0, 5, spec.Basic.Properties(
            headers={"a": [1, {"b": "c"}]}, delivery_mode=2)), 1),
        pframe.marshal(pbody.ContentBody(b"hello"), 1),
        pheartbeat.Heartbeat().marshal(),
    ]
    raw = b"".join(frames)
    whole, _ = codec.split_frames(bytearray(raw), 0, len(raw), 131072)
    assert [e[0] for e in whole] == [K.EV_PUBLISH, K.EV_HEADER, K.EV_BODY, K.EV_HEARTBEAT]
    for cut in range(len(raw) + 1):
        buf = bytearray(raw)
        first, pos = codec.split_frames(buf, 0, cut, 131072)
        rest, end = codec.split_frames(buf, pos, len(raw), 131072)
        assert first + rest == whole and end == len(raw)


@FAST
@given(frame_streams())
def test_compiled_and_pure_agree(stream):
    _, raw = stream
    results = [m.split_frames(bytearray(raw), 0, len(raw), 131072) for m in both()]
    assert all(r == results[0] for r in results)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0, 4096, 131072]))
def test_garbage_never_raises(data, frame_max):
    outcomes = []
    for m in both():
        events, pos = m.split_frames(bytearray(data), 0, len(data), frame_max)
        assert 0 <= pos <= len(data)
        kinds = [e[0] for e in events]
        if K.EV_ERROR in kinds:
            assert kinds.index(K.EV_ERROR) == len(kinds) - 1
            assert events[-1][2] == K.FRAME_ERROR
        # compare without the error text, which may be worded differently
        outcomes.append(([e[:3] if e[0] == K.EV_ERROR else e for e in events], pos))
    assert all(o == outcomes[0] for o in outcomes)


@settings(max_examples=300, deadline=None)
@given(properties, st.binary(min_size=1, max_size=40), st.integers(0, 40))
def test_corrupted_headers_never_raise(codec, props, noise, where):
    """Flip bytes inside a valid content header: an error event or a valid decode, no crash."""
    frame = bytearray(pframe.marshal(pheader.ContentHeader(0, 0, spec.Basic.Properties(**props)),
                                     1))
    for i, b in enumerate(noise):
        pos = 7 + 12 + (where + i) % max(1, len(frame) - 20)
        if pos < len(frame) - 1:
            frame[pos] = b
    results = []
    for m in both():
        events, _ = m.split_frames(bytearray(frame), 0, len(frame), 131072)
        if events and events[-1][0] == K.EV_HEADER:
            results.append(("ok", m.decode_properties(events[-1][4])))  # must not raise
        else:
            results.append(("error", events[-1][:3] if events else None))
    assert all(r == results[0] for r in results) or _nan_in(results)


def _nan_in(results) -> bool:
    return "nan" in repr(results)


def test_bad_frame_end_is_frame_error(codec):
    raw = bytearray(pframe.marshal(spec.Basic.Ack(delivery_tag=1), 1))
    raw[-1] = 0
    events, pos = codec.split_frames(raw, 0, len(raw), 131072)
    assert events[-1][:3] == (K.EV_ERROR, 1, K.FRAME_ERROR) and pos == 0


def test_oversize_frame_is_frame_error_before_it_arrives(codec):
    head = struct.pack(">BHI", 3, 5, 200000)
    events, pos = codec.split_frames(bytearray(head), 0, len(head), 131072)
    assert events == [(K.EV_ERROR, 5, K.FRAME_ERROR, events[0][3])] and pos == 0


def test_partial_frame_is_not_an_error(codec):
    raw = pframe.marshal(spec.Basic.Publish(exchange="e", routing_key="k"), 1)
    for cut in range(len(raw)):
        events, pos = codec.split_frames(bytearray(raw), 0, cut, 131072)
        assert events == [] and pos == 0


def test_truncated_publish_arguments(codec):
    payload = struct.pack(">HHH", 60, 40, 0) + b"\x05ab"
    raw = struct.pack(">BHI", 1, 1, len(payload)) + payload + b"\xce"
    events, _ = codec.split_frames(bytearray(raw), 0, len(raw), 131072)
    assert events[-1][:3] == (K.EV_ERROR, 1, K.FRAME_ERROR)


def test_unknown_table_type_is_rejected(codec):
    table = b"\x01aZ"
    props = struct.pack(">HI", 0x2000, len(table)) + table
    payload = struct.pack(">HHQ", 60, 0, 0) + props
    raw = struct.pack(">BHI", 2, 1, len(payload)) + payload + b"\xce"
    events, _ = codec.split_frames(bytearray(raw), 0, len(raw), 131072)
    assert events[-1][:3] == (K.EV_ERROR, 1, K.FRAME_ERROR)


def test_deeply_nested_table_is_rejected_not_a_crash(codec):
    inner = b""
    for _ in range(5000):
        inner = b"\x01kF" + struct.pack(">I", len(inner)) + inner
    props = struct.pack(">HI", 0x2000, len(inner)) + inner
    payload = struct.pack(">HHQ", 60, 0, 0) + props
    raw = struct.pack(">BHI", 2, 1, len(payload)) + payload + b"\xce"
    events, _ = codec.split_frames(bytearray(raw), 0, len(raw), 0)
    assert events[-1][:3] == (K.EV_ERROR, 1, K.FRAME_ERROR)


def test_heartbeat_on_channel_is_frame_error(codec):
    raw = struct.pack(">BHI", 8, 3, 0) + b"\xce"
    events, _ = codec.split_frames(bytearray(raw), 0, len(raw), 131072)
    assert events[-1][:3] == (K.EV_ERROR, 3, K.FRAME_ERROR)


def test_rabbitmq_field_types_decode_like_pamqp(codec):
    """Types RabbitMQ sends that pamqp does not encode itself: b, B, s, u, i, L, d, x."""
    entries = (b"\x01bb\xff" + b"\x01BB\xff" + b"\x01ss\xff\xfe" + b"\x01uu\xff\xfe"
               + b"\x01ii\xff\xff\xff\xff" + b"\x01LL" + struct.pack(">q", -5)
               + b"\x01dd" + struct.pack(">d", 1.5) + b"\x01xx" + struct.pack(">I", 2) + b"\x00\x01"
               + b"\x01VV" + b"\x01DD\x02" + struct.pack(">i", 12345)
               + b"\x01SS" + struct.pack(">I", 2) + b"\xff\xfe")
    table = struct.pack(">I", len(entries)) + entries
    raw = struct.pack(">H", 0x2000) + table
    from pamqp import decode

    _, expected = decode.field_table(table)
    assert codec.decode_properties(raw) == {"headers": expected}
    assert expected["D"] == decimal.Decimal("123.45") and expected["S"] == b"\xff\xfe"


# ---------------------------------------------------------------- encoding


@FAST
@given(channels, short_text, tags, st.booleans(), names, short_text, properties,
       st.binary(max_size=20000), st.sampled_from([4096, 8192, 131072]))
def test_encode_deliver_matches_pamqp(codec, ch, ctag, tag, redelivered, exchange, rk, props,
                                      body, frame_max):
    p = spec.Basic.Properties(**props)
    out = bytearray(b"prefix")
    codec.encode_deliver(out, ch, ctag, tag, redelivered, exchange, rk, p.marshal(), body,
                         frame_max)
    expected = (pframe.marshal(spec.Basic.Deliver(consumer_tag=ctag, delivery_tag=tag,
                                                  redelivered=redelivered, exchange=exchange,
                                                  routing_key=rk), ch)
                + pframe.marshal(pheader.ContentHeader(0, len(body), p), ch)
                + _bodies(ch, body, frame_max))
    assert bytes(out) == b"prefix" + expected


def _bodies(ch: int, body: bytes, frame_max: int) -> bytes:
    step = frame_max - 8
    return b"".join(pframe.marshal(pbody.ContentBody(body[i:i + step]), ch)
                    for i in range(0, len(body), step))


@FAST
@given(channels, tags, st.booleans(), names, short_text, st.integers(0, 2**32 - 1), properties,
       st.binary(max_size=5000))
def test_encode_get_ok_matches_pamqp(codec, ch, tag, redelivered, exchange, rk, count, props,
                                     body):
    p = spec.Basic.Properties(**props)
    out = bytearray()
    codec.encode_get_ok(out, ch, tag, redelivered, exchange, rk, count, p.marshal(), body, 4096)
    expected = (pframe.marshal(spec.Basic.GetOk(delivery_tag=tag, redelivered=redelivered,
                                                exchange=exchange, routing_key=rk,
                                                message_count=count), ch)
                + pframe.marshal(pheader.ContentHeader(0, len(body), p), ch)
                + _bodies(ch, body, 4096))
    assert bytes(out) == expected


@FAST
@given(channels, st.integers(300, 599), short_text, names, short_text, properties,
       st.binary(max_size=5000))
def test_encode_return_matches_pamqp(codec, ch, code, text, exchange, rk, props, body):
    p = spec.Basic.Properties(**props)
    out = bytearray()
    codec.encode_return(out, ch, code, text, exchange, rk, p.marshal(), body, 131072)
    expected = (pframe.marshal(spec.Basic.Return(reply_code=code, reply_text=text,
                                                 exchange=exchange, routing_key=rk), ch)
                + pframe.marshal(pheader.ContentHeader(0, len(body), p), ch)
                + _bodies(ch, body, 131072))
    assert bytes(out) == expected


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


@FAST
@given(properties)
def test_encode_properties_round_trip(codec, props):
    raw = codec.encode_properties(props)
    assert codec.decode_properties(raw) == props


def test_long_short_string_is_refused(codec):
    with pytest.raises(ValueError):
        codec.encode_deliver(bytearray(), 1, "t", 1, False, "e" * 256, "k", b"\x00\x00", b"",
                             4096)


# ---------------------------------------------------------------- selection


def test_compiled_codec_is_the_default():
    if os.environ.get("LEVERET_NO_EXTENSIONS") or not os.environ.get(
            "LEVERET_REQUIRE_EXTENSIONS"):
        pytest.skip("only meaningful when the extensions are required (CI sets it)")
    import leveret.frames

    assert leveret.frames.IMPLEMENTATION == "c"


def test_no_extensions_selects_pure():
    import subprocess
    import sys

    env = dict(os.environ, LEVERET_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c",
         "import leveret.frames, leveret.acks, leveret.routing as r;"
         "print(leveret.frames.IMPLEMENTATION, leveret.acks.IMPLEMENTATION, r.IMPLEMENTATION)"],
        env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["py", "py", "py"]

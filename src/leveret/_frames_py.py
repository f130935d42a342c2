"""Pure-Python frame codec: the twin of ``_frames_c.pyx``, same functions, same results.

See ``_frames_common`` for the event tuples ``split_frames`` produces.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

from ._frames_common import (
    BASIC_ACK,
    BASIC_DELIVER,
    BASIC_GET_OK,
    BASIC_NACK,
    BASIC_PUBLISH,
    BASIC_REJECT,
    BASIC_RETURN,
    EV_ACK,
    EV_BODY,
    EV_ERROR,
    EV_HEADER,
    EV_HEARTBEAT,
    EV_METHOD,
    EV_NACK,
    EV_PUBLISH,
    EV_REJECT,
    FRAME_BODY,
    FRAME_END,
    FRAME_ERROR,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROPERTY_NAMES,
    UNEXPECTED_FRAME,
    FrameError,
    LongInt,
)

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_FRAME_HEAD = struct.Struct(">BHI")
_HEADER_HEAD = struct.Struct(">HHQ")
_METHOD_HEAD = struct.Struct(">BHII")  # frame type, channel, size, method index
MAX_DEPTH = 64  # nesting of field tables and arrays; deeper is a frame error

__all__ = [
    "split_frames",
    "decode_properties",
    "encode_properties",
    "encode_deliver",
    "encode_deliver_head",
    "body_buffer",
    "finish_body",
    "encode_get_ok",
    "encode_return",
    "encode_ack",
    "encode_nack",
    "encode_heartbeat",
    "FrameError",
]


# ---------------------------------------------------------------- decoding helpers


class _Reader:
    """A bounds-checked cursor over one frame payload."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise FrameError(FRAME_ERROR, "field runs past the end of the frame")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(b)

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def shortstr(self) -> str:
        raw = self.take(self.u8())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(FRAME_ERROR, "short string is not valid UTF-8") from None

    def longstr(self) -> str | bytes:
        raw = self.take(self.u32())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw  # pamqp hands undecodable long strings back as bytes

    def table(self, depth: int = 0) -> dict[str, Any]:
        size = self.u32()
        if self.pos + size > self.end:
            raise FrameError(FRAME_ERROR, "field table runs past the end of the frame")
        if depth >= MAX_DEPTH:
            raise FrameError(FRAME_ERROR, "field tables nested too deep")
        sub = _Reader(self.data, self.pos, self.pos + size)
        self.pos += size
        out: dict[str, Any] = {}
        while sub.pos < sub.end:
            key = sub.shortstr()
            out[key] = sub.value(depth + 1)
        return out

    def array(self, depth: int = 0) -> list[Any]:
        size = self.u32()
        if self.pos + size > self.end:
            raise FrameError(FRAME_ERROR, "field array runs past the end of the frame")
        if depth >= MAX_DEPTH:
            raise FrameError(FRAME_ERROR, "field arrays nested too deep")
        sub = _Reader(self.data, self.pos, self.pos + size)
        self.pos += size
        out: list[Any] = []
        while sub.pos < sub.end:
            out.append(sub.value(depth + 1))
        return out

    def timestamp(self) -> datetime.datetime:
        value: float = self.u64()
        if value > 0xFFFFFFFF:  # pamqp: anything past 2106 is taken as milliseconds
            value = value / 1000.0
        try:
            return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise FrameError(FRAME_ERROR, "timestamp out of range") from None

    def value(self, depth: int = 0) -> Any:
        kind = self.take(1)
        if kind == b"t":
            return bool(self.u8())
        if kind == b"b":
            return struct.unpack(">b", self.take(1))[0]
        if kind == b"B":
            return self.u8()
        if kind == b"s":
            return struct.unpack(">h", self.take(2))[0]
        if kind == b"u":
            return self.u16()
        if kind == b"I":
            return struct.unpack(">i", self.take(4))[0]
        if kind == b"i":
            return self.u32()
        if kind in (b"l", b"L"):
            return struct.unpack(">q", self.take(8))[0]
        if kind == b"f":
            return struct.unpack(">f", self.take(4))[0]
        if kind == b"d":
            return struct.unpack(">d", self.take(8))[0]
        if kind == b"D":
            exp = self.u8()
            raw = struct.unpack(">i", self.take(4))[0]
            return decimal.Decimal(raw) * (decimal.Decimal(10) ** -exp)
        if kind == b"S":
            return self.longstr()
        if kind == b"A":
            return self.array(depth)
        if kind == b"T":
            return self.timestamp()
        if kind == b"F":
            return self.table(depth)
        if kind in (b"V", b"\x00"):
            return None
        if kind == b"x":
            return bytearray(self.take(self.u32()))
        raise FrameError(FRAME_ERROR, f"unknown field table value type {kind!r}")


def _read_flags(r: _Reader) -> int:
    flags = 0
    shift = 0
    while True:
        part = r.u16()
        flags |= (part & 0xFFFE) << shift
        if not part & 1:
            return flags
        shift += 16
        if shift >= 64:
            raise FrameError(FRAME_ERROR, "too many property flag words")


def _walk_properties(raw: bytes, build: bool) -> tuple[dict[str, Any], int, int, str | None]:
    r = _Reader(raw)
    flags = _read_flags(r)
    props: dict[str, Any] = {}
    delivery_mode = 0
    priority = 0
    expiration: str | None = None
    for i, name in enumerate(PROPERTY_NAMES):
        if not flags & (1 << (15 - i)):
            continue
        value: Any
        if i == 2:
            value = r.table()
        elif i in (3, 4):
            value = r.u8()
            if i == 3:
                delivery_mode = value
            else:
                priority = value
        elif i == 9:
            value = r.timestamp()
        else:
            value = r.shortstr()
            if i == 7:
                expiration = value
        if build:
            props[name] = value
    if r.pos != r.end:
        # the property list must fill the frame: bytes after it would reach consumers verbatim
        raise FrameError(FRAME_ERROR, f"content header has {r.end - r.pos} bytes after its "
                                      "property list")
    return props, delivery_mode, priority, expiration


def decode_properties(raw: bytes) -> dict[str, Any]:
    """Decode ``raw_props`` (flags + property list) into a dict of the properties present."""
    return _walk_properties(raw, True)[0]


# ---------------------------------------------------------------- splitting


def _decode_method(channel: int, index: int, payload: bytes) -> tuple:
    r = _Reader(payload, 4)
    if index == BASIC_PUBLISH:
        r.u16()  # reserved-1 (ticket)
        exchange = r.shortstr()
        routing_key = r.shortstr()
        bits = r.u8()
        _no_trailing(r, "basic.publish")
        return (EV_PUBLISH, channel, exchange, routing_key, bool(bits & 1), bool(bits & 2))
    if index in (BASIC_ACK, BASIC_NACK, BASIC_REJECT):
        tag = r.u64()
        bits = r.u8()
        _no_trailing(r, "acknowledgement")
        if index == BASIC_ACK:
            return (EV_ACK, channel, tag, bool(bits & 1))
        if index == BASIC_NACK:
            return (EV_NACK, channel, tag, bool(bits & 1), bool(bits & 2))
        return (EV_REJECT, channel, tag, bool(bits & 1))
    return (EV_METHOD, channel, index, bytes(payload[4:]))


def _no_trailing(r: _Reader, what: str) -> None:
    # RabbitMQ decodes method arguments with an exact binary match: extra bytes are
    # "FRAME_ERROR - cannot decode", like missing ones.
    if r.pos != r.end:
        raise FrameError(FRAME_ERROR, f"cannot decode {what}: trailing bytes")


def split_frames(buf: Any, start: int, end: int, frame_max: int,
                 budget: int = 0) -> tuple[list[tuple], int]:
    """Decode every complete frame in ``buf[start:end]``.

    Returns ``(events, consumed_up_to)``: the offset of the first byte not consumed, which is
    the start of a partial frame (normal) or of the bad frame after an ``EV_ERROR`` event.
    ``frame_max`` bounds the whole frame including its 8 bytes of framing; 0 means no bound.
    ``budget`` (bytes, 0: none): no frame starting ``budget`` bytes or more after ``start`` is
    decoded (a frame that starts before is decoded whole), so ``consumed_up_to`` may be the
    start of a complete frame.
    """
    events: list[tuple] = []
    mv = memoryview(buf)
    if start < 0 or start > end or end > mv.nbytes:
        raise ValueError("start/end outside the buffer")
    pos = start
    stop = start + budget if budget > 0 else end
    while end - pos >= 7 and pos < stop:
        ftype, channel, size = _FRAME_HEAD.unpack_from(mv, pos)
        if frame_max and size + 8 > frame_max:
            text = f"frame size {size + 8} exceeds frame_max {frame_max}"
            events.append((EV_ERROR, channel, FRAME_ERROR, text))
            return events, pos
        if end - pos < size + 8:
            break
        if mv[pos + 7 + size] != FRAME_END:
            events.append((EV_ERROR, channel, FRAME_ERROR, "frame end octet is not 0xCE"))
            return events, pos
        payload = bytes(mv[pos + 7 : pos + 7 + size])
        try:
            if ftype == FRAME_METHOD:
                if size < 4:
                    raise FrameError(FRAME_ERROR, "method frame shorter than its method id")
                events.append(_decode_method(channel, int(_U32.unpack_from(payload)[0]), payload))
            elif ftype == FRAME_HEADER:
                if size < 14:
                    raise FrameError(FRAME_ERROR, "content header frame too short")
                class_id, _weight, body_size = _HEADER_HEAD.unpack_from(payload)
                raw = payload[12:]
                _, dmode, prio, expiration = _walk_properties(raw, False)
                events.append(
                    (EV_HEADER, channel, class_id, body_size, raw, dmode, prio, expiration)
                )
            elif ftype == FRAME_BODY:
                events.append((EV_BODY, channel, payload))
            elif ftype == FRAME_HEARTBEAT:
                # as RabbitMQ 3.10: a payload is an unknown frame (501), a channel is 505
                if size:
                    raise FrameError(FRAME_ERROR, "heartbeat frame with a payload")
                if channel != 0:
                    raise FrameError(UNEXPECTED_FRAME, "heartbeat frame on a non-zero channel")
                events.append((EV_HEARTBEAT, channel))
            else:
                raise FrameError(FRAME_ERROR, f"unknown frame type {ftype}")
        except FrameError as exc:
            events.append((EV_ERROR, channel, exc.reply_code, exc.text))
            return events, pos
        pos += size + 8
    return events, pos


# ---------------------------------------------------------------- encoding


def _shortstr(value: str | bytes) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:  # bytes(5) would be five zero bytes
        raise TypeError(f"cannot encode {type(value).__name__} as a short string")
    if len(raw) > 255:
        raise ValueError("short string longer than 255 bytes")
    return bytes((len(raw),)) + raw


def _encode_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"t" + (b"\x01" if value else b"\x00")
    if isinstance(value, LongInt):
        return b"l" + struct.pack(">q", value)
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"I" + struct.pack(">i", value)
        if -(2**63) <= value < 2**63:
            return b"l" + struct.pack(">q", value)
        raise ValueError("integer out of range for a field table")
    if isinstance(value, float):
        return b"d" + struct.pack(">d", value)
    if isinstance(value, decimal.Decimal):
        exponent = value.normalize().as_tuple().exponent
        exp = -int(exponent) if isinstance(exponent, int) and exponent < 0 else 0
        return b"D" + struct.pack(">Bi", exp, int(value.scaleb(exp)))
    if isinstance(value, str):
        text = value.encode("utf-8")
        return b"S" + _U32.pack(len(text)) + text
    if isinstance(value, (bytes, bytearray, memoryview)):
        blob = bytes(value)
        return b"x" + _U32.pack(len(blob)) + blob
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return b"T" + _U64.pack(int(value.timestamp()))
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, (list, tuple)):
        body = b"".join(_encode_value(v) for v in value)
        return b"A" + _U32.pack(len(body)) + body
    if value is None:
        return b"V"
    raise TypeError(f"cannot encode {type(value).__name__} in a field table")


def encode_table(table: dict[str, Any]) -> bytes:
    """Encode a field table (4-byte size + entries) keeping value types as RabbitMQ sends them."""
    body = b"".join(_shortstr(k) + _encode_value(v) for k, v in table.items())
    return _U32.pack(len(body)) + body


def encode_properties(props: dict[str, Any]) -> bytes:
    """Encode a dict of basic properties into ``raw_props`` form (flags + property list)."""
    flags = 0
    parts: list[bytes] = []
    for i, name in enumerate(PROPERTY_NAMES):
        value = props.get(name)
        if value is None:
            continue
        flags |= 1 << (15 - i)
        if i == 2:
            parts.append(encode_table(value))
        elif i in (3, 4):
            parts.append(bytes((value & 0xFF,)))
        elif i == 9:
            if isinstance(value, datetime.datetime):
                if value.tzinfo is None:
                    value = value.replace(tzinfo=datetime.timezone.utc)
                value = int(value.timestamp())
            parts.append(_U64.pack(value))
        else:
            parts.append(_shortstr(value))
    return _U16.pack(flags) + b"".join(parts)


def _content_header(out: bytearray, channel: int, raw_props: bytes, body_size: int) -> None:
    out += _FRAME_HEAD.pack(FRAME_HEADER, channel, 12 + len(raw_props))
    out += _HEADER_HEAD.pack(60, 0, body_size)
    out += raw_props
    out.append(FRAME_END)


def _content(out: bytearray, channel: int, raw_props: bytes, body: bytes, frame_max: int) -> None:
    _content_header(out, channel, raw_props, len(body))
    chunk = (frame_max - 8) if frame_max else len(body) or 1
    mv = memoryview(body)
    for off in range(0, len(body), chunk):
        piece = mv[off : off + chunk]
        out += _FRAME_HEAD.pack(FRAME_BODY, channel, len(piece))
        out += piece
        out.append(FRAME_END)


def _check_frame_max(frame_max: int) -> None:
    # checked before anything is appended, so a refused call leaves ``out`` as it was
    if frame_max and frame_max < 9:
        raise ValueError(f"frame_max {frame_max} leaves no room for a body")


def _method(out: bytearray, channel: int, index: int, args: bytes) -> None:
    out += _METHOD_HEAD.pack(FRAME_METHOD, channel, 4 + len(args), index)
    out += args
    out.append(FRAME_END)


def encode_deliver(
    out: bytearray,
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    raw_props: bytes,
    body: bytes,
    frame_max: int,
) -> None:
    """Append basic.deliver + content header + body frames to ``out``."""
    _check_frame_max(frame_max)
    _method(out, channel, BASIC_DELIVER, _deliver_args(consumer_tag, delivery_tag, redelivered,
                                                      exchange, routing_key))
    _content(out, channel, raw_props, body, frame_max)


def _deliver_args(consumer_tag: str, delivery_tag: int, redelivered: bool, exchange: str,
                  routing_key: str) -> bytes:
    return (
        _shortstr(consumer_tag)
        + _U64.pack(delivery_tag)
        + (b"\x01" if redelivered else b"\x00")
        + _shortstr(exchange)
        + _shortstr(routing_key)
    )


def encode_deliver_head(
    out: bytearray,
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    raw_props: bytes,
    body_size: int,
) -> None:
    """Append basic.deliver + the content header of a ``body_size``-byte body to ``out``; the
    body frames are the caller's (a large body is written from the message itself)."""
    _method(out, channel, BASIC_DELIVER, _deliver_args(consumer_tag, delivery_tag, redelivered,
                                                      exchange, routing_key))
    _content_header(out, channel, bytes(raw_props), body_size)


def encode_get_ok(
    out: bytearray,
    channel: int,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    message_count: int,
    raw_props: bytes,
    body: bytes,
    frame_max: int,
) -> None:
    """Append basic.get-ok + content header + body frames to ``out``."""
    _check_frame_max(frame_max)
    args = (
        _U64.pack(delivery_tag)
        + (b"\x01" if redelivered else b"\x00")
        + _shortstr(exchange)
        + _shortstr(routing_key)
        + _U32.pack(message_count)
    )
    _method(out, channel, BASIC_GET_OK, args)
    _content(out, channel, raw_props, body, frame_max)


def encode_return(
    out: bytearray,
    channel: int,
    reply_code: int,
    reply_text: str,
    exchange: str,
    routing_key: str,
    raw_props: bytes,
    body: bytes,
    frame_max: int,
) -> None:
    """Append basic.return + content header + body frames to ``out``."""
    _check_frame_max(frame_max)
    args = (_U16.pack(reply_code) + _shortstr(reply_text) + _shortstr(exchange)
            + _shortstr(routing_key))
    _method(out, channel, BASIC_RETURN, args)
    _content(out, channel, raw_props, body, frame_max)


def encode_ack(out: bytearray, channel: int, delivery_tag: int, multiple: bool) -> None:
    """Append a basic.ack (publisher confirm) to ``out``."""
    _method(out, channel, BASIC_ACK, _U64.pack(delivery_tag) + (b"\x01" if multiple else b"\x00"))


def encode_nack(
    out: bytearray, channel: int, delivery_tag: int, multiple: bool, requeue: bool
) -> None:
    """Append a basic.nack (publisher confirm) to ``out``."""
    bits = (1 if multiple else 0) | (2 if requeue else 0)
    _method(out, channel, BASIC_NACK, _U64.pack(delivery_tag) + bytes((bits,)))


HEARTBEAT_FRAME = bytes((FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END))


def encode_heartbeat(out: bytearray) -> None:
    """Append a heartbeat frame to ``out``."""
    out += HEARTBEAT_FRAME


def body_buffer(size: int, extra: int = 0) -> tuple[bytearray, memoryview]:
    """``(body, view)``: room for a large body frame's payload of ``size`` bytes and ``extra``
    more (what follows it in the same read), and a writable view of it that the socket reads
    into (the compiled twin gives a bytes object read in place; here a bytearray, turned into
    bytes by ``finish_body``)."""
    if size < 0 or extra < 0:
        raise ValueError("negative size")
    body = bytearray(size + extra)
    return body, memoryview(body)


def finish_body(body: bytearray, size: int) -> bytes:
    """The payload ``body_buffer`` made room for, complete, as bytes: its first ``size``."""
    if size < 0 or size > len(body):
        raise ValueError("size out of range")
    with memoryview(body) as view:
        return bytes(view[:size])

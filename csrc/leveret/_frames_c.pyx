# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled frame codec: the twin of ``leveret._frames_py``, same functions, same results.

Every read from the wire is bounds-checked against the frame; a malformed frame or field
becomes an EV_ERROR event (never an exception, crash or hang). Deliveries are encoded straight
into the connection's output bytearray: one resize, then memcpy.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

import datetime as _datetime
import decimal as _decimal

from leveret._frames_common import (
    EV_ACK, EV_BODY, EV_ERROR, EV_HEADER, EV_HEARTBEAT, EV_METHOD, EV_NACK, EV_PUBLISH,
    EV_REJECT, FRAME_ERROR, PROPERTY_NAMES, UNEXPECTED_FRAME, FrameError,
)
# Encoding properties and tables is not a hot path (dead-lettering, tests): shared Python code.
from leveret._frames_py import HEARTBEAT_FRAME, encode_properties, encode_table

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    void Py_SET_SIZE(object o, Py_ssize_t size)
    object PyMemoryView_FromMemory(char* mem, Py_ssize_t size, int flags)
    int PyBUF_WRITE

__all__ = [
    "split_frames", "decode_properties", "encode_properties", "encode_table", "encode_deliver",
    "encode_deliver_head", "body_buffer", "finish_body",
    "encode_get_ok", "encode_return", "encode_ack", "encode_nack", "encode_heartbeat",
    "HEARTBEAT_FRAME", "FrameError",
]

DEF MAX_DEPTH = 64
DEF FRAME_END = 0xCE

cdef int _EV_METHOD = EV_METHOD
cdef object _UTC = _datetime.timezone.utc
cdef object _fromtimestamp = _datetime.datetime.fromtimestamp
cdef object _Decimal = _decimal.Decimal
cdef object _TEN = _decimal.Decimal(10)
cdef tuple _PROP_NAMES = tuple(PROPERTY_NAMES)
cdef double _MAX_TS = 253402300800.0  # year 10000: datetime's limit


# ------------------------------------------------------------------ raw readers

cdef inline uint16_t rd16(const unsigned char* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]

cdef inline uint32_t rd32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint64_t rd64(const unsigned char* p) noexcept nogil:
    return (<uint64_t>rd32(p) << 32) | rd32(p + 4)

cdef inline void wr16(unsigned char* p, uint16_t v) noexcept nogil:
    p[0] = v >> 8
    p[1] = v & 0xFF

cdef inline void wr32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF

cdef inline void wr64(unsigned char* p, uint64_t v) noexcept nogil:
    wr32(p, <uint32_t>(v >> 32))
    wr32(p + 4, <uint32_t>v)


cdef bint _utf8_ok(const unsigned char* p, Py_ssize_t n):
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] >= 0x80:
            break
    else:
        return True
    try:
        PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
    except UnicodeDecodeError:
        return False
    return True


cdef bint _ts_ok(uint64_t v):
    cdef double d = <double>v
    if (v >> 32) != 0:
        d = d / 1000.0
    return d < _MAX_TS


# ------------------------------------------------------------------ validation (no objects)

cdef Py_ssize_t _skip_value(const unsigned char* p, Py_ssize_t n, int depth) except -2:
    """Bytes taken by one typed field value at p (n available), or -1 if malformed."""
    cdef uint32_t size
    if n < 1:
        return -1
    cdef unsigned char t = p[0]
    p += 1
    n -= 1
    if t == b't' or t == b'b' or t == b'B':
        return 2 if n >= 1 else -1
    if t == b's' or t == b'u':
        return 3 if n >= 2 else -1
    if t == b'I' or t == b'i' or t == b'f':
        return 5 if n >= 4 else -1
    if t == b'l' or t == b'L' or t == b'd':
        return 9 if n >= 8 else -1
    if t == b'T':
        if n < 8 or not _ts_ok(rd64(p)):
            return -1
        return 9
    if t == b'D':
        return 6 if n >= 5 else -1
    if t == b'V' or t == 0:
        return 1
    if t == b'S' or t == b'x':
        if n < 4:
            return -1
        size = rd32(p)
        if size > <uint64_t>(n - 4):
            return -1
        return 5 + size
    if t == b'F' or t == b'A':
        if n < 4 or depth >= MAX_DEPTH:
            return -1
        size = rd32(p)
        if size > <uint64_t>(n - 4):
            return -1
        if t == b'F':
            if not _table_ok(p + 4, size, depth + 1):
                return -1
        elif not _array_ok(p + 4, size, depth + 1):
            return -1
        return 5 + size
    return -1


cdef bint _table_ok(const unsigned char* p, Py_ssize_t n, int depth) except -1:
    cdef Py_ssize_t pos = 0, klen, used
    while pos < n:
        klen = p[pos]
        if pos + 1 + klen > n or not _utf8_ok(p + pos + 1, klen):
            return False
        pos += 1 + klen
        used = _skip_value(p + pos, n - pos, depth)
        if used < 0:
            return False
        pos += used
    return True


cdef bint _array_ok(const unsigned char* p, Py_ssize_t n, int depth) except -1:
    cdef Py_ssize_t pos = 0, used
    while pos < n:
        used = _skip_value(p + pos, n - pos, depth)
        if used < 0:
            return False
        pos += used
    return True


cdef Py_ssize_t _skip_flags(const unsigned char* p, Py_ssize_t n, uint16_t* first) except -2:
    cdef Py_ssize_t pos = 0
    cdef uint16_t word
    cdef int words = 0
    while True:
        if pos + 2 > n:
            return -1
        word = rd16(p + pos)
        if words == 0:
            first[0] = word & 0xFFFE
        pos += 2
        words += 1
        if not word & 1:
            return pos
        if words >= 4:
            return -1


# ------------------------------------------------------------------ decoding to objects

cdef class _Cursor:
    cdef const unsigned char* p
    cdef Py_ssize_t pos
    cdef Py_ssize_t end

cdef inline object _need(_Cursor c, Py_ssize_t k):
    if k < 0 or c.pos + k > c.end:
        raise FrameError(FRAME_ERROR, "field runs past the end of the frame")
    return None

cdef object _shortstr(_Cursor c):
    _need(c, 1)
    cdef Py_ssize_t k = c.p[c.pos]
    _need(c, 1 + k)
    c.pos += 1 + k
    try:
        return PyUnicode_DecodeUTF8(<const char*>(c.p + c.pos - k), k, NULL)
    except UnicodeDecodeError:
        raise FrameError(FRAME_ERROR, "short string is not valid UTF-8") from None

cdef object _timestamp(_Cursor c):
    _need(c, 8)
    cdef uint64_t v = rd64(c.p + c.pos)
    c.pos += 8
    if not _ts_ok(v):
        raise FrameError(FRAME_ERROR, "timestamp out of range")
    if (v >> 32) != 0:
        return _fromtimestamp(v / 1000.0, tz=_UTC)
    return _fromtimestamp(v, tz=_UTC)

cdef object _table(_Cursor c, int depth):
    _need(c, 4)
    cdef Py_ssize_t size = rd32(c.p + c.pos)
    c.pos += 4
    _need(c, size)
    if depth >= MAX_DEPTH:
        raise FrameError(FRAME_ERROR, "field tables nested too deep")
    cdef Py_ssize_t saved_end = c.end
    c.end = c.pos + size
    cdef dict out = {}
    try:
        while c.pos < c.end:
            key = _shortstr(c)
            out[key] = _value(c, depth + 1)
    finally:
        c.end = saved_end
    return out

cdef object _array(_Cursor c, int depth):
    _need(c, 4)
    cdef Py_ssize_t size = rd32(c.p + c.pos)
    c.pos += 4
    _need(c, size)
    if depth >= MAX_DEPTH:
        raise FrameError(FRAME_ERROR, "field arrays nested too deep")
    cdef Py_ssize_t saved_end = c.end
    c.end = c.pos + size
    cdef list out = []
    try:
        while c.pos < c.end:
            out.append(_value(c, depth + 1))
    finally:
        c.end = saved_end
    return out

cdef object _value(_Cursor c, int depth):
    _need(c, 1)
    cdef unsigned char t = c.p[c.pos]
    c.pos += 1
    cdef const unsigned char* q = c.p + c.pos
    cdef uint32_t u32
    cdef uint64_t u64
    cdef float f32
    cdef double f64
    cdef Py_ssize_t k
    if t == b't':
        _need(c, 1); c.pos += 1
        return q[0] != 0
    if t == b'b':
        _need(c, 1); c.pos += 1
        return <int8_t>q[0]
    if t == b'B':
        _need(c, 1); c.pos += 1
        return <uint8_t>q[0]
    if t == b's':
        _need(c, 2); c.pos += 2
        return <int16_t>rd16(q)
    if t == b'u':
        _need(c, 2); c.pos += 2
        return rd16(q)
    if t == b'I':
        _need(c, 4); c.pos += 4
        return <int32_t>rd32(q)
    if t == b'i':
        _need(c, 4); c.pos += 4
        return rd32(q)
    if t == b'l' or t == b'L':
        _need(c, 8); c.pos += 8
        return <int64_t>rd64(q)
    if t == b'f':
        _need(c, 4); c.pos += 4
        u32 = rd32(q)
        memcpy(&f32, &u32, 4)
        return <double>f32
    if t == b'd':
        _need(c, 8); c.pos += 8
        u64 = rd64(q)
        memcpy(&f64, &u64, 8)
        return f64
    if t == b'D':
        _need(c, 5); c.pos += 5
        return _Decimal(<int32_t>rd32(q + 1)) * (_TEN ** -(<int>q[0]))
    if t == b'S':
        _need(c, 4)
        k = rd32(q)
        _need(c, 4 + k)
        c.pos += 4 + k
        try:
            return PyUnicode_DecodeUTF8(<const char*>(q + 4), k, NULL)
        except UnicodeDecodeError:
            return PyBytes_FromStringAndSize(<const char*>(q + 4), k)
    if t == b'x':
        _need(c, 4)
        k = rd32(q)
        _need(c, 4 + k)
        c.pos += 4 + k
        return bytearray(PyBytes_FromStringAndSize(<const char*>(q + 4), k))
    if t == b'A':
        return _array(c, depth)
    if t == b'T':
        return _timestamp(c)
    if t == b'F':
        return _table(c, depth)
    if t == b'V' or t == 0:
        return None
    raise FrameError(FRAME_ERROR, f"unknown field table value type {bytes([t])!r}")


def decode_properties(raw):
    """Decode ``raw_props`` (flags + property list) into a dict of the properties present."""
    cdef const unsigned char[::1] view = raw
    cdef _Cursor c = _Cursor()
    c.p = &view[0] if view.shape[0] else <const unsigned char*>b""
    c.pos = 0
    c.end = view.shape[0]
    cdef uint16_t flags = 0
    cdef Py_ssize_t used = _skip_flags(c.p, c.end, &flags)
    if used < 0:
        raise FrameError(FRAME_ERROR, "truncated property flags")
    c.pos = used
    cdef dict props = {}
    cdef int i
    for i in range(14):
        if not flags & (1 << (15 - i)):
            continue
        if i == 2:
            props[_PROP_NAMES[i]] = _table(c, 0)
        elif i == 3 or i == 4:
            _need(c, 1)
            props[_PROP_NAMES[i]] = c.p[c.pos]
            c.pos += 1
        elif i == 9:
            props[_PROP_NAMES[i]] = _timestamp(c)
        else:
            props[_PROP_NAMES[i]] = _shortstr(c)
    if c.pos != c.end:
        raise FrameError(FRAME_ERROR, f"content header has {c.end - c.pos} bytes after its "
                                      "property list")
    return props


# ------------------------------------------------------------------ header walk (hot)

cdef object _header_event(int channel, const unsigned char* p, Py_ssize_t size):
    """EV_HEADER tuple for a content header payload, or an EV_ERROR tuple."""
    if size < 14:
        return (EV_ERROR, channel, FRAME_ERROR, "content header frame too short")
    cdef uint16_t class_id = rd16(p)
    cdef uint64_t body_size = rd64(p + 4)
    cdef const unsigned char* q = p + 12
    cdef Py_ssize_t n = size - 12, pos, k
    cdef uint16_t flags = 0
    pos = _skip_flags(q, n, &flags)
    if pos < 0:
        return (EV_ERROR, channel, FRAME_ERROR, "truncated property flags")
    cdef int i, delivery_mode = 0, priority = 0
    expiration = None
    for i in range(14):
        if not flags & (1 << (15 - i)):
            continue
        if i == 2:  # headers table
            if pos + 4 > n:
                return (EV_ERROR, channel, FRAME_ERROR, "truncated headers table")
            k = rd32(q + pos)
            if k > n - pos - 4 or not _table_ok(q + pos + 4, k, 1):
                return (EV_ERROR, channel, FRAME_ERROR, "malformed headers table")
            pos += 4 + k
        elif i == 3 or i == 4:
            if pos + 1 > n:
                return (EV_ERROR, channel, FRAME_ERROR, "truncated property")
            if i == 3:
                delivery_mode = q[pos]
            else:
                priority = q[pos]
            pos += 1
        elif i == 9:
            if pos + 8 > n or not _ts_ok(rd64(q + pos)):
                return (EV_ERROR, channel, FRAME_ERROR, "bad timestamp property")
            pos += 8
        else:
            if pos + 1 > n:
                return (EV_ERROR, channel, FRAME_ERROR, "truncated property")
            k = q[pos]
            if pos + 1 + k > n or not _utf8_ok(q + pos + 1, k):
                return (EV_ERROR, channel, FRAME_ERROR, "malformed short string property")
            if i == 7:
                expiration = PyUnicode_DecodeUTF8(<const char*>(q + pos + 1), k, NULL)
            pos += 1 + k
    if pos != n:
        # the property list must fill the frame: bytes after it would reach consumers verbatim
        return (EV_ERROR, channel, FRAME_ERROR,
                f"content header has {n - pos} bytes after its property list")
    raw = PyBytes_FromStringAndSize(<const char*>q, n)
    return (EV_HEADER, channel, class_id, body_size, raw, delivery_mode, priority, expiration)


cdef object _decode_short(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos):
    """A short string at p[pos] (bounds-checked against n), or None when malformed."""
    if pos[0] + 1 > n:
        return None
    cdef Py_ssize_t k = p[pos[0]]
    if pos[0] + 1 + k > n:
        return None
    try:
        s = PyUnicode_DecodeUTF8(<const char*>(p + pos[0] + 1), k, NULL)
    except UnicodeDecodeError:
        return None
    pos[0] += 1 + k
    return s


cdef object _method_event(int channel, const unsigned char* p, Py_ssize_t size):
    if size < 4:
        return (EV_ERROR, channel, FRAME_ERROR, "method frame shorter than its method id")
    cdef uint32_t index = rd32(p)
    cdef Py_ssize_t pos = 4
    cdef uint64_t tag
    cdef unsigned char bits
    if index == 0x003C0028:  # basic.publish
        pos = 6  # skip reserved-1
        if size < 6:
            return (EV_ERROR, channel, FRAME_ERROR, "cannot decode basic.publish")
        exchange = _decode_short(p, size, &pos)
        if exchange is None:
            return (EV_ERROR, channel, FRAME_ERROR, "cannot decode basic.publish")
        routing_key = _decode_short(p, size, &pos)
        # exactly one octet of bits must follow: RabbitMQ refuses trailing bytes too
        if routing_key is None or pos + 1 != size:
            return (EV_ERROR, channel, FRAME_ERROR, "cannot decode basic.publish")
        bits = p[pos]
        return (EV_PUBLISH, channel, exchange, routing_key, (bits & 1) != 0, (bits & 2) != 0)
    if index == 0x003C0050 or index == 0x003C0078 or index == 0x003C005A:
        if size != 13:  # tag + bits, nothing more (RabbitMQ: "cannot decode")
            return (EV_ERROR, channel, FRAME_ERROR, "cannot decode acknowledgement")
        tag = rd64(p + 4)
        bits = p[12]
        if index == 0x003C0050:
            return (EV_ACK, channel, tag, (bits & 1) != 0)
        if index == 0x003C0078:
            return (EV_NACK, channel, tag, (bits & 1) != 0, (bits & 2) != 0)
        return (EV_REJECT, channel, tag, (bits & 1) != 0)
    return (_EV_METHOD, channel, index, PyBytes_FromStringAndSize(<const char*>(p + 4), size - 4))


def split_frames(buf, Py_ssize_t start, Py_ssize_t end, Py_ssize_t frame_max,
                 Py_ssize_t budget=0):
    """Decode every complete frame in ``buf[start:end]``, none that starts ``budget`` bytes
    or more after ``start`` (0: no budget); see ``_frames_common`` and the pure twin.

    Returns ``(events, consumed_up_to)``.
    """
    cdef const unsigned char[::1] view = buf
    if end > view.shape[0] or start < 0 or start > end:
        raise ValueError("start/end outside the buffer")
    cdef const unsigned char* base = &view[0] if view.shape[0] else NULL
    cdef list events = []
    cdef Py_ssize_t pos = start
    cdef Py_ssize_t size
    cdef int ftype, channel
    cdef const unsigned char* p
    cdef Py_ssize_t stop = start + budget if budget > 0 else end
    while end - pos >= 7 and pos < stop:
        p = base + pos
        ftype = p[0]
        channel = rd16(p + 1)
        size = rd32(p + 3)
        if frame_max and size + 8 > frame_max:
            events.append((EV_ERROR, channel, FRAME_ERROR,
                           f"frame size {size + 8} exceeds frame_max {frame_max}"))
            return events, pos
        if end - pos < size + 8:
            break
        if p[7 + size] != FRAME_END:
            events.append((EV_ERROR, channel, FRAME_ERROR, "frame end octet is not 0xCE"))
            return events, pos
        if ftype == 1:
            ev = _method_event(channel, p + 7, size)
        elif ftype == 3:
            ev = (EV_BODY, channel, PyBytes_FromStringAndSize(<const char*>(p + 7), size))
        elif ftype == 2:
            ev = _header_event(channel, p + 7, size)
        elif ftype == 8:
            # as RabbitMQ 3.10: a payload is an unknown frame (501), a channel is 505
            if size != 0:
                ev = (EV_ERROR, channel, FRAME_ERROR, "heartbeat frame with a payload")
            elif channel != 0:
                ev = (EV_ERROR, channel, UNEXPECTED_FRAME, "heartbeat frame on a non-zero channel")
            else:
                ev = (EV_HEARTBEAT, channel)
        else:
            ev = (EV_ERROR, channel, FRAME_ERROR, f"unknown frame type {ftype}")
        events.append(ev)
        if (<tuple>ev)[0] == EV_ERROR:
            return events, pos
        pos += size + 8
    return events, pos


# ------------------------------------------------------------------ encoding (hot)

cdef object _name(object v):
    """A short-string argument as the pure twin takes it: str, or bytes-like (kept as bytes)."""
    if isinstance(v, (str, bytes)):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"cannot encode {type(v).__name__} as a short string")


cdef bytes _blob(object v):
    """Properties or a body as bytes: bytes pass through, other buffers are copied once."""
    if isinstance(v, bytes):
        return <bytes>v
    return bytes(memoryview(v))


cdef inline const char* _short(object s, Py_ssize_t* n) except NULL:
    """UTF-8 of a str (cached by CPython) or the bytes themselves; refuses over 255 bytes."""
    cdef const char* p
    if isinstance(s, str):
        p = PyUnicode_AsUTF8AndSize(s, n)
    else:
        p = PyBytes_AS_STRING(s)
        n[0] = PyBytes_GET_SIZE(s)
    if n[0] > 255:
        raise ValueError("short string longer than 255 bytes")
    return p


cdef unsigned char* _grow(bytearray out, Py_ssize_t extra) except NULL:
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, n + extra)
    return <unsigned char*>PyByteArray_AS_STRING(out) + n


cdef inline Py_ssize_t _content_size(Py_ssize_t nprops, Py_ssize_t nbody, Py_ssize_t chunk):
    cdef Py_ssize_t frames = (nbody + chunk - 1) // chunk if nbody else 0
    return 20 + nprops + frames * 8 + nbody


cdef inline unsigned char* _put_short(unsigned char* w, const char* s, Py_ssize_t n):
    w[0] = <unsigned char>n
    memcpy(w + 1, s, n)
    return w + 1 + n


cdef unsigned char* _put_content(unsigned char* w, uint16_t channel, bytes raw_props,
                                 bytes body, Py_ssize_t chunk):
    cdef Py_ssize_t nprops = PyBytes_GET_SIZE(raw_props)
    cdef Py_ssize_t nbody = PyBytes_GET_SIZE(body)
    cdef const char* b = PyBytes_AS_STRING(body)
    cdef Py_ssize_t off = 0, piece
    w[0] = 2
    wr16(w + 1, channel)
    wr32(w + 3, <uint32_t>(12 + nprops))
    wr16(w + 7, 60)
    wr16(w + 9, 0)
    wr64(w + 11, <uint64_t>nbody)
    memcpy(w + 19, PyBytes_AS_STRING(raw_props), nprops)
    w[19 + nprops] = FRAME_END
    w += 20 + nprops
    while off < nbody:
        piece = nbody - off
        if piece > chunk:
            piece = chunk
        w[0] = 3
        wr16(w + 1, channel)
        wr32(w + 3, <uint32_t>piece)
        memcpy(w + 7, b + off, piece)
        w[7 + piece] = FRAME_END
        w += 8 + piece
        off += piece
    return w


cdef inline Py_ssize_t _chunk(Py_ssize_t frame_max, Py_ssize_t nbody) except -1:
    """Body bytes per frame: frame_max less 8 bytes of framing; 0 means unbounded."""
    if frame_max:
        if frame_max < 9:
            raise ValueError(f"frame_max {frame_max} leaves no room for a body")
        return frame_max - 8
    return nbody if nbody else 1


cdef unsigned char* _put_deliver(bytearray out, uint16_t channel, object consumer_tag,
                                 uint64_t delivery_tag, bint redelivered, object exchange,
                                 object routing_key, Py_ssize_t extra) except NULL:
    """Append the basic.deliver method frame and room for ``extra`` more bytes; returns
    where those begin."""
    consumer_tag, exchange, routing_key = _name(consumer_tag), _name(exchange), _name(routing_key)
    cdef Py_ssize_t nt, ne, nr
    cdef const char* t = _short(consumer_tag, &nt)
    cdef const char* e = _short(exchange, &ne)
    cdef const char* r = _short(routing_key, &nr)
    cdef Py_ssize_t args = 1 + nt + 8 + 1 + 1 + ne + 1 + nr
    cdef unsigned char* w = _grow(out, 8 + 4 + args + extra)
    w[0] = 1
    wr16(w + 1, channel)
    wr32(w + 3, <uint32_t>(4 + args))
    wr32(w + 7, 0x003C003C)
    w = _put_short(w + 11, t, nt)
    wr64(w, delivery_tag)
    w[8] = 1 if redelivered else 0
    w = _put_short(w + 9, e, ne)
    w = _put_short(w, r, nr)
    w[0] = FRAME_END
    return w + 1


def encode_deliver(bytearray out, uint16_t channel, consumer_tag, uint64_t delivery_tag,
                   bint redelivered, exchange, routing_key, raw_props, body,
                   Py_ssize_t frame_max):
    """Append basic.deliver + content header + body frames to ``out``."""
    cdef bytes props = _blob(raw_props), data = _blob(body)
    cdef Py_ssize_t chunk = _chunk(frame_max, PyBytes_GET_SIZE(data))
    cdef unsigned char* w = _put_deliver(
        out, channel, consumer_tag, delivery_tag, redelivered, exchange, routing_key,
        _content_size(PyBytes_GET_SIZE(props), PyBytes_GET_SIZE(data), chunk))
    _put_content(w, channel, props, data, chunk)


def encode_deliver_head(bytearray out, uint16_t channel, consumer_tag, uint64_t delivery_tag,
                        bint redelivered, exchange, routing_key, raw_props,
                        uint64_t body_size):
    """Append basic.deliver + the content header of a ``body_size``-byte body to ``out``; the
    body frames are the caller's (a large body is written from the message itself)."""
    cdef bytes props = _blob(raw_props)
    cdef Py_ssize_t nprops = PyBytes_GET_SIZE(props)
    cdef unsigned char* w = _put_deliver(
        out, channel, consumer_tag, delivery_tag, redelivered, exchange, routing_key,
        20 + nprops)
    w[0] = 2
    wr16(w + 1, channel)
    wr32(w + 3, <uint32_t>(12 + nprops))
    wr16(w + 7, 60)
    wr16(w + 9, 0)
    wr64(w + 11, body_size)
    memcpy(w + 19, PyBytes_AS_STRING(props), nprops)
    w[19 + nprops] = FRAME_END


def encode_get_ok(bytearray out, uint16_t channel, uint64_t delivery_tag, bint redelivered,
                  exchange, routing_key, uint32_t message_count, raw_props, body,
                  Py_ssize_t frame_max):
    """Append basic.get-ok + content header + body frames to ``out``."""
    exchange, routing_key = _name(exchange), _name(routing_key)
    cdef bytes props = _blob(raw_props), data = _blob(body)
    cdef Py_ssize_t ne, nr
    cdef const char* e = _short(exchange, &ne)
    cdef const char* r = _short(routing_key, &nr)
    cdef Py_ssize_t args = 8 + 1 + 1 + ne + 1 + nr + 4
    cdef Py_ssize_t chunk = _chunk(frame_max, PyBytes_GET_SIZE(data))
    cdef unsigned char* w = _grow(out, 8 + 4 + args + _content_size(
        PyBytes_GET_SIZE(props), PyBytes_GET_SIZE(data), chunk))
    w[0] = 1
    wr16(w + 1, channel)
    wr32(w + 3, <uint32_t>(4 + args))
    wr32(w + 7, 0x003C0047)
    wr64(w + 11, delivery_tag)
    w[19] = 1 if redelivered else 0
    w = _put_short(w + 20, e, ne)
    w = _put_short(w, r, nr)
    wr32(w, message_count)
    w[4] = FRAME_END
    _put_content(w + 5, channel, props, data, chunk)


def encode_return(bytearray out, uint16_t channel, uint16_t reply_code, reply_text,
                  exchange, routing_key, raw_props, body, Py_ssize_t frame_max):
    """Append basic.return + content header + body frames to ``out``."""
    reply_text, exchange, routing_key = _name(reply_text), _name(exchange), _name(routing_key)
    cdef bytes props = _blob(raw_props), data = _blob(body)
    cdef Py_ssize_t nt, ne, nr
    cdef const char* t = _short(reply_text, &nt)
    cdef const char* e = _short(exchange, &ne)
    cdef const char* r = _short(routing_key, &nr)
    cdef Py_ssize_t args = 2 + 1 + nt + 1 + ne + 1 + nr
    cdef Py_ssize_t chunk = _chunk(frame_max, PyBytes_GET_SIZE(data))
    cdef unsigned char* w = _grow(out, 8 + 4 + args + _content_size(
        PyBytes_GET_SIZE(props), PyBytes_GET_SIZE(data), chunk))
    w[0] = 1
    wr16(w + 1, channel)
    wr32(w + 3, <uint32_t>(4 + args))
    wr32(w + 7, 0x003C0032)
    wr16(w + 11, reply_code)
    w = _put_short(w + 13, t, nt)
    w = _put_short(w, e, ne)
    w = _put_short(w, r, nr)
    w[0] = FRAME_END
    _put_content(w + 1, channel, props, data, chunk)


cdef void _put_confirm(bytearray out, uint16_t channel, uint32_t index, uint64_t tag,
                       unsigned char bits) except *:
    cdef unsigned char* w = _grow(out, 21)
    w[0] = 1
    wr16(w + 1, channel)
    wr32(w + 3, 13)
    wr32(w + 7, index)
    wr64(w + 11, tag)
    w[19] = bits
    w[20] = FRAME_END


def encode_ack(bytearray out, uint16_t channel, uint64_t delivery_tag, bint multiple):
    """Append a basic.ack (publisher confirm) to ``out``."""
    _put_confirm(out, channel, 0x003C0050, delivery_tag, 1 if multiple else 0)


def encode_nack(bytearray out, uint16_t channel, uint64_t delivery_tag, bint multiple,
                bint requeue):
    """Append a basic.nack (publisher confirm) to ``out``."""
    _put_confirm(out, channel, 0x003C0078, delivery_tag,
                 (1 if multiple else 0) | (2 if requeue else 0))


def encode_heartbeat(bytearray out):
    """Append a heartbeat frame to ``out``."""
    out += HEARTBEAT_FRAME


# ------------------------------------------------------------------ large bodies, read in place

def body_buffer(Py_ssize_t size, Py_ssize_t extra=0):
    """``(body, view)``: a new bytes object for a large body frame's payload of ``size`` bytes,
    and a writable view of it that the socket reads into, so that the payload is copied from
    the kernel straight into the message's bytes. The view has ``extra`` bytes more, for what
    follows the payload in the same read (the frame end, the next frames); it holds no
    reference: keep ``body`` while it lives, release it once the payload is in, and use
    ``body`` only through ``finish_body``; until then nothing else has seen the object."""
    if size < 0 or extra < 0:
        raise ValueError("negative size")
    body = PyBytes_FromStringAndSize(NULL, size + extra)
    return body, PyMemoryView_FromMemory(PyBytes_AS_STRING(body), size + extra, PyBUF_WRITE)


def finish_body(body, Py_ssize_t size):
    """The body ``body_buffer`` made, complete: the bytes object itself, cut to ``size`` bytes
    (in place: nothing has seen it, so its length and hash are not known anywhere; the room
    beyond stays allocated with it, at most the ``extra`` asked for)."""
    if size < 0 or size > PyBytes_GET_SIZE(body):
        raise ValueError("size out of range")
    if size != PyBytes_GET_SIZE(body):
        Py_SET_SIZE(body, size)
        PyBytes_AS_STRING(body)[size] = 0  # bytes objects end in a NUL
    return body

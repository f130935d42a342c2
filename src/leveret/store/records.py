"""The on-disk records of the message log (store format 2).

A data segment ``messages/NNNNNNNN.log`` holds PUBLISH records only, appended, never rewritten::

    record   u32 length | u32 crc32(payload) | payload
    payload  u8 type (1) | u8 flags | u8 delivery_mode | u8 priority | u64 order | u32 body_size
             | u64 enqueued (wall clock, ms since the epoch) | shortstr vhost | shortstr queue
             | shortstr exchange | shortstr routing_key
             | [shortstr expiration, if flags & EXPIRES]
             | [u16 n | n x (u32 size | utf-8 key), if flags & KEYS] | u32 props_size | props | body

    flags    TRANSIENT  written only to page a message out of memory: never recovered
             MOVED      a copy made by compaction (see compaction.py)
             EXPIRES    the expiration property follows the routing key
             KEYS       the message's CC and BCC routing keys follow (sender_selected.py):
                        BCC is gone from its headers, but dead-lettering still routes by it

A message is named by where its record starts: ``store_id = segment << 32 | offset``. ``order``
counts publishes across restarts and gives recovery the queue order back (compaction moves old
records into new segments). ``enqueued`` lets a recovered message's TTL count from when it
entered its queue, not from the restart (RabbitMQ keeps expiry times on disk too).

What happened to a record afterwards goes to its own segment's marks file
``messages/NNNNNNNN.marks``: fixed 9-byte records ``u32 crc32(kind, offset) | u8 kind |
u32 offset``, kind REMOVE (acked, dropped, purged) or DELIVERED (flagged redelivered at a
clean shutdown: it comes back so). Marks
name only records of their own segment, so a segment and its marks are deleted together and
never matter to any other segment.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

from ..errors import ChannelError
from ..message import Message
from ..queue_args import parse_expiration

log = logging.getLogger("leveret.store")

PUBLISH = 1
REMOVE, DELIVERED = 2, 3
TRANSIENT, MOVED, EXPIRES, KEYS = 1, 2, 4, 8

HEAD = struct.Struct(">II")  # length, crc32(payload)
# type, flags, delivery_mode, priority, order, body_size, enqueued ms
FIXED = struct.Struct(">BBBBQIQ")
FIXED_AT = HEAD.size
NAMES_AT = HEAD.size + FIXED.size  # where the vhost name starts, from the record start
MARK = struct.Struct(">IBI")  # crc32(kind, offset), kind, offset
_MARK_BODY = struct.Struct(">BI")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
MARK_SIZE = MARK.size
OFFSET_MASK = (1 << 32) - 1

_shorts: dict[str, bytes] = {}  # exchange names and routing keys repeat: encode once
_names: dict[bytes, str] = {}  # and decode once


def short(s: str) -> bytes:
    raw = _shorts.get(s)
    if raw is None:
        b = s.encode("utf-8")
        raw = bytes((len(b),)) + b
        if len(_shorts) < 65536:
            _shorts[s] = raw
    return raw


def _name(raw: bytes) -> str:
    name = _names.get(raw)
    if name is None:
        name = raw.decode("utf-8")
        if len(_names) < 65536:
            _names[raw] = name
    return name


def publish_parts(flags: int, msg: Message, order: int, queue_key: bytes, stamp: int
                  ) -> tuple[bytes, int]:
    """(everything of the payload but the body, crc32 of the whole payload)."""
    expiration = msg.expiration
    props = msg.raw_props
    body = msg.body
    tail = b""
    if expiration is not None:
        flags |= EXPIRES
        tail = short(expiration)
    keys = msg.extra_routing_keys
    if keys:
        flags |= KEYS
        encoded = [k.encode("utf-8", "surrogateescape") for k in keys]
        tail += _U16.pack(len(encoded)) + b"".join(_U32.pack(len(k)) + k for k in encoded)
    tail += _U32.pack(len(props))
    head = b"".join((FIXED.pack(PUBLISH, flags, msg.delivery_mode or 0, min(msg.priority or 0, 255),
                                order, len(body), stamp),
                     queue_key, short(msg.exchange), short(msg.routing_key), tail, props))
    return head, zlib.crc32(body, zlib.crc32(head))


def mark(kind: int, offset: int) -> bytes:
    body = _MARK_BODY.pack(kind, offset)
    return _U32.pack(zlib.crc32(body)) + body


def with_flag(record: bytes, flag: int) -> bytes:
    """The same record with ``flag`` set (and its checksum redone)."""
    payload = bytearray(record[HEAD.size :])
    payload[1] |= flag
    return HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def decode_message(data: bytes | bytearray | memoryview, pos: int
                   ) -> tuple[int, int, Message, int]:
    """(flags, order, message, enqueued ms) of the record starting at ``pos``; ValueError if it
    is damaged."""
    if len(data) - pos < NAMES_AT:
        raise ValueError("truncated record")
    length, crc = HEAD.unpack_from(data, pos)
    start = pos + HEAD.size
    end = start + length
    if end > len(data):
        raise ValueError("truncated record")
    if zlib.crc32(data[start:end]) != crc:
        raise ValueError("checksum mismatch")
    kind, flags, mode, prio, order, body_size, stamp = FIXED.unpack_from(data, start)
    if kind != PUBLISH:
        raise ValueError(f"not a message record (type {kind})")
    p = start + FIXED.size
    names = []
    for _ in range(5 if flags & EXPIRES else 4):
        n = data[p]
        names.append(_name(bytes(data[p + 1 : p + 1 + n])))
        p += 1 + n
    keys: tuple[str, ...] = ()
    if flags & KEYS:
        (count,) = _U16.unpack_from(data, p)
        p += 2
        found = []
        for _ in range(count):
            (n,) = _U32.unpack_from(data, p)
            found.append(bytes(data[p + 4 : p + 4 + n]).decode("utf-8", "surrogateescape"))
            p += 4 + n
        keys = tuple(found)
    (props_size,) = _U32.unpack_from(data, p)
    p += 4
    props = bytes(data[p : p + props_size])
    p += props_size
    if end - p != body_size:
        raise ValueError("body size mismatch")
    body = bytes(data[p:end])
    msg = Message(names[2], names[3], props, body, mode, prio,
                  names[4] if flags & EXPIRES else None)
    if msg.expiration is not None:  # as the publish path does: checked there already
        try:
            msg.ttl = parse_expiration(msg.expiration)
        except ChannelError as exc:
            raise ValueError(f"bad expiration: {exc}") from None
    if keys:
        msg.extra_routing_keys = keys
    return flags, order, msg, stamp


def record_length(data: bytes | bytearray | memoryview, pos: int) -> int:
    """Bytes of the record starting at ``pos`` (header included), from its header alone."""
    return HEAD.size + int(_U32.unpack_from(data, pos)[0])


def valid_at(data: bytes | memoryview, pos: int) -> bool:
    if len(data) - pos < NAMES_AT:
        return False
    length, crc = HEAD.unpack_from(data, pos)
    end = pos + HEAD.size + length
    return (length >= FIXED.size and end <= len(data)
            and zlib.crc32(data[pos + HEAD.size : end]) == crc)


def past_damage(path: Path, data: bytes, pos: int) -> int | None:
    """The record at ``pos`` of a data segment is not good. If a good record follows it, the
    damage was local: log it and return where to go on. Otherwise cut the segment there (the
    file is truncated, so the damage is logged once) and return None."""
    size = len(data)
    if size - pos >= NAMES_AT:
        length, _ = HEAD.unpack_from(data, pos)
        end = pos + HEAD.size + length
        if length >= FIXED.size and end <= size and (end == size or valid_at(data, end)):
            log.warning("store: %s: bad record at byte %d skipped; the records around it are "
                        "recovered", path.name, pos)
            return end
        reason = "truncated record" if end > size else "bad record"
    else:
        reason = "truncated record"
    log.warning("store: %s damaged at byte %d of %d (%s); recovered the records before it and "
                "cut the rest", path.name, pos, size, reason)
    _truncate(path, pos)
    return None


def read_marks(path: Path) -> tuple[set[int], set[int]]:
    """(removed offsets, delivered offsets) from a marks file; damaged marks are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set(), set()
    removed: set[int] = set()
    delivered: set[int] = set()
    size = len(data) - len(data) % MARK_SIZE
    view = memoryview(data)
    bad = 0
    unpack = MARK.unpack_from
    crc32 = zlib.crc32
    for pos in range(0, size, MARK_SIZE):
        crc, kind, offset = unpack(data, pos)
        if crc32(view[pos + 4 : pos + MARK_SIZE]) != crc:
            bad += 1
        elif kind == REMOVE:
            removed.add(offset)
        elif kind == DELIVERED:
            delivered.add(offset)
        else:
            bad += 1
    if bad:
        log.warning("store: %s: %d damaged marks skipped", path.name, bad)
    if size != len(data):
        log.warning("store: %s: torn mark at byte %d cut", path.name, size)
        _truncate(path, size)
    return removed, delivered


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())

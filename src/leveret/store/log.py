"""The message log: append-only segments of checksummed records.

Record: ``u32 length | u32 crc32(payload) | payload`` where payload starts with a type byte.

    PUBLISH    u64 store_id, shortstr vhost, shortstr queue, shortstr exchange,
               shortstr routing_key, u32+bytes raw_props, u32+bytes body
    REMOVE     u64 store_id          (acked, dropped, purged: the message is gone)
    DELIVERED  u64 store_id          (handed to a consumer: comes back redelivered)
    CLEAN      (nothing)             (written last on a clean shutdown)

Segments are ``NNNNNNNN.log``; a new one starts past ``segment_bytes``. A segment whose
messages are all removed is deleted. Reading stops at a torn or corrupt record, which is
logged and cut off, so a crash mid-write costs only the unconfirmed tail.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("leveret.store")

PUBLISH, REMOVE, DELIVERED, CLEAN = 1, 2, 3, 4
_HEAD = struct.Struct(">II")
_ID = struct.Struct(">BQ")
_U32 = struct.Struct(">I")


@dataclass(slots=True)
class Published:
    store_id: int
    vhost: str
    queue: str
    exchange: str
    routing_key: str
    raw_props: bytes
    body: bytes
    segment: int = 0
    delivered: bool = False


def _short(s: str) -> bytes:
    raw = s.encode("utf-8")
    return bytes((len(raw),)) + raw


def encode_publish(store_id: int, vhost: str, queue: str, exchange: str, routing_key: str,
                   raw_props: bytes, body: bytes) -> bytes:
    payload = b"".join((
        _ID.pack(PUBLISH, store_id), _short(vhost), _short(queue), _short(exchange),
        _short(routing_key), _U32.pack(len(raw_props)), raw_props, _U32.pack(len(body)), body,
    ))
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def encode_marker(kind: int, store_id: int = 0) -> bytes:
    payload = _ID.pack(kind, store_id) if kind != CLEAN else bytes((CLEAN,))
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


_Q = struct.Struct(">Q")
_names: dict[bytes, str] = {}  # vhost, queue, exchange and routing-key names repeat: decode once


def _name(raw: bytes) -> str:
    name = _names.get(raw)
    if name is None:
        name = raw.decode("utf-8")
        if len(_names) < 65536:
            _names[raw] = name
    return name


def read_segment(path: Path) -> Iterator[tuple[int, object]]:
    """(kind, Published | store_id | None) for each good record; cuts the file at damage."""
    data = path.read_bytes()
    view = memoryview(data)
    pos = 0
    size = len(data)
    while pos < size:
        reason = ""
        if size - pos < _HEAD.size:
            reason = "truncated record header"
        else:
            length, crc = _HEAD.unpack_from(data, pos)
            start = pos + _HEAD.size
            end = start + length
            if end > size:
                reason = "truncated record"
            elif not length or zlib.crc32(view[start:end]) != crc:
                reason = "checksum mismatch"
            else:
                try:
                    yield _decode(data, start, end)
                except (ValueError, UnicodeDecodeError, struct.error, IndexError) as exc:
                    reason = f"bad record ({exc})"
        if reason:
            log.warning("store: %s damaged at byte %d of %d (%s); recovered the records before "
                        "it and cut the rest", path.name, pos, size, reason)
            with open(path, "r+b") as f:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())
            return
        pos = end


def _decode(data: bytes, pos: int, end: int) -> tuple[int, object]:
    kind = data[pos]
    if kind == CLEAN:
        return CLEAN, None
    if end - pos < 9:
        raise ValueError("record too short")
    (store_id,) = _Q.unpack_from(data, pos + 1)
    if kind in (REMOVE, DELIVERED):
        return kind, store_id
    if kind != PUBLISH:
        raise ValueError(f"unknown record type {kind}")
    pos += 9
    names = []
    for _ in range(4):
        n = data[pos]
        stop = pos + 1 + n
        if stop > end:
            raise ValueError("name runs past the record")
        names.append(_name(data[pos + 1 : stop]))
        pos = stop
    blobs = []
    for _ in range(2):
        if pos + 4 > end:
            raise ValueError("length runs past the record")
        (n,) = _U32.unpack_from(data, pos)
        stop = pos + 4 + n
        if stop > end:
            raise ValueError("field runs past the record")
        blobs.append(data[pos + 4 : stop])
        pos = stop
    return PUBLISH, Published(store_id, names[0], names[1], names[2], names[3], blobs[0],
                              blobs[1])


class SegmentedLog:
    """Appends go to the newest segment; old segments are deleted once nothing in them lives."""

    def __init__(self, directory: Path, segment_bytes: int = 64 * 1024 * 1024) -> None:
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.live: dict[int, int] = {}  # segment number -> live messages in it
        self.current = 0
        self.size = 0
        self.fd = -1

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.log") if p.stem.isdigit())

    def path(self, number: int) -> Path:
        return self.dir / f"{number:08d}.log"

    def open_new(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.current += 1
        self.fd = os.open(self.path(self.current), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = 0
        self.live.setdefault(self.current, 0)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def sync(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)

    def collect(self) -> None:
        """Delete dead segments, oldest first, up to the first with live messages.

        Only the oldest go: a newer segment may hold the REMOVE records of messages in an
        older one, so deleting it first would bring those messages back on recovery.
        """
        while self.live:
            oldest = min(self.live)
            if oldest == self.current or self.live[oldest] > 0:
                return
            del self.live[oldest]
            try:
                self.path(oldest).unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

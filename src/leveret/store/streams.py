"""A stream's log: messages in chunks, chunks in segments, as osiris keeps RabbitMQ's streams.

Every message gets the next offset (0, 1, 2, ...). What is appended during one event-loop turn
becomes one chunk, written at the end of the turn: the chunk is the unit of ``last`` (a
consumer starting at ``last`` gets the whole last chunk) and of timestamps (each chunk has the
wall-clock time it was written; a timestamp offset starts at the first chunk written at or
after it). Chunks go to the current segment until it holds ``max_segment_bytes`` (or 256,000
chunks, as osiris); then a new segment starts, named by its first offset, and retention is
evaluated: the oldest segments go while the stream is over ``x-max-length-bytes`` or while
their newest chunk is older than ``x-max-age`` (the newest segment always stays). Retention is
therefore segment-granular, as in RabbitMQ.

Layout, with a data directory (``DIR/streams/<hash of vhost and name>/``)::

    NAME                             the vhost and the stream's name (for people)
    NNNNNNNNNNNNNNNNNNNN.segment     "LVSTRM1\\n", then chunks
    NNNNNNNNNNNNNNNNNNNN.index       one 24-byte entry per chunk of that segment
    chunk   u8 magic 0x5A | u8 version 1 | u16 0 | u32 count | u64 first offset
            | i64 timestamp ms | u32 data size | u32 crc32(data) | data
    data    count x (u32 size | shortstr exchange | shortstr routing key | u32 props size
            | props | body)
    index   u64 first offset | i64 timestamp ms | u32 position | u32 count

Chunks reach the OS at the end of the turn they were appended in and are not fsynced, as
RabbitMQ's streams are not (rabbitmq.com/docs/streams: data safety comes from replication):
a process crash loses nothing written, a machine crash may lose the last writes. At start a
torn chunk at the end of the newest segment is cut, and chunks missing from the index are
indexed again. Only segment summaries, the index of nothing and a few recently read chunks
live in memory: a long stream stays on disk. Without a data directory the same structures are
kept in memory (``MemoryBytes``), so retention works the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import time
import zlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..deadletter import join_properties, join_table, split_properties, split_table
from ..message import Message
from . import private

log = logging.getLogger("leveret.store")

CHUNK = struct.Struct(">BBHIQqII")  # magic, version, 0, count, first offset, ts, size, crc
INDEX = struct.Struct(">QqII")  # first offset, timestamp, position, count
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
MAGIC, VERSION = 0x5A, 1
SEGMENT_HEADER = b"LVSTRM1\n"
MAX_SEGMENT_CHUNKS = 256_000  # osiris's default max_segment_size_chunks
CHUNK_LIMIT = 1 << 20  # bytes of messages per chunk before another starts in the same turn
CACHE_BYTES = 4 << 20  # decoded chunks kept for readers

_HEADERS_BIT = 1 << 13
_OFFSET_KEY = b"x-stream-offset"


def with_offset_header(raw_props: bytes, offset: int) -> bytes:
    """The properties with ``x-stream-offset`` (a long) in their headers, which RabbitMQ keeps
    sorted by key; an ``x-stream-offset`` the publisher set is replaced."""
    value = b"l" + _I64.pack(offset)
    flags = raw_props[0] << 8 | raw_props[1]
    if not flags & _HEADERS_BIT and not flags & 1:
        # no headers yet: insert a one-entry table after content-type and content-encoding
        pos = 2
        for bit in (1 << 15, 1 << 14):
            if flags & bit:
                pos += 1 + raw_props[pos]
        flags |= _HEADERS_BIT
        return (bytes((flags >> 8, flags & 0xFF)) + raw_props[2:pos]
                + join_table([(_OFFSET_KEY, value)]) + raw_props[pos:])
    props = split_properties(raw_props)
    table = split_table(props[2]) if 2 in props else {}
    table[_OFFSET_KEY] = value
    props[2] = join_table(sorted(table.items()))
    return join_properties(props)


def encode_entry(msg: Message) -> bytes:
    ex = msg.exchange.encode("utf-8")
    rk = msg.routing_key.encode("utf-8")
    props = msg.raw_props
    size = 1 + len(ex) + 1 + len(rk) + 4 + len(props) + len(msg.body)
    return b"".join((_U32.pack(size), bytes((len(ex),)), ex, bytes((len(rk),)), rk,
                     _U32.pack(len(props)), props, msg.body))


def decode_entries(data: bytes, first: int) -> list[tuple[int, Message]]:
    """The messages of a chunk's data, each with its offset and the ``x-stream-offset``
    header in its properties (ready to deliver)."""
    out = []
    pos = 0
    offset = first
    end = len(data)
    while pos < end:
        (size,) = _U32.unpack_from(data, pos)
        p = pos + 4
        stop = p + size
        n = data[p]
        exchange = data[p + 1 : p + 1 + n].decode("utf-8")
        p += 1 + n
        n = data[p]
        routing_key = data[p + 1 : p + 1 + n].decode("utf-8")
        p += 1 + n
        (props_size,) = _U32.unpack_from(data, p)
        p += 4
        props = data[p : p + props_size]
        body = data[p + props_size : stop]
        out.append((offset, Message(exchange, routing_key, with_offset_header(props, offset),
                                    body)))
        offset += 1
        pos = stop
    return out


class Bytes(Protocol):
    """Where a segment's data or index lives: a file or a bytearray."""

    size: int

    def append(self, data: bytes) -> None: ...
    def read(self, pos: int, n: int) -> bytes: ...
    def truncate(self, size: int) -> None: ...
    def close(self) -> None: ...


class MemoryBytes:
    __slots__ = ("buf", "size")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.size = 0

    def append(self, data: bytes) -> None:
        self.buf += data
        self.size += len(data)

    def read(self, pos: int, n: int) -> bytes:
        return bytes(self.buf[pos : pos + n])

    def truncate(self, size: int) -> None:
        del self.buf[size:]
        self.size = size

    def close(self) -> None:
        self.buf = bytearray()


class FileBytes:
    """An append-only file; reads with pread (the page cache serves recent chunks)."""

    __slots__ = ("path", "fd", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = private.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        self.size = os.fstat(self.fd).st_size

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, view[written:])
        except OSError:
            if written:  # never leave half a record behind
                os.ftruncate(self.fd, self.size)
            raise
        self.size += written

    def read(self, pos: int, n: int) -> bytes:
        return os.pread(self.fd, n, pos)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self.size = size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Segment:
    """One segment: its offsets and times (kept in memory), its data and index."""

    __slots__ = ("first", "end", "first_ts", "last_ts", "chunks", "data", "index", "deleted",
                 "name")

    def __init__(self, first: int, data: Bytes, index: Bytes, name: str = "") -> None:
        self.first = first  # offset of its first message
        self.end = first  # offset after its last message
        self.first_ts = self.last_ts = 0
        self.chunks = 0
        self.data = data
        self.index = index
        self.deleted = False
        self.name = name

    def entry(self, i: int) -> tuple[int, int, int, int]:
        """Index entry ``i``: (first offset, timestamp, position, count)."""
        return INDEX.unpack(self.index.read(i * INDEX.size, INDEX.size))  # type: ignore[return-value]

    def find(self, key: Callable[[tuple[int, int, int, int]], int], value: int) -> int:
        """The last chunk whose ``key`` is <= ``value`` (binary search over the index)."""
        lo, hi = 0, self.chunks
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if key(self.entry(mid)) <= value:
                lo = mid
            else:
                hi = mid
        return lo


class Cursor:
    """Where a reader is: the next chunk to read (segment and byte position)."""

    __slots__ = ("segment", "pos", "offset")

    def __init__(self, segment: Segment | None, pos: int, offset: int) -> None:
        self.segment = segment
        self.pos = pos
        self.offset = offset  # first offset of the chunk at pos


class StreamLog:
    """The messages of one stream, in memory (``directory`` None) or in a directory."""

    def __init__(self, directory: Path | None, max_segment_bytes: int,
                 max_bytes: int | None = None, max_age_ms: int | None = None,
                 accounted: Callable[[int], None] | None = None) -> None:
        self.dir = directory
        self.max_segment_bytes = max_segment_bytes
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        self.accounted = accounted  # told of bytes held in memory (+/-), without a directory
        self.segments: list[Segment] = []
        self.next = 0  # offset of the next message written
        self.pending: list[Message] = []
        self.pending_bytes = 0
        self.cache: OrderedDict[tuple[int, int], tuple[list[tuple[int, Message]], int]] = (
            OrderedDict())
        self.cache_bytes = 0
        self.closed = False
        if directory is not None:
            private.make_dir(directory)
            self._recover()
        if not self.segments:
            self._new_segment()

    # ------------------------------------------------------------------ counts

    @property
    def first(self) -> int:
        """The oldest offset still kept."""
        return self.segments[0].first

    @property
    def count(self) -> int:
        """Messages in the stream, the ones of this turn included."""
        return self.next - self.first + len(self.pending)

    @property
    def total_bytes(self) -> int:
        return sum(s.data.size for s in self.segments)

    # ------------------------------------------------------------------ segments

    def _paths(self, first: int) -> tuple[Path, Path]:
        assert self.dir is not None
        name = f"{first:020d}"
        return self.dir / f"{name}.segment", self.dir / f"{name}.index"

    def _new_segment(self) -> Segment:
        first = self.next
        data: Bytes
        index: Bytes
        if self.dir is None:
            data, index = MemoryBytes(), MemoryBytes()
        else:
            seg_path, idx_path = self._paths(first)
            data, index = FileBytes(seg_path), FileBytes(idx_path)
            if data.size:  # left by an earlier run that wrote nothing more: start afresh
                data.truncate(0)
                index.truncate(0)
        data.append(SEGMENT_HEADER)
        self._account(len(SEGMENT_HEADER))
        segment = Segment(first, data, index, f"{first:020d}")
        self.segments.append(segment)
        return segment

    def _account(self, delta: int) -> None:
        if self.accounted is not None and self.dir is None:
            self.accounted(delta)

    def _drop_segment(self, segment: Segment) -> None:
        segment.deleted = True
        self._account(-segment.data.size - segment.index.size)
        segment.data.close()
        segment.index.close()
        if self.dir is not None:
            for path in self._paths(segment.first):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        for key in [k for k in self.cache if k[0] == id(segment)]:
            entries, _ = self.cache.pop(key)
            self.cache_bytes -= sum(len(m.body) for _, m in entries)

    def apply_retention(self) -> None:
        """Delete the oldest segments beyond ``max_bytes`` or older than ``max_age_ms``
        (osiris's evaluate_retention: the newest segment always stays)."""
        segments = self.segments
        if self.max_bytes is not None and len(segments) > 1:
            budget = self.max_bytes - segments[-1].data.size
            keep = 1
            for segment in reversed(segments[:-1]):
                if segment.data.size > budget:
                    break
                budget -= segment.data.size
                keep += 1
            for segment in segments[: len(segments) - keep]:
                self._drop_segment(segment)
            del segments[: len(segments) - keep]
        if self.max_age_ms is not None:
            horizon = int(time.time() * 1000) - self.max_age_ms
            while len(segments) > 1 and segments[0].last_ts < horizon:
                self._drop_segment(segments.pop(0))

    # ------------------------------------------------------------------ writing

    def append(self, message: Message) -> None:
        """Add a message; it is written (and gets its offset) at ``flush``."""
        self.pending.append(message)
        self.pending_bytes += len(message.body)

    def flush(self) -> tuple[int, OSError | None]:
        """Write what was appended, as chunks; returns (messages written, error).

        If the disk refuses a chunk, that chunk and the ones after it are dropped (they get no
        offsets) and the error is returned; what was written before stays.
        """
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        start = 0
        while start < len(pending):
            size = 0
            stop = start
            parts = []
            while stop < len(pending) and (stop == start or size < CHUNK_LIMIT):
                entry = encode_entry(pending[stop])
                parts.append(entry)
                size += len(entry)
                stop += 1
            try:
                self._write_chunk(b"".join(parts), stop - start)
            except OSError as exc:
                return start, exc
            start = stop
        return start, None

    def _write_chunk(self, data: bytes, count: int) -> None:
        segment = self.segments[-1]
        if segment.chunks and (segment.data.size >= self.max_segment_bytes
                               or segment.chunks >= MAX_SEGMENT_CHUNKS):
            segment = self._new_segment()
            self.apply_retention()
        now = int(time.time() * 1000)
        ts = max(now, segment.last_ts)  # chunk times never go back (a clock step back)
        head = CHUNK.pack(MAGIC, VERSION, 0, count, self.next, ts, len(data), zlib.crc32(data))
        pos = segment.data.size
        segment.data.append(head + data)
        try:
            segment.index.append(INDEX.pack(self.next, ts, pos, count))
        except OSError:
            segment.data.truncate(pos)
            raise
        self._account(len(head) + len(data) + INDEX.size)
        if not segment.chunks:
            segment.first_ts = ts
        segment.chunks += 1
        segment.last_ts = ts
        self.next += count
        segment.end = self.next

    # ------------------------------------------------------------------ reading

    def _segment_of(self, offset: int) -> Segment:
        firsts = [s.first for s in self.segments]
        return self.segments[max(0, bisect_right(firsts, offset) - 1)]

    def cursor_at(self, offset: int) -> Cursor:
        """A cursor on the chunk holding ``offset`` (the first chunk if it is older than the
        stream, the end if it is not written yet)."""
        if offset < self.first:
            offset = self.first
        if offset >= self.next:
            last = self.segments[-1]
            return Cursor(last, last.data.size, self.next)
        segment = self._segment_of(offset)
        i = segment.find(lambda e: e[0], offset)
        first, _, pos, _ = segment.entry(i)
        return Cursor(segment, pos, first)

    def last_chunk(self) -> int:
        """First offset of the newest chunk (``next`` when the stream is empty)."""
        for segment in reversed(self.segments):
            if segment.chunks:
                return segment.entry(segment.chunks - 1)[0]
        return self.next

    def offset_at(self, timestamp_ms: int) -> int:
        """First offset of the first chunk written at or after ``timestamp_ms`` (osiris: a
        timestamp before the stream is its first offset, after it the next one)."""
        for segment in self.segments:
            if segment.chunks and segment.last_ts >= timestamp_ms:
                if segment.first_ts >= timestamp_ms:
                    return segment.first
                i = segment.find(lambda e: e[1], timestamp_ms - 1) + 1
                return segment.entry(i)[0]
        return self.next

    def read(self, cursor: Cursor) -> list[tuple[int, Message]] | None:
        """The messages of the chunk at ``cursor`` (advanced past it), or None at the end.

        A cursor on a segment retention deleted moves to the oldest chunk kept.
        """
        segment = cursor.segment
        if segment is None or segment.deleted:
            moved = self.cursor_at(max(cursor.offset, self.first))
            cursor.segment, cursor.pos, cursor.offset = moved.segment, moved.pos, moved.offset
            segment = cursor.segment
            assert segment is not None
        while cursor.pos >= segment.data.size:
            i = self.segments.index(segment)
            if i + 1 >= len(self.segments):
                return None
            segment = self.segments[i + 1]
            cursor.segment, cursor.pos = segment, len(SEGMENT_HEADER)
        key = (id(segment), cursor.pos)
        hit = self.cache.get(key)
        if hit is None:
            head = segment.data.read(cursor.pos, CHUNK.size)
            _, _, _, count, first, _, size, _ = CHUNK.unpack(head)
            data = segment.data.read(cursor.pos + CHUNK.size, size)
            entries = decode_entries(data, first)
            hit = (entries, cursor.pos + CHUNK.size + size)
            self.cache[key] = hit
            self.cache_bytes += sum(len(m.body) for _, m in entries)
            while self.cache_bytes > CACHE_BYTES and len(self.cache) > 1:
                _, (old, _) = self.cache.popitem(last=False)
                self.cache_bytes -= sum(len(m.body) for _, m in old)
        else:
            self.cache.move_to_end(key)
        entries, cursor.pos = hit
        cursor.offset = entries[-1][0] + 1 if entries else cursor.offset
        return entries

    # ------------------------------------------------------------------ start and end

    def _recover(self) -> None:
        """Open the segments of an earlier run (see the module docstring)."""
        assert self.dir is not None
        names = sorted(p.stem for p in self.dir.glob("*.segment") if p.stem.isdigit())
        for name in names:
            seg_path, idx_path = self._paths(int(name))
            data, index = FileBytes(seg_path), FileBytes(idx_path)
            segment = Segment(int(name), data, index, name)
            if data.size < len(SEGMENT_HEADER) or data.read(0, len(SEGMENT_HEADER)) != (
                    SEGMENT_HEADER):
                log.warning("stream %s: %s is not a stream segment; ignored", self.dir.name,
                            seg_path.name)
                data.close()
                index.close()
                continue
            self._check_segment(segment, last=name == names[-1])
            if segment.chunks or name == names[-1]:
                self.segments.append(segment)
                self.next = max(self.next, segment.end)
            else:
                data.close()
                index.close()
                seg_path.unlink()
                idx_path.unlink(missing_ok=True)
        # retention is not evaluated here: only when a segment fills (osiris), so a restart
        # changes nothing a client can see

    def _check_segment(self, segment: Segment, last: bool) -> None:
        index = segment.index
        if index.size % INDEX.size:
            index.truncate(index.size - index.size % INDEX.size)
        segment.chunks = index.size // INDEX.size
        # the indexed chunks must be whole (the index is written after its chunk)
        while segment.chunks:
            first, ts, pos, count = segment.entry(segment.chunks - 1)
            if self._chunk_ok(segment, pos):
                break
            segment.chunks -= 1
            index.truncate(segment.chunks * INDEX.size)
        pos = len(SEGMENT_HEADER)
        if segment.chunks:
            first, ts, pos, count = segment.entry(segment.chunks - 1)
            segment.end = first + count
            segment.last_ts = ts
            segment.first_ts = segment.entry(0)[1]
            pos += CHUNK.size + CHUNK.unpack(segment.data.read(pos, CHUNK.size))[6]
        # chunks written after the index entry was lost (crash between the two writes)
        while pos < segment.data.size and self._chunk_ok(segment, pos):
            _, _, _, count, first, ts, size, _ = CHUNK.unpack(segment.data.read(pos, CHUNK.size))
            index.append(INDEX.pack(first, ts, pos, count))
            if not segment.chunks:
                segment.first_ts = ts
            segment.chunks += 1
            segment.last_ts = ts
            segment.end = first + count
            pos += CHUNK.size + size
        if pos < segment.data.size:
            log.warning("stream %s: segment %s damaged at byte %d of %d; cut there",
                        self.dir.name if self.dir else "", segment.name, pos, segment.data.size)
            segment.data.truncate(pos)
        if not segment.chunks:
            segment.end = segment.first

    @staticmethod
    def _chunk_ok(segment: Segment, pos: int) -> bool:
        head = segment.data.read(pos, CHUNK.size)
        if len(head) < CHUNK.size:
            return False
        magic, version, _, _, _, _, size, crc = CHUNK.unpack(head)
        if magic != MAGIC or version != VERSION:
            return False
        data = segment.data.read(pos + CHUNK.size, size)
        return len(data) == size and zlib.crc32(data) == crc

    def close(self) -> None:
        """Write what is pending and let go of the files."""
        if self.closed:
            return
        _, error = self.flush()
        if error is not None:
            log.error("stream %s: could not write its last messages: %s",
                      self.dir.name if self.dir else "", error)
        self.closed = True
        for segment in self.segments:
            if self.dir is not None:
                for b in (segment.data, segment.index):
                    try:
                        os.fsync(b.fd)  # type: ignore[attr-defined]
                    except OSError:
                        pass
            segment.data.close()
            segment.index.close()
        self.cache.clear()

    def delete(self) -> None:
        """The stream is deleted: drop everything, files included."""
        self.pending = []
        self.closed = True
        for segment in self.segments:
            self._drop_segment(segment)
        self.segments = []
        self.cache.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

"""The message log at run time: appends, group commit, marks, reading back, segments' lifecycle.

Writes: records are appended to a buffer and written to the OS once per event-loop turn; an
fsync (fdatasync) on a worker thread then covers everything written before it started, and the
publisher confirms of the messages it covers are sent when it returns. One fsync is in flight
at a time; what arrives meanwhile waits for the next one, so under load many confirms share one
fsync (group commit).

Segments: the current segment takes appends until it passes ``segment_bytes``. A segment whose
messages are all gone is deleted; one whose live messages fell under half of what it held is
compacted (compaction.py). REMOVE marks (acks, drops) are written to the OS but not fsynced: a
crash of the process loses none of them, a crash of the machine may bring back a message whose
ack was not yet on disk, marked redelivered. DELIVERED marks are written only at a clean
shutdown, for the messages flagged redelivered then (after a crash all come back flagged).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from time import time as _wall
from typing import TYPE_CHECKING

from ..message import Entry, Message
from . import private
from .paging import PagedReadyList
from .records import (
    DELIVERED,
    HEAD,
    MOVED,
    OFFSET_MASK,
    REMOVE,
    TRANSIENT,
    decode_message,
    mark,
    publish_parts,
    record_length,
    short,
    with_flag,
)

if TYPE_CHECKING:
    from ..channel import Channel
    from ..queue import Queue
    from .compaction import Compaction

log = logging.getLogger("leveret.store")

SEGMENT_BYTES = 64 << 20
DEFAULT_BUDGET = 128 << 20
_SPAN = 4 << 20  # read at most this much at once when reading messages back
_OPEN_FDS = 64  # marks and read descriptors kept open (each)
_LIMIT = (1 << 32) - (1 << 20)


def _sync_all(fds: list[int], dir_fd: int) -> None:
    """Runs on a worker thread."""
    for fd in fds:
        os.fdatasync(fd)
    if dir_fd >= 0:
        os.fsync(dir_fd)


def _confirm(waiters: list[tuple[Channel, int]], nack: bool) -> None:
    """The records these publishes waited for are on disk (ack), or cannot be (nack)."""
    for channel, seq in waiters:
        confirms = channel.confirms
        if channel.open and confirms is not None:
            if nack:
                confirms.nack(seq)
            confirms.written(seq)
            channel.conn.want_confirm_flush(channel)


class MessageLog:
    """Persistent messages of durable queues, and messages paged out of memory."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES,
                 budget: int = DEFAULT_BUDGET) -> None:
        self.dir = directory
        self.segment_bytes = min(segment_bytes, _LIMIT)
        self.budget = budget  # bytes of ready messages of durable queues kept in memory
        self.resident = 0  # what they take now (see paging.cost)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.seg = 0  # the current segment
        self.base = 0  # seg << 32
        self.size = 0  # its bytes, buffered ones included
        self.fd = -1
        self.first_seg = 1  # the first segment of this run (TRANSIENT records before it are dead)
        self.order = 1  # the next PUBLISH's order
        self.live: dict[int, int] = {}  # segment -> messages in it still referenced
        self.published: dict[int, int] = {}  # segment -> records it holds
        # compaction moved these: store id the entries hold -> where the record is now, and back
        self.remap: dict[int, int] = {}
        self.origin: dict[int, int] = {}
        self.compaction: Compaction | None = None
        self._moving: set[int] = set()  # compacted segments waiting for their copies' fsync
        self._dead: set[int] = set()
        self._candidates: set[int] = set()
        self._buf = bytearray()
        self._marks: dict[int, bytearray] = {}
        self._mark_fds: dict[int, int] = {}
        self._read_fds: dict[int, int] = {}
        self._unsynced: list[int] = []  # rolled segments' fds: closed after their fsync
        self._in_sync: list[int] = []  # those the fsync in flight will close
        self._new_files = False  # a segment was created since the last fsync of the directory
        self._waiters: list[tuple[Channel, int]] = []
        self._after_sync: list[Callable[[], None]] = []
        self._syncing = False
        self._flush_scheduled = False
        self._closed = False
        self._failing = False  # the last write was refused (disk full...): retrying
        self._retry_scheduled = False
        self._queue_keys: dict[tuple[str, str], bytes] = {}
        # the ready lists of durable queues (by id: a deque is not hashable)
        self._lists: weakref.WeakValueDictionary[int, PagedReadyList] = (
            weakref.WeakValueDictionary())
        self._dir_fd = os.open(directory, os.O_RDONLY)

    # ------------------------------------------------------------------ paths and files

    def data_path(self, seg: int) -> Path:
        return self.dir / f"{seg:08d}.log"

    def marks_path(self, seg: int) -> Path:
        return self.dir / f"{seg:08d}.marks"

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.log") if p.stem.isdigit())

    def open_segment(self, seg: int) -> None:
        """Start appending to a new segment ``seg``."""
        self.fd = private.open_fd(self.data_path(seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self.seg = seg
        self.base = seg << 32
        self.size = os.fstat(self.fd).st_size
        self.live.setdefault(seg, 0)
        self.published.setdefault(seg, 0)
        self._new_files = True

    def _roll(self) -> None:
        if not self._write_data():
            return  # the records still buffered belong to this segment: stay on it
        old = self.seg
        self._unsynced.append(self.fd)
        self.open_segment(old + 1)
        self.check_segment(old)

    def check_segment(self, seg: int) -> None:
        """A segment that no longer takes appends: delete or compact it when it is time."""
        live = self.live.get(seg)
        if live is None or seg == self.seg:
            return
        if live == 0:
            self._dead.add(seg)
        elif live * 2 < self.published[seg]:
            self._candidates.add(seg)

    def _fd_for(self, table: dict[int, int], seg: int, path: Path, flags: int) -> int:
        fd = table.get(seg)
        if fd is None:
            if len(table) >= _OPEN_FDS:
                oldest = next(iter(table))
                os.close(table.pop(oldest))
            fd = table[seg] = private.open_fd(path, flags)
        return fd

    def delete_segment(self, seg: int) -> None:
        for table in (self._mark_fds, self._read_fds):
            fd = table.pop(seg, None)
            if fd is not None:
                os.close(fd)
        self._marks.pop(seg, None)
        self.live.pop(seg, None)
        self.published.pop(seg, None)
        self._candidates.discard(seg)
        for path in (self.data_path(seg), self.marks_path(seg)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------------ writing

    def _queue_key(self, queue: Queue) -> bytes:
        names = (queue.vhost.name, queue.name)
        key = self._queue_keys.get(names)
        if key is None:
            key = self._queue_keys[names] = short(names[0]) + short(names[1])
        return key

    def _append(self, queue: Queue, entry: Entry, flags: int) -> None:
        if self.size >= self.segment_bytes:
            self._roll()
        msg = entry.message
        head, crc = publish_parts(flags, msg, self.order, self._queue_key(queue),
                                  int(_wall() * 1000))
        self.order += 1
        length = len(head) + len(msg.body)
        entry.store_id = self.base | self.size
        buf = self._buf
        buf += HEAD.pack(length, crc)
        buf += head
        buf += msg.body
        self.size += 8 + length
        seg = self.seg
        self.live[seg] += 1
        self.published[seg] += 1
        if not self._flush_scheduled:
            self._schedule()

    def add(self, queue: Queue, entry: Entry, publisher: Channel | None, seq: int) -> None:
        """Log a persistent message of a durable queue; its confirm waits for the fsync."""
        if self._closed:
            return
        self._append(queue, entry, 0)
        if publisher is not None and seq and publisher.confirms is not None:
            publisher.confirms.wait(seq)
            self._waiters.append((publisher, seq))

    def page_out(self, queue: Queue, entry: Entry) -> bool:
        """Make sure ``entry`` can be read back from disk; False if it cannot be."""
        if entry.store_id:
            return True
        if self._closed or self._failing:
            return False  # kept in memory while the disk refuses writes
        self._append(queue, entry, TRANSIENT)
        return True

    def _mark(self, seg: int, kind: int, offset: int) -> None:
        buf = self._marks.get(seg)
        if buf is None:
            buf = self._marks[seg] = bytearray()
        buf += mark(kind, offset)
        if not self._flush_scheduled:
            self._schedule()

    def remove(self, queue: Queue | None, entry: Entry) -> None:
        """The message left its queue for good (acked, dropped, purged)."""
        key = entry.store_id
        if key and not self._closed:
            entry.store_id = 0
            self.forget(key)

    def forget(self, key: int) -> None:
        if self._closed:
            return
        loc = key
        if self.remap:
            loc = self.remap.pop(key, key)
            if loc != key:
                del self.origin[loc]
        seg = loc >> 32
        offset = loc & OFFSET_MASK
        self._mark(seg, REMOVE, offset)
        live = self.live[seg] - 1
        self.live[seg] = live
        if seg != self.seg:
            if live == 0:
                self._dead.add(seg)
            elif live * 2 < self.published[seg]:
                self._candidates.add(seg)
        compaction = self.compaction
        if compaction is not None and seg == compaction.seg:
            compaction.removed.add(offset)

    def forget_at_recovery(self, store_id: int) -> None:
        """A record recovery does not restore (its queue is gone, or a second copy)."""
        self._mark(store_id >> 32, REMOVE, store_id & OFFSET_MASK)

    def mark_redelivered(self) -> None:
        """At a clean shutdown: a DELIVERED mark for every ready message whose redelivered
        flag is set, so it comes back with it. (Deliveries are not marked as they happen: a
        message out for ack at a clean shutdown has been requeued, flagged, by now; after a
        crash every recovered message is flagged anyway.)"""
        if self._closed:
            return
        remap = self.remap
        for ready in list(self._lists.values()):
            for entry in ready.in_memory():
                if entry.redelivered and entry.store_id:
                    loc = remap.get(entry.store_id, entry.store_id) if remap else entry.store_id
                    self._mark(loc >> 32, DELIVERED, loc & OFFSET_MASK)
            for store_id, redelivered in ready.tail.peek():
                if redelivered:
                    loc = remap.get(store_id, store_id) if remap else store_id
                    self._mark(loc >> 32, DELIVERED, loc & OFFSET_MASK)

    def purge(self, queue: Queue) -> None:
        """Every ready message of ``queue`` is dropped (purge, delete)."""
        ready = queue.ready
        for level in getattr(ready, "levels", None) or [ready]:
            if isinstance(level, PagedReadyList):
                for entry in level.in_memory():
                    self.remove(queue, entry)
                for key, _ in level.tail.ids():
                    self.forget(key)
            else:
                for entry in level:
                    self.remove(queue, entry)

    def ready_list(self, queue: Queue) -> PagedReadyList:
        ready = PagedReadyList(queue, self)
        self._lists[id(ready)] = ready
        return ready

    def move(self, seg: int, offset: int, record: bytes, delivered: bool) -> None:
        """Compaction: copy a live record of ``seg`` to the current segment."""
        if self.size >= self.segment_bytes:
            self._roll()
        if not record[9] & MOVED:
            record = with_flag(record, MOVED)
        new = self.base | self.size
        self._buf += record
        self.size += len(record)
        old = (seg << 32) | offset
        key = self.origin.pop(old, old)
        self.remap[key] = new
        self.origin[new] = key
        self.live[seg] -= 1
        self.live[self.seg] += 1
        self.published[self.seg] += 1
        if delivered:
            self._mark(self.seg, DELIVERED, new & OFFSET_MASK)
        if not self._flush_scheduled:
            self._schedule()

    # ------------------------------------------------------------------ group commit

    def _schedule(self) -> None:
        if not self._flush_scheduled and self.loop is not None:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _write_data(self) -> bool:
        """Hand the buffered records to the OS. False if it refused (disk full, I/O error):
        what it did not take stays buffered, in order, and is tried again later."""
        buf = self._buf
        try:
            while buf:
                n = os.write(self.fd, buf)
                del buf[:n]
        except OSError as exc:
            self._write_failed(exc)
            return False
        return True

    def write_out(self) -> bool:
        """Hand everything buffered to the OS; False if some of it could not be written."""
        ok = self._write_data()
        if self._marks:
            marks, self._marks = self._marks, {}
            for seg, data in marks.items():
                if seg not in self.live:
                    continue  # deleted meanwhile
                try:
                    fd = self._fd_for(self._mark_fds, seg, self.marks_path(seg),
                                      os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                    n = os.write(fd, data)
                    if n < len(data):
                        raise OSError(f"short write ({n} of {len(data)} bytes)")
                except OSError as exc:
                    # marks are a set: the unwritten ones can come later, in any order
                    # (a torn one is cut at recovery)
                    self._marks.setdefault(seg, bytearray()).extend(data)
                    self._write_failed(exc)
                    ok = False
        if ok and self._failing:
            self._failing = False
            log.warning("store: writing to %s works again", self.dir)
        return ok

    def _write_failed(self, exc: OSError) -> None:
        if not self._failing:
            self._failing = True
            log.error("store: cannot write to %s (%s): confirms waiting for the disk are "
                      "nacked, messages stay in memory, and writing is retried every second",
                      self.dir, exc)
        if not self._retry_scheduled and self.loop is not None and not self._closed:
            self._retry_scheduled = True
            self.loop.call_later(1.0, self._retry)

    def _retry(self) -> None:
        self._retry_scheduled = False
        self._schedule()

    def _nack_waiters(self) -> None:
        """The disk refused the records these publishes wait for: nack them (RabbitMQ nacks
        what it cannot take responsibility for), so no publisher waits for ever."""
        waiters, self._waiters = self._waiters, []
        _confirm(waiters, nack=True)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return
        if not self.write_out():
            self._nack_waiters()
            return  # deletes, compaction and fsyncs wait until writing works again
        if self._dead and not self._moving:
            for seg in sorted(self._dead):
                if self.live.get(seg) == 0 and seg != self.seg:
                    self.delete_segment(seg)
            self._dead.clear()
        if self._candidates and self.compaction is None and not self._moving:
            self._start_compaction()
        if (self._waiters or self._after_sync) and not self._syncing:
            self._start_sync()

    def _start_sync(self) -> None:
        assert self.loop is not None
        waiters, self._waiters = self._waiters, []
        actions, self._after_sync = self._after_sync, []
        closing, self._unsynced = self._unsynced, []
        self._in_sync = closing
        dir_fd = self._dir_fd if self._new_files else -1
        self._new_files = False
        self._syncing = True
        fut = self.loop.run_in_executor(None, _sync_all, [*closing, self.fd], dir_fd)
        fut.add_done_callback(lambda f: self._synced(f, waiters, actions, closing))

    def _synced(self, fut: asyncio.Future[None], waiters: list[tuple[Channel, int]],
                actions: list[Callable[[], None]], closing: list[int]) -> None:
        self._syncing = False
        self._in_sync = []
        if self._closed:
            return  # close_log closed them
        for fd in closing:
            os.close(fd)
        exc = fut.exception()
        if exc is not None:
            log.error("store: fsync failed (%s): the messages it covered are nacked", exc)
        _confirm(waiters, nack=exc is not None)
        if exc is None:
            for action in actions:
                action()
        else:
            self._after_sync.extend(actions)  # not covered: they wait for a good fsync
        if self._waiters or self._after_sync or self._dead:
            self._flush()

    # ------------------------------------------------------------------ compaction

    def _start_compaction(self) -> None:
        from .compaction import Compaction

        candidates = [s for s in self._candidates
                      if s != self.seg and self.live.get(s, 0) * 2 < self.published.get(s, 0)
                      and self.live.get(s, 0) > 0]
        self._candidates.clear()
        if not candidates:
            return
        seg = min(candidates, key=lambda s: self.live[s] / self.published[s])
        self._candidates.update(s for s in candidates if s != seg)
        self.compaction = Compaction(self, seg)
        self._moving.add(seg)
        assert self.loop is not None
        self.loop.call_soon(self._compaction_step)

    def _compaction_step(self) -> None:
        compaction = self.compaction
        if compaction is None or self._closed:
            return
        done = compaction.step()
        if not done:
            assert self.loop is not None
            self.loop.call_soon(self._compaction_step)
            return
        self.compaction = None
        seg = compaction.seg
        compaction.close()
        if compaction.failed:
            self._moving.discard(seg)
            return
        log.debug("store: compacted segment %d (%d records moved)", seg, compaction.moved)

        def finished() -> None:
            self._moving.discard(seg)
            if self.live.get(seg) == 0:
                self.delete_segment(seg)
            else:  # never expected: something still names a record there
                log.warning("store: segment %d still has %s live messages after compaction; "
                            "kept", seg, self.live.get(seg))

        self._after_sync.append(finished)
        self._schedule()

    # ------------------------------------------------------------------ reading back

    def _read_fd(self, seg: int) -> int:
        return self._fd_for(self._read_fds, seg, self.data_path(seg), os.O_RDONLY)

    def read_messages(self, keys: list[int], stamps: list[int] | None = None
                      ) -> list[Message | None]:
        """The messages of these store ids, in the same order (None: unreadable, logged).

        ``stamps``, if given, gets when each entered its queue (wall clock, ms; 0 if unread).
        """
        self._write_data()
        # records of the current segment from ``pending`` on are still in the buffer (the disk
        # refused them): a run of records is read from the buffer or from the file, not both
        pending = self.size - len(self._buf)
        remap = self.remap
        locs = [remap.get(k, k) for k in keys] if remap else keys
        out: list[Message | None] = [None] * len(locs)
        n = len(locs)
        if stamps is not None:
            stamps[:] = [0] * n
        i = 0
        while i < n:
            seg = locs[i] >> 32
            first = last = locs[i] & OFFSET_MASK
            buffered = seg == self.seg and first >= pending
            j = i + 1
            while j < n and locs[j] >> 32 == seg:
                offset = locs[j] & OFFSET_MASK
                if (offset <= last or offset - first > _SPAN
                        or (seg == self.seg and offset >= pending) != buffered):
                    break
                last = offset
                j += 1
            fd = -1
            data: bytes | bytearray
            if buffered:
                data, start = self._buf, pending
            else:
                try:
                    fd = self._read_fd(seg)
                    data, start = os.pread(fd, last - first + 4096, first), first
                except OSError as exc:
                    log.error("store: cannot read segment %d: %s", seg, exc)
                    i = j
                    continue
            for k in range(i, j):
                offset = locs[k] & OFFSET_MASK
                p = offset - start
                try:
                    if p + 8 > len(data) or p + record_length(data, p) > len(data):
                        _, _, out[k], stamp = self._read_one(fd, offset)
                    else:
                        _, _, out[k], stamp = decode_message(data, p)
                    if stamps is not None:
                        stamps[k] = stamp
                except (ValueError, OSError, IndexError, UnicodeDecodeError) as exc:
                    log.error("store: message at byte %d of segment %d is unreadable (%s); "
                              "it is dropped", offset, seg, exc)
            i = j
        return out

    @staticmethod
    def _read_one(fd: int, offset: int) -> tuple[int, int, Message, int]:
        head = os.pread(fd, 8, offset)
        if len(head) < 8:
            raise ValueError("truncated record")
        return decode_message(os.pread(fd, record_length(head, 0), offset), 0)

    # ------------------------------------------------------------------ shutdown

    def close_log(self) -> None:
        """Write and fsync everything (marks included) and close every file."""
        if self._closed:
            return
        if self.compaction is not None:
            self.compaction.close()  # its copies and the originals are both kept: harmless
            self.compaction = None
        self.mark_redelivered()
        if not self.write_out():
            log.error("store: %d bytes of messages and their marks could not be written "
                      "before shutdown; the confirms of persistent ones among them were nacked",
                      len(self._buf) + sum(len(m) for m in self._marks.values()))
            self._nack_waiters()
        self._closed = True
        fds = [*self._in_sync, *self._unsynced, *self._mark_fds.values()]
        if self.fd >= 0:
            fds.append(self.fd)
        for fd in [*fds, self._dir_fd]:
            try:
                os.fsync(fd)
            except OSError as exc:
                self._failing = True
                log.error("store: fsync at shutdown failed: %s", exc)
        for fd in [*fds, *self._read_fds.values(), self._dir_fd]:
            os.close(fd)
        self._unsynced.clear()
        self._mark_fds.clear()
        self._read_fds.clear()
        self.fd = -1

"""Ready lists of durable queues that keep only their head in memory once a budget is spent.

A ``PagedReadyList`` is a ``ReadyList`` whose messages, while the store's in-memory budget is
exceeded, go to a ``Tail`` instead: a compact run of store ids (8 bytes a message, plus 4 for its
size) whose bodies stay on disk. Once a queue has a tail, every new message joins the tail, so
the order holds; when fewer than ``LOW`` messages are left in memory the next ``BATCH`` are read
back. The head is never empty while the tail is not, so everything the queue does at its head
(delivery, expiry, drop-head) sees ordinary in-memory entries.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Iterator
from time import monotonic, time
from typing import TYPE_CHECKING

from ..message import Entry, QueueEntry
from ..ready import ReadyList

if TYPE_CHECKING:
    from ..queue import Queue
    from .messages import MessageLog

LOW = 256  # read more back when fewer than this many are left in memory
BATCH = 1024  # how many to read back at a time
OVERHEAD = 320  # bytes a message costs in memory besides its body and properties
CHUNK = 4096


def enqueued_since(stamp_ms: int, now: float, wall: float) -> float:
    """The monotonic time at which a message entered its queue, from its record's wall-clock
    stamp (``now``, ``wall``: the two clocks now). Never later than now, if the clock stepped."""
    return now - max(0.0, wall - stamp_ms / 1000.0)


def cost(entry: Entry) -> int:
    m = entry.message
    return len(m.body) + len(m.raw_props) + OVERHEAD


class _Chunk:
    __slots__ = ("ids", "sizes", "deadlines", "redelivered", "recovered", "start")

    def __init__(self) -> None:
        self.ids = array("Q")
        self.sizes = array("I")
        self.deadlines: array[float] | None = None  # absolute deadlines, when any is set
        self.redelivered: bytearray | None = None
        # read back at start-up: TTLs count from when each entered its queue (its record says);
        # otherwise paged out in this run, with the deadlines given
        self.recovered = False
        self.start = 0  # entries before this one were read back


class Tail:
    """Messages of one ready list that live only on disk, in queue order."""

    def __init__(self) -> None:
        self.chunks: deque[_Chunk] = deque()
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def _last(self) -> _Chunk:
        if not self.chunks or len(self.chunks[-1].ids) >= CHUNK or self.chunks[-1].recovered:
            self.chunks.append(_Chunk())
        return self.chunks[-1]

    def append(self, store_id: int, size: int, deadline: float, redelivered: bool) -> None:
        c = self._last()
        n = len(c.ids)
        c.ids.append(store_id)
        c.sizes.append(size)
        if deadline:
            if c.deadlines is None:
                c.deadlines = array("d", bytes(8 * n))
            c.deadlines.append(deadline)
        elif c.deadlines is not None:
            c.deadlines.append(0.0)
        if redelivered:
            if c.redelivered is None:
                c.redelivered = bytearray(n)
            c.redelivered.append(1)
        elif c.redelivered is not None:
            c.redelivered.append(0)
        self.count += 1

    def extend_recovered(self, ids: array[int], sizes: array[int], redelivered: bytearray
                         ) -> None:
        """Messages recovered at start-up, in order."""
        for i in range(0, len(ids), CHUNK):
            c = _Chunk()
            c.ids = ids[i : i + CHUNK]
            c.sizes = sizes[i : i + CHUNK]
            part = redelivered[i : i + CHUNK]
            c.redelivered = part if any(part) else None
            c.recovered = True
            self.chunks.append(c)
            self.count += len(c.ids)

    def take(self, n: int) -> list[tuple[int, int, float, bool, bool]]:
        """The first ``n``: (store_id, size, deadline, redelivered, recovered)."""
        out: list[tuple[int, int, float, bool, bool]] = []
        while n > 0 and self.chunks:
            c = self.chunks[0]
            stop = min(len(c.ids), c.start + n)
            for i in range(c.start, stop):
                out.append((c.ids[i], c.sizes[i], c.deadlines[i] if c.deadlines else 0.0,
                            bool(c.redelivered[i]) if c.redelivered else False, c.recovered))
            n -= stop - c.start
            self.count -= stop - c.start
            c.start = stop
            if stop == len(c.ids):
                self.chunks.popleft()
        return out

    def ids(self) -> Iterator[tuple[int, int]]:
        """(store_id, size) of every message, in order."""
        for c in self.chunks:
            for i in range(c.start, len(c.ids)):
                yield c.ids[i], c.sizes[i]

    def peek(self) -> Iterator[tuple[int, bool]]:
        for c in self.chunks:
            for i in range(c.start, len(c.ids)):
                yield c.ids[i], bool(c.redelivered[i]) if c.redelivered else False

    def clear(self) -> None:
        self.chunks.clear()
        self.count = 0


class PagedReadyList(ReadyList):
    """A durable queue's ready list: the head in memory, the rest on disk past the budget.

    The queue counts every ready message in ``ready_bytes`` and, for the memory watermark, in
    ``memory.used``; this list takes back from ``memory.used`` what it pages out and gives it
    again when it reads it back, so the watermark sees only what is really in memory.
    """

    def __init__(self, queue: Queue, store: MessageLog) -> None:
        super().__init__()
        self.queue = queue
        self.store = store
        self.tail = Tail()
        self.tail_bytes = 0

    def __len__(self) -> int:
        return deque.__len__(self) + self.tail.count

    def __bool__(self) -> bool:
        return bool(deque.__len__(self) or self.tail.count)

    def __iter__(self) -> Iterator[Entry]:
        """Every ready entry; those on disk are read back for the occasion, a batch at a time."""
        yield from deque.__iter__(self)
        pending: list[tuple[int, bool]] = []
        for item in self.tail.peek():
            pending.append(item)
            if len(pending) == BATCH:
                yield from self._peeked(pending)
                pending = []
        yield from self._peeked(pending)

    def _peeked(self, items: list[tuple[int, bool]]) -> Iterator[Entry]:
        messages = self.store.read_messages([i for i, _ in items])
        for (store_id, redelivered), msg in zip(items, messages):
            if msg is not None:
                entry = QueueEntry(0, msg)
                entry.store_id = store_id
                entry.redelivered = redelivered
                yield entry

    def in_memory(self) -> Iterator[Entry]:
        return deque.__iter__(self)

    def in_memory_count(self) -> int:
        return deque.__len__(self)

    def paged_out_bytes(self) -> int:
        return self.tail_bytes

    def append(self, entry: Entry) -> None:
        store = self.store
        if self.tail.count or (store.resident > store.budget and deque.__len__(self)):
            if store.page_out(self.queue, entry):
                size = len(entry.message.body)
                self.tail.append(entry.store_id, size, entry.deadline, entry.redelivered)
                self.tail_bytes += size
                self.queue.memory.used -= size
                return
        deque.append(self, entry)
        store.resident += cost(entry)

    def popleft(self) -> Entry:
        entry: Entry = deque.popleft(self)
        self.store.resident -= cost(entry)
        while self.tail.count and deque.__len__(self) < LOW:
            self.page_in()
        return entry

    def restore(self, entry: Entry) -> None:
        # a requeued entry was in memory before everything now on disk: it goes in memory.
        # (No negative indices here: they count from __len__, which includes the tail.)
        n = deque.__len__(self)
        if not n or entry.seq < self[0].seq:
            self.appendleft(entry)
        elif entry.seq > self[n - 1].seq:
            deque.append(self, entry)
        else:
            seqs = [e.seq for e in deque.__iter__(self)]
            self.insert(bisect.bisect_left(seqs, entry.seq), entry)
        self.store.resident += cost(entry)

    def clear(self) -> None:
        self.store.resident -= sum(cost(e) for e in deque.__iter__(self))
        self.queue.memory.used += self.tail_bytes  # the queue takes all ready bytes off
        self.tail.clear()
        self.tail_bytes = 0
        deque.clear(self)

    def page_in(self, n: int = BATCH) -> None:
        """Read the next ``n`` messages of the tail back into memory."""
        items = self.tail.take(n)
        if not items:
            return
        queue = self.queue
        stamps: list[int] = []
        messages = self.store.read_messages([item[0] for item in items], stamps)
        memory = queue.memory
        store = self.store
        now = wall = 0.0
        for (store_id, size, deadline, redelivered, recovered), msg, stamp in zip(
                items, messages, stamps):
            self.tail_bytes -= size
            if msg is None:  # unreadable (logged): it is gone
                queue.ready_bytes -= size
                store.forget(store_id)
                continue
            since = 0.0
            if recovered:
                if not now:
                    now, wall = monotonic(), time()
                since = enqueued_since(stamp, now, wall)
            entry = queue.stored_entry(msg, store_id, redelivered, deadline, since)
            deque.append(self, entry)
            memory.used += size
            store.resident += cost(entry)

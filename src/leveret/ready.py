"""The ready messages of a queue, in order: a FIFO (``ReadyList``) or one per priority level.

Kept apart from queue.py, which is compiled (queue.pxd) and imports the channel's types when
it loads: the store's paged list (store/paging.py) subclasses ``ReadyList`` and can import it
from here whatever is being imported first.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterator

from .message import Entry


class ReadyList(deque):  # type: ignore[type-arg]
    """Ready entries in sequence order."""

    def head(self) -> Entry:
        return self[0]  # type: ignore[no-any-return]

    def in_memory_count(self) -> int:
        """Ready entries held in memory (a paged list keeps the rest on disk)."""
        return len(self)

    def paged_out_bytes(self) -> int:
        """Bodies of the ready entries on disk, in bytes."""
        return 0

    def pop_expired(self, now: float) -> Entry | None:
        """Remove and return the head if its deadline has passed."""
        if self:
            deadline = self[0].deadline
            if deadline and deadline <= now:
                return self.popleft()  # type: ignore[no-any-return]
        return None

    def next_deadline(self) -> float:
        """When the head expires (0: it does not)."""
        return self[0].deadline if self else 0.0  # type: ignore[no-any-return]

    def restore(self, entry: Entry) -> None:
        """Put a requeued entry back where its sequence number says."""
        if not self or entry.seq < self[0].seq:
            self.appendleft(entry)
        elif entry.seq > self[-1].seq:
            self.append(entry)
        else:  # rare: interleaved with other requeued or undelivered entries
            self.insert(bisect.bisect_left([e.seq for e in self], entry.seq), entry)


class PriorityReady:
    """Ready entries of a priority queue (x-max-priority): one ReadyList per priority level;
    higher levels first, FIFO (by sequence) within a level."""

    def __init__(self, max_priority: int,
                 new_level: Callable[[], ReadyList] = ReadyList) -> None:
        self.max = max_priority
        self.levels = [new_level() for _ in range(max_priority + 1)]
        self.count = 0

    def _level(self, entry: Entry) -> ReadyList:
        return self.levels[min(entry.message.priority, self.max)]

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[Entry]:
        for level in reversed(self.levels):
            yield from level

    def append(self, entry: Entry) -> None:
        self._level(entry).append(entry)
        self.count += 1

    def restore(self, entry: Entry) -> None:
        self._level(entry).restore(entry)
        self.count += 1

    def in_memory_count(self) -> int:
        return sum(level.in_memory_count() for level in self.levels)

    def paged_out_bytes(self) -> int:
        return sum(level.paged_out_bytes() for level in self.levels)

    def head(self) -> Entry:
        for level in reversed(self.levels):
            if level:
                return level[0]  # type: ignore[no-any-return]
        raise IndexError("empty")

    def popleft(self) -> Entry:
        for level in reversed(self.levels):
            if level:
                self.count -= 1
                return level.popleft()  # type: ignore[no-any-return]
        raise IndexError("empty")

    # Expiry looks at the head of the highest non-empty priority only: RabbitMQ 3.10 leaves an
    # expired low-priority message alone while a higher one waits (checked against it).
    def pop_expired(self, now: float) -> Entry | None:
        for level in reversed(self.levels):
            if level:
                entry = level.pop_expired(now)
                if entry is not None:
                    self.count -= 1
                return entry
        return None

    def next_deadline(self) -> float:
        for level in reversed(self.levels):
            if level:
                return level.next_deadline()
        return 0.0

    def clear(self) -> None:
        for level in self.levels:
            level.clear()
        self.count = 0

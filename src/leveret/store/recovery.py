"""Start-up: the persistent messages of the log back into their queues, in order.

One pass over every segment reads its marks, then its records' fixed headers (bodies are not
decoded): a record neither TRANSIENT nor removed belongs to its queue. Per queue, the ids are
put in ``order`` (already so unless compaction moved some); copies left by an interrupted
compaction are kept once. The first ``paging.BATCH`` messages of each queue are read into
memory; the rest stay on disk as the queue's tail, to be read back as it drains.

A message comes back redelivered if a DELIVERED mark says it was handed out, or after an
unclean shutdown (no CLEAN file): its mark may have been lost with the process.
"""

from __future__ import annotations

import logging
import time
from array import array
from typing import TYPE_CHECKING

from ..ready import PriorityReady
from .definitions import fsync_dir
from .paging import BATCH, PagedReadyList, enqueued_since
from .records import past_damage, read_marks, short
from .scan import scan_run

if TYPE_CHECKING:
    from ..queue import Queue
    from ..server import Server
    from .messages import MessageLog

log = logging.getLogger("leveret.store")


class _Collected:
    """The live records of one queue, in the order they were found."""

    __slots__ = ("queue", "orders", "ids", "sizes", "delivered", "prios")

    def __init__(self, queue: Queue | None) -> None:
        self.queue = queue
        self.orders = array("Q")
        self.ids = array("Q")
        self.sizes = array("I")
        self.delivered = bytearray()
        self.prios = bytearray()


def recover_messages(store: MessageLog, server: Server) -> None:
    started = time.monotonic()
    clean_file = store.dir / "CLEAN"
    clean = clean_file.exists()
    if clean:
        clean_file.unlink()  # from now on a crash must be seen as one
        fsync_dir(store.dir)
    targets: dict[bytes, Queue] = {}
    for vhost in server.vhosts.values():
        for queue in vhost.queues.values():
            if queue.durable:
                targets[short(vhost.name) + short(queue.name)] = queue
    collected: dict[bytes, _Collected] = {}
    dead_orders: set[int] = set()
    segments = store.segments()
    for path in store.dir.glob("*.marks"):
        if path.stem.isdigit() and int(path.stem) not in segments:
            path.unlink()
    max_order = 0
    any_moved = False

    def new(key: bytes) -> _Collected:
        return _Collected(targets.get(key))

    for seg in segments:
        removed, delivered = read_marks(store.marks_path(seg))
        path = store.data_path(seg)
        data = path.read_bytes()
        published = live = 0
        pos: int | None = 0
        while pos is not None and pos < len(data):
            pos, seen, top, dead, found, moved = scan_run(data, pos, seg << 32, removed,
                                                          delivered, collected, new)
            published += seen
            live += found
            any_moved = any_moved or moved > 0
            max_order = max(max_order, top)
            dead_orders.update(dead)
            if pos < len(data):
                pos = past_damage(path, data, pos)
        store.published[seg] = published
        store.live[seg] = live
    store.order = max_order + 1
    restored = dropped = 0
    for c in collected.values():
        if c.queue is None:
            for store_id in c.ids:
                _drop(store, store_id)
            dropped += len(c.ids)
            continue
        # without compaction's copies, segment and offset order is publish order already
        keep = _in_order(c, dead_orders) if any_moved or dead_orders else None
        if keep is not None and not all(keep):
            for store_id, k in zip(c.ids, keep):
                if not k:
                    _drop(store, store_id)
            c.ids = array("Q", (x for x, k in zip(c.ids, keep) if k))
            c.sizes = array("I", (x for x, k in zip(c.sizes, keep) if k))
            c.delivered = bytearray(x for x, k in zip(c.delivered, keep) if k)
            c.prios = bytearray(x for x, k in zip(c.prios, keep) if k)
        if not clean:
            c.delivered = bytearray(b"\x01" * len(c.ids))
        restored += len(c.ids)
        _restore(store, c)
    next_seg = (segments[-1] + 1) if segments else 1
    for seg in segments:
        if store.live[seg] == 0:
            store.delete_segment(seg)
    store.first_seg = next_seg
    store.open_segment(next_seg)
    for seg in segments:
        store.check_segment(seg)
    if segments:
        log.info("store: recovered %d persistent messages from %s in %.2f s (%s shutdown)%s",
                 restored, store.dir.parent, time.monotonic() - started,
                 "clean" if clean else "unclean",
                 f"; {dropped} of queues that no longer exist were dropped" if dropped else "")


def _drop(store: MessageLog, store_id: int) -> None:
    """A record recovery does not restore: its queue is gone, or it is a second copy."""
    store.forget_at_recovery(store_id)
    store.live[store_id >> 32] -= 1


def _in_order(c: _Collected, dead_orders: set[int]) -> list[bool]:
    """Sort ``c`` by order if compaction moved records; which ones to keep (one copy each)."""
    orders = c.orders
    n = len(orders)
    ordered = all(orders[i] < orders[i + 1] for i in range(n - 1))
    if not ordered:
        perm = sorted(range(n), key=orders.__getitem__)
        c.orders = array("Q", (orders[i] for i in perm))
        c.ids = array("Q", (c.ids[i] for i in perm))
        c.sizes = array("I", (c.sizes[i] for i in perm))
        c.delivered = bytearray(c.delivered[i] for i in perm)
        c.prios = bytearray(c.prios[i] for i in perm)
        orders = c.orders
    keep = [True] * n
    if not ordered:
        for i in range(1, n):
            if orders[i] == orders[i - 1]:  # two copies (compaction was interrupted)
                keep[i] = False
                c.delivered[i - 1] |= c.delivered[i]
    if dead_orders:
        for i in range(n):
            if orders[i] in dead_orders:
                keep[i] = False
    return keep


def _restore(store: MessageLog, c: _Collected) -> None:
    queue = c.queue
    assert queue is not None
    ready = queue.ready
    if isinstance(ready, PriorityReady):
        levels: dict[int, list[int]] = {}
        for i, prio in enumerate(c.prios):
            levels.setdefault(min(prio, ready.max), []).append(i)
        for level, idx in levels.items():
            _restore_level(store, queue, ready.levels[level], c, idx)
    else:
        _restore_level(store, queue, ready, c, range(len(c.ids)))


def _restore_level(store: MessageLog, queue: Queue, level: object, c: _Collected,
                   idx: range | list[int]) -> None:
    head = idx[:BATCH]
    rest = idx[BATCH:]
    stamps: list[int] = []
    messages = store.read_messages([c.ids[i] for i in head], stamps)
    now, wall = time.monotonic(), time.time()
    for i, msg, stamp in zip(head, messages, stamps):
        if msg is None:
            store.forget(c.ids[i])
            continue
        queue.recovered(msg, c.ids[i], bool(c.delivered[i]), enqueued_since(stamp, now, wall))
    if not rest:
        return
    assert isinstance(level, PagedReadyList)
    if isinstance(rest, range):
        ids, sizes, delivered = c.ids[rest.start :], c.sizes[rest.start :], c.delivered[
            rest.start :]
    else:
        ids = array("Q", (c.ids[i] for i in rest))
        sizes = array("I", (c.sizes[i] for i in rest))
        delivered = bytearray(c.delivered[i] for i in rest)
    level.tail.extend_recovered(ids, sizes, delivered)
    total = sum(sizes)
    level.tail_bytes += total
    queue.recovered_on_disk(len(ids), total)
    if isinstance(queue.ready, PriorityReady):
        queue.ready.count += len(ids)

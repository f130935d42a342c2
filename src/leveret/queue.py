"""One message queue: ready messages in order, its consumers, and what is out for acknowledgement.

Messages are handed to consumers round-robin (highest ``x-priority`` first, as RabbitMQ's
consumer priorities do). A requeued message goes back to its original position: every entry
carries the sequence number it was enqueued with and the ready list is kept in that order
(rabbitmq.com/docs/confirms, "Delivery Acknowledgement Timeout"/"Negative Acknowledgement").
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .message import Message, QueueEntry

if TYPE_CHECKING:
    from .channel import Channel
    from .vhost import VirtualHost

_consumer_tags = itertools.count(1)


class Consumer:
    """A basic.consume subscription of one channel to one queue."""

    __slots__ = (
        "channel",
        "queue",
        "tag",
        "no_ack",
        "exclusive",
        "priority",
        "prefetch",
        "unacked",
        "arguments",
    )

    def __init__(
        self,
        channel: Channel,
        queue: Queue,
        tag: str,
        no_ack: bool,
        exclusive: bool,
        prefetch: int,
        arguments: dict[str, Any],
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.no_ack = no_ack
        self.exclusive = exclusive
        prio = arguments.get("x-priority", 0)
        self.priority = prio if isinstance(prio, int) and not isinstance(prio, bool) else 0
        self.prefetch = prefetch  # per-consumer limit (basic.qos global=false), 0 = none
        self.unacked = 0
        self.arguments = arguments

    def can_take(self) -> bool:
        if self.prefetch and self.unacked >= self.prefetch and not self.no_ack:
            return False
        return self.channel.can_deliver()


def new_consumer_tag() -> str:
    return f"amq.ctag-{next(_consumer_tags):08d}-leveret"


class Queue:
    """A queue of one virtual host."""

    def __init__(
        self,
        vhost: VirtualHost,
        name: str,
        durable: bool = False,
        exclusive_owner: object | None = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        self.ready: deque[QueueEntry] = deque()
        self.ready_bytes = 0
        self.consumers: list[Consumer] = []
        self.unacked = 0
        self.deleted = False
        self._seq = 0
        self._rr = 0
        self._had_consumer = False
        self._mixed_priorities = False
        self.on_delete: list[Callable[[Queue], None]] = []

    # ------------------------------------------------------------------ introspection

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={len(self.ready)} unacked={self.unacked}>"

    # ------------------------------------------------------------------ publishing

    def next_entry(self, message: Message) -> QueueEntry:
        self._seq += 1
        return QueueEntry(self._seq, message)

    def push(self, message: Message, publisher: Channel | None = None, seq: int = 0) -> bool:
        """Enqueue a routed message; returns False if the queue refused it (overflow).

        ``publisher`` and ``seq`` identify the publish for a confirm that must wait for disk.
        """
        self._seq += 1
        entry = QueueEntry(self._seq, message)
        if not self.ready and self.consumers:
            consumer = self._pick_consumer()
            if consumer is not None:
                self._hand_over(consumer, entry)
                return True
        self.ready.append(entry)
        self.ready_bytes += len(message.body)
        if self.consumers:
            self.dispatch()
        return True

    # ------------------------------------------------------------------ delivery

    def _pick_consumer(self) -> Consumer | None:
        consumers = self.consumers
        n = len(consumers)
        if not n:
            return None
        start = self._rr % n
        if not self._mixed_priorities:
            for i in range(n):
                c = consumers[(start + i) % n]
                if c.can_take():
                    self._rr = start + i + 1
                    return c
            return None
        best: Consumer | None = None
        best_i = 0
        for i in range(n):
            c = consumers[(start + i) % n]
            if (best is None or c.priority > best.priority) and c.can_take():
                best, best_i = c, i
        if best is not None:
            self._rr = start + best_i + 1
        return best

    def _hand_over(self, consumer: Consumer, entry: QueueEntry) -> None:
        if not consumer.no_ack:
            self.unacked += 1
            consumer.unacked += 1
        consumer.channel.deliver(consumer, self, entry)
        if consumer.no_ack:
            self.settled(entry)

    def dispatch(self) -> None:
        """Hand ready messages to consumers while any of them can take one."""
        ready = self.ready
        while ready:
            consumer = self._pick_consumer()
            if consumer is None:
                return
            entry = ready.popleft()
            self.ready_bytes -= len(entry.message.body)
            self._hand_over(consumer, entry)

    def get(self) -> QueueEntry | None:
        """basic.get: the head of the queue, or None."""
        if not self.ready:
            return None
        entry = self.ready.popleft()
        self.ready_bytes -= len(entry.message.body)
        return entry

    # ------------------------------------------------------------------ settlement

    def settled(self, entry: QueueEntry) -> None:
        """An entry left the queue for good (acked, no-ack delivered, dropped)."""
        store = self.vhost.store
        if store is not None and entry.store_id:
            store.remove(self, entry)

    def acked(self, entry: QueueEntry, consumer: Consumer | None) -> None:
        self.unacked -= 1
        if consumer is not None:
            consumer.unacked -= 1
        self.settled(entry)

    def discard(self, entry: QueueEntry, consumer: Consumer | None, reason: str) -> None:
        """A delivered entry was rejected without requeue: it leaves the queue."""
        self.unacked -= 1
        if consumer is not None:
            consumer.unacked -= 1
        self.settled(entry)

    def requeue(self, entries: Iterable[QueueEntry], consumers: Iterable[Consumer | None]) -> None:
        """Put delivered entries back at their original positions, marked redelivered."""
        for c in consumers:
            if c is not None:
                c.unacked -= 1
        if self.deleted:
            self.unacked -= len(list(entries))
            return
        ready = self.ready
        for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
            self.unacked -= 1
            entry.redelivered = True
            self.ready_bytes += len(entry.message.body)
            if not ready or entry.seq < ready[0].seq:
                ready.appendleft(entry)
            elif entry.seq > ready[-1].seq:
                ready.append(entry)
            else:
                # rare: interleaved with other requeued or undelivered entries
                keys = [e.seq for e in ready]
                ready.insert(bisect.bisect_left(keys, entry.seq), entry)
        self.dispatch()

    # ------------------------------------------------------------------ consumers

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self._had_consumer = True
        if consumer.priority:
            self._mixed_priorities = True
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        first = self.consumers[0].priority if self.consumers else 0
        self._mixed_priorities = any(c.priority != first for c in self.consumers)
        if self.auto_delete and not self.consumers and self._had_consumer and not self.deleted:
            # auto-delete: deleted when its last consumer goes (after having had one)
            self.vhost.delete_queue(self)

    # ------------------------------------------------------------------ maintenance

    def purge(self) -> int:
        count = len(self.ready)
        store = self.vhost.store
        if store is not None:
            for entry in self.ready:
                if entry.store_id:
                    store.remove(self, entry)
        self.ready.clear()
        self.ready_bytes = 0
        return count

    def peek(self, limit: int | None = None) -> list[QueueEntry]:
        """The ready entries from the head, without consuming them."""
        if limit is None:
            return list(self.ready)
        return list(itertools.islice(self.ready, limit))

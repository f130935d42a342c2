"""Quorum queues (``x-queue-type: quorum``, rabbitmq.com/docs/quorum-queues) on one node.

No Raft: what a client can see of a quorum queue, as RabbitMQ 3.x shows it (checked against
3.10; where 3.13 differs, 3.13):

* Declared durable, not exclusive, not auto-delete, not server-named (406 texts in
  ``vhost.py``); the arguments of other queue types are refused (``queue_args.py``).
* Every message is kept on disk with a data directory, persistent or not, and its confirm
  waits for the fsync, as a Raft log commit does.
* Each message counts how often it came back (``x-delivery-count``, rabbit_fifo's
  delivery_count): the header is on a delivery once the count is above 0 (3.10 also sent
  ``0`` to basic.get), and such a delivery is flagged redelivered.
* A message a client gives back (basic.nack/reject with requeue, basic.recover) goes to the
  back of the queue (rabbit_fifo's ``#requeue``); with ``x-delivery-limit`` set, and for
  messages of a closing channel, it goes to the front, in the order returned (rabbit_fifo's
  ``returns``). Past the delivery limit a returned message is dead-lettered with reason
  ``delivery_limit`` (or dropped without a dead-letter exchange).
* ``x-overflow: reject-publish-dlx`` is taken and acts as drop-head; ``x-dead-letter-strategy:
  at-least-once`` is taken (dead letters are routed at once either way on one node).
* No global QoS (540 at basic.consume), no queue.delete if-unused/if-empty (540).

Not kept: a count is lost when the message is read back from disk (a restart, or a long queue
paged out past the memory budget); RabbitMQ keeps it in the Raft log. RabbitMQ 4.x's default
delivery limit (20) and its split of the count into acquired and delivery counts are 4.x
behaviours and not followed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .deadletter import dead_letter, join_properties, join_table, split_properties, split_table
from .errors import NOT_IMPLEMENTED, ConnectionError_
from .message import Entry, Message, QueueEntry
from .queue import Queue
from .queue_args import QUEUE_TYPE_ARGUMENT_LISTS

if TYPE_CHECKING:
    from .channel import Channel
    from .queue import Consumer

_HEADERS = 2  # the headers property's index
_COUNT_HEADER = b"x-delivery-count"
_LONG = struct.Struct(">q")


class QuorumEntry(QueueEntry):
    """An entry that counts its returns; while the count is above 0, ``message`` is a copy
    carrying the ``x-delivery-count`` header and ``original`` the message as published."""

    __slots__ = ("delivery_count", "original")

    def __init__(self, seq: int, message: Message, deadline: float = 0.0) -> None:
        super().__init__(seq, message, deadline)
        self.delivery_count = 0
        self.original: Message | None = None


class QuorumQueue(Queue):
    """A quorum queue: a durable queue with delivery counting and RabbitMQ's requeue order."""

    queue_type = "quorum"
    compared_arguments = QUEUE_TYPE_ARGUMENT_LISTS["quorum"]
    entry_class = QuorumEntry
    persists_all = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # returned messages served first get sequence numbers below every enqueued one, in
        # the order they came back
        self._front = -(1 << 62)

    def check_consume(self, channel: Channel, no_ack: bool, exclusive: bool,
                      arguments: dict[str, Any]) -> None:
        if channel.prefetch_channel:
            # rabbit_quorum_queue:consume refuses a channel with a global prefetch limit
            raise ConnectionError_(NOT_IMPLEMENTED, f"queue '{self.name}' in vhost "
                                                    f"'{self.vhost.name}' does not support "
                                                    "global qos")
        super().check_consume(channel, no_ack, exclusive, arguments)

    def check_delete(self, if_unused: bool, if_empty: bool) -> int:
        if if_unused or if_empty:
            raise ConnectionError_(
                NOT_IMPLEMENTED, f"cannot delete queue '{self.name}' in vhost "
                f"'{self.vhost.name}'. queue.delete operations with "
                f"{'if-unused' if if_unused else 'if-empty'} flag set are not supported by "
                "quorum queues")
        return self.message_count

    def _dead_letter(self, entry: Entry, reason: str) -> None:
        # the delivery count header is added on delivery, never part of a dead letter
        original = getattr(entry, "original", None)
        dead_letter(self, original or entry.message, reason)

    @property
    def messages_persistent(self) -> int:
        """Every message of a quorum queue is persistent, as RabbitMQ counts them."""
        return len(self.ready) + self.unacked

    @property
    def message_bytes_persistent(self) -> int:
        return self.message_bytes

    @property
    def message_bytes_ram(self) -> int:
        return 0  # as RabbitMQ 3.10 reports a quorum queue's

    def requeue(self, entries: Iterable[Entry], consumers: Iterable[Consumer | None],
                explicit: bool = False) -> None:
        for c in consumers:
            if c is not None:
                c.unacked -= 1
        entries = list(entries)
        for entry in entries:
            self.left_unacked(entry)
        if self.deleted:
            for entry in entries:
                self.settled(entry)
            return
        limit = self.options.delivery_limit
        to_back = explicit and limit is None
        ready = self.ready
        for entry in entries:  # in delivery order
            assert isinstance(entry, QuorumEntry)
            entry.delivery_count += 1
            if limit is not None and entry.delivery_count > limit:
                self.settled(entry)
                self._dead_letter(entry, "delivery_limit")
                continue
            _count_in_header(entry)
            entry.redelivered = True
            size = len(entry.message.body)
            self.ready_bytes += size
            self.memory.used += size
            if to_back:
                self._seq += 1
                entry.seq = self._seq
                ready.append(entry)
            else:
                self._front += 1
                entry.seq = self._front
                ready.restore(entry)
        if self.options.overflow == "drop-head":
            while self._full() and self.ready:
                head = self._pop_ready()
                self.settled(head)
                self._dead_letter(head, "maxlen")
        self.dispatch()
        if self.on_ready:
            self._ready_grew()


def _count_in_header(entry: QuorumEntry) -> None:
    """Give ``entry`` a copy of its message with ``x-delivery-count`` (a long) set; the other
    headers and properties keep their wire bytes."""
    original = entry.original or entry.message
    entry.original = original
    props = split_properties(original.raw_props)
    headers = split_table(props[_HEADERS]) if _HEADERS in props else {}
    headers[_COUNT_HEADER] = b"l" + _LONG.pack(entry.delivery_count)
    props[_HEADERS] = join_table(list(headers.items()))
    counted = Message(original.exchange, original.routing_key, join_properties(props),
                      original.body, original.delivery_mode, original.priority,
                      original.expiration)
    counted.ttl = original.ttl
    counted.extra_routing_keys = original.extra_routing_keys
    counted.persisted = original.persisted
    entry.message = counted

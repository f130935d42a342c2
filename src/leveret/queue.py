"""One message queue: ready messages in order, its consumers, and what is out for acknowledgement.

Messages are handed to consumers round-robin (highest ``x-priority`` first, as RabbitMQ's
consumer priorities do; only the first with ``x-single-active-consumer``). A requeued message
goes back to its original position: every entry carries the sequence number it was enqueued
with and the ready list is kept in that order (rabbitmq.com/docs/confirms).

A queue declared without TTL, length limits or priorities takes the plain path: no clock, no
limit checks per message. Features cost only the queues that use them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .deadletter import dead_letter
from .errors import ACCESS_REFUSED, PRECONDITION_FAILED, ChannelError
from .message import Entry, Message, QueueEntry, claim, message_of, redelivered_of, ttl_of
from .queue_args import QueueOptions, parse_queue_arguments
from .ready import PriorityReady, ReadyList

if TYPE_CHECKING:
    from .channel import Channel
    from .vhost import VirtualHost

_consumer_tags = itertools.count(1)
_now = time.monotonic


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

    @staticmethod
    def new_tag() -> str:
        """A server-generated consumer tag (basic.consume without one), as RabbitMQ's."""
        return f"amq.ctag-{next(_consumer_tags):08d}-leveret"


class Queue:
    """A queue of one virtual host."""

    # what a queue type may do differently (stream.py overrides these)
    queue_type = "classic"
    # the arguments a redeclare must repeat; None: the classic set (vhost.COMPARED_QUEUE_ARGS)
    compared_arguments: tuple[str, ...] | None = None
    entry_class: type[QueueEntry] = QueueEntry
    persists_all = False  # a quorum queue keeps transient messages on disk too

    def __init__(
        self,
        vhost: VirtualHost,
        name: str,
        durable: bool = False,
        exclusive_owner: object | None = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        options: QueueOptions | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        self.options = options or parse_queue_arguments(self.arguments, name, vhost.name)
        opts = self.options
        store = vhost.store
        # with a data dir, a durable queue's ready list pages messages out past the budget
        new_list: Callable[[], ReadyList] = (
            (lambda: store.ready_list(self)) if store is not None and durable else ReadyList)
        self.ready: ReadyList | PriorityReady = (
            PriorityReady(opts.max_priority, new_list) if opts.max_priority is not None
            else new_list()
        )
        self.ready_bytes = 0
        self.consumers: list[Consumer] = []
        self.unacked = 0
        self.unacked_bytes = 0  # bodies delivered and not yet acknowledged
        # persistent messages of a durable queue, ready and unacknowledged, and the
        # unacknowledged among them (RabbitMQ's messages_persistent: rabbit_variable_queue
        # counts a message as persistent when both it and its queue are durable)
        self.persistent_count = 0
        self.persistent_bytes = 0
        self.persistent_unacked = 0
        self.persistent_unacked_bytes = 0
        # a quorum queue counts all its messages as persistent (its own properties)
        self._counts_persistent = durable and not self.persists_all
        self.deleted = False
        self._seq = 0
        self._rr = 0
        self._had_consumer = False
        self._mixed_priorities = False
        # durable queues take the feature path: persistent messages go to the store there
        self._plain = opts.plain and not durable
        self._timed = opts.message_ttl is not None  # entries may carry deadlines
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._expiry_at = 0.0  # when _expiry_timer fires
        self._sac = opts.single_active_consumer
        self._idle_timer: asyncio.TimerHandle | None = None
        self.on_delete: list[Callable[[Queue], None]] = []
        self.on_ready: list[Callable[[Queue], None]] = []  # told when messages become ready
        self.memory = vhost.memory
        # message counters (counters.QUEUE_COUNTERS): read by the management API
        self.stat_publish = 0
        self.stat_deliver = 0
        self.stat_deliver_no_ack = 0
        self.stat_get = 0
        self.stat_get_no_ack = 0
        self.stat_get_empty = 0
        self.stat_redeliver = 0
        self.stat_ack = 0
        if opts.expires is not None:
            self._arm_idle_timer()

    # ------------------------------------------------------------------ introspection

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def messages_ram(self) -> int:
        """Ready messages held in memory; the others wait on disk (RabbitMQ's name)."""
        return self.ready.in_memory_count()

    @property
    def message_bytes(self) -> int:
        """Bodies of the ready and unacknowledged messages (RabbitMQ's name)."""
        return self.ready_bytes + self.unacked_bytes

    @property
    def message_bytes_paged_out(self) -> int:
        """Bodies of the ready messages waiting on disk (RabbitMQ's name)."""
        return self.ready.paged_out_bytes()

    @property
    def message_bytes_ram(self) -> int:
        """Bodies of the ready and unacknowledged messages in memory (RabbitMQ's name)."""
        return self.message_bytes - self.ready.paged_out_bytes()

    @property
    def messages_persistent(self) -> int:
        """Persistent messages, ready and unacknowledged (RabbitMQ's name)."""
        return self.persistent_count

    @property
    def message_bytes_persistent(self) -> int:
        return self.persistent_bytes

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={len(self.ready)} unacked={self.unacked}>"

    def declare_ok_counts(self) -> tuple[int, int]:
        """(message count, consumer count) for queue.declare-ok."""
        return self.message_count, self.consumer_count

    # ------------------------------------------------------------------ type rules

    def check_consume(self, channel: Channel, no_ack: bool, exclusive: bool,
                      arguments: dict[str, Any]) -> None:
        """Refuse a new consumer as this queue type does (before consume-ok is sent)."""
        if exclusive and self.consumers or any(c.exclusive for c in self.consumers):
            raise ChannelError(
                ACCESS_REFUSED,
                f"queue '{self.name}' in vhost '{self.vhost.name}' in exclusive use",
            )

    def check_purge(self) -> None:
        """Refuse queue.purge as this queue type does (a classic queue takes it)."""

    def check_delete(self, if_unused: bool, if_empty: bool) -> int:
        """Refuse queue.delete's if-unused / if-empty as RabbitMQ does; returns the message
        count delete-ok reports."""
        where = f"queue '{self.name}' in vhost '{self.vhost.name}'"
        if if_unused and self.consumers:
            raise ChannelError(PRECONDITION_FAILED, f"{where} in use")
        if if_empty and self.ready:
            raise ChannelError(PRECONDITION_FAILED, f"{where} not empty")
        return self.message_count

    # ------------------------------------------------------------------ publishing

    def push(self, message: Message, publisher: Channel | None = None, seq: int = 0) -> bool:
        """Enqueue a routed message; returns False if the queue refused it (reject-publish).

        ``publisher`` and ``seq`` identify the publish for a confirm that must wait for disk.
        """
        if self._plain and ttl_of(message) is None:
            self.stat_publish += 1
            self._seq += 1
            entry = claim(message, self._seq)  # the message itself, in its first queue
            if not self.ready and self.consumers:
                consumer = self._pick_consumer()
                if consumer is not None:
                    self._hand_over(consumer, entry)
                    return True
            self.ready.append(entry)
            size = len(message.body)
            self.ready_bytes += size
            self.memory.used += size
            if self.consumers:
                self.dispatch()
            if self.on_ready:
                self._ready_grew()
            return True
        return self._push_with_features(message, publisher, seq)

    def _ttl_of(self, message: Message) -> int | None:
        """The TTL (ms) of ``message`` in this queue: the queue's or its own, the shorter."""
        ttl = self.options.message_ttl
        if message.ttl is not None:
            ttl = message.ttl if ttl is None else min(ttl, message.ttl)
        return ttl

    def _push_with_features(self, message: Message, publisher: Channel | None = None,
                            seq: int = 0) -> bool:
        opts = self.options
        size = len(message.body)
        if opts.overflow != "drop-head" and self._would_overflow(size):
            if opts.overflow == "reject-publish-dlx":
                dead_letter(self, message, "maxlen")
            return False
        ttl = self._ttl_of(message)
        self.stat_publish += 1
        self._seq += 1
        entry = self.entry_class(self._seq, message)
        if self._counts_persistent and message.delivery_mode == 2:
            self.persistent_count += 1
            self.persistent_bytes += size
        store = self.vhost.store
        if store is not None and self.durable and (message.delivery_mode == 2
                                                   or self.persists_all):
            store.add(self, entry, publisher, seq)
        if ttl is not None:
            self._timed = True
            entry.deadline = _now() + ttl / 1000.0
        if self.consumers:
            self._expire_head()
            if not self.ready:
                consumer = self._pick_consumer()
                if consumer is not None:
                    self._hand_over(consumer, entry)
                    return True
        # Even with TTL 0 the message is enqueued: it counts in message_count and against
        # length limits, and expires when it reaches the head (at once if it is the head).
        # RabbitMQ 3.10 does the same (deliver_or_enqueue; checked by test_differential_ttl).
        self.ready.append(entry)
        self.ready_bytes += size
        self.memory.used += size
        dropped = False
        if opts.overflow == "drop-head":
            while self._full() and self.ready:
                head = self._pop_ready()
                self.settled(head)
                self._dead_letter(head, "maxlen")
                dropped = True
        if ttl == 0 or dropped:
            # the head may be expired now: the new entry, or what drop-head left at the head
            self._expire_head()
        if entry.deadline:
            self._arm_expiry_timer()
        if self.consumers:
            self.dispatch()
        if self.on_ready:
            self._ready_grew()
        return True

    def _would_overflow(self, size: int) -> bool:
        """Would one more message of ``size`` bytes go over a length limit? RabbitMQ counts
        ready messages only, and refuses even when a consumer could take it at once."""
        opts = self.options
        if opts.max_length is not None and len(self.ready) + 1 > opts.max_length:
            return True
        return opts.max_length_bytes is not None and (
            self.ready_bytes + size > opts.max_length_bytes)

    def _full(self) -> bool:
        """Over a length limit (drop-head drops from the head until it is not)?"""
        opts = self.options
        if opts.max_length is not None and len(self.ready) > opts.max_length:
            return True
        return opts.max_length_bytes is not None and self.ready_bytes > opts.max_length_bytes

    def _pop_ready(self) -> Entry:
        entry = self.ready.popleft()
        # _left_ready inlined: this is on the delivery hot path
        size = len(message_of(entry).body)
        self.ready_bytes -= size
        memory = self.memory
        memory.used -= size
        if memory.blocked:
            memory.check_release()
        return entry

    def _left_ready(self, entry: Entry) -> None:
        size = len(message_of(entry).body)
        self.ready_bytes -= size
        memory = self.memory
        memory.used -= size
        if memory.blocked:
            memory.check_release()

    # ------------------------------------------------------------------ expiry

    def _expire_head(self) -> None:
        """Dead-letter expired messages at the head (RabbitMQ expires at the head only: a
        message behind one that does not expire waits, however old it is)."""
        if not self._timed or not self.ready:
            return
        now = _now()
        ready = self.ready
        while True:
            head = ready.pop_expired(now)
            if head is None:
                return
            self._left_ready(head)
            self.settled(head)
            self._dead_letter(head, "expired")

    def _arm_expiry_timer(self) -> None:
        """Expire the head on time even when nothing else happens to the queue."""
        if not self.ready or self.deleted:
            return
        deadline = self.ready.next_deadline()
        if not deadline:
            return
        timer = self._expiry_timer
        if timer is not None:
            if deadline >= self._expiry_at:
                return
            timer.cancel()  # a new head expires sooner
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet (a store restoring before start): lazy expiry only
            return
        self._expiry_at = deadline
        self._expiry_timer = loop.call_later(max(0.0, deadline - _now()), self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        if self.deleted:
            return
        self._expire_head()
        self._arm_expiry_timer()

    def _arm_idle_timer(self) -> None:
        """x-expires: delete the queue after that long unused (no consumers, gets, redeclares)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        expires = self.options.expires
        if expires is None or self.consumers or self.deleted:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._idle_timer = loop.call_later(expires / 1000.0, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        self._idle_timer = None
        if not self.consumers and not self.deleted:
            self.vhost.delete_queue(self)

    def touch(self) -> None:
        """The queue was used (declared again, basic.get): restart the x-expires clock."""
        if self.options.expires is not None:
            self._arm_idle_timer()

    # ------------------------------------------------------------------ delivery

    def _pick_consumer(self) -> Consumer | None:
        consumers = self.consumers
        n = len(consumers)
        if not n:
            return None
        if self._sac:
            # single active consumer: the earliest registered; the others wait their turn
            first = consumers[0]
            return first if first.can_take() else None
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

    def _hand_over(self, consumer: Consumer, entry: Entry) -> None:
        if redelivered_of(entry):
            self.stat_redeliver += 1
        if not consumer.no_ack:
            consumer.unacked += 1
            self.stat_deliver += 1
            self.took_unacked(entry)
            consumer.channel.deliver(consumer, self, entry)
        else:
            self.stat_deliver_no_ack += 1
            consumer.channel.deliver(consumer, self, entry)
            self.settled(entry)

    def dispatch(self) -> None:
        """Hand ready messages to consumers while any of them can take one."""
        ready = self.ready
        if self._timed:
            self._expire_head()
        while ready:
            consumer = self._pick_consumer()
            if consumer is None:
                break
            self._hand_over(consumer, self._pop_ready())
            if self._timed:
                self._expire_head()
        if self._timed:
            self._arm_expiry_timer()

    def get(self) -> Entry | None:
        """basic.get: the head of the queue, or None."""
        self.touch()
        self._expire_head()
        if not self.ready:
            return None
        entry = self._pop_ready()
        if self._timed:
            # the new head may have expired already (a TTL-0 message that waited behind this
            # one): RabbitMQ's fetch drops it before it replies, so a count sent next never
            # sees it
            self._expire_head()
            self._arm_expiry_timer()  # the new head may expire sooner
        return entry

    def stored_entry(self, message: Message, store_id: int, redelivered: bool,
                     deadline: float = 0.0, since: float = 0.0) -> Entry:
        """An entry for a message read back from the store, behind every entry so far.

        ``since``: it was recovered at start-up and entered its queue then (monotonic clock),
        so its TTL (queue or per message) counts from then; otherwise ``deadline`` is the one
        it had when it was paged out.
        """
        self._seq += 1
        entry = self.entry_class(self._seq, message)
        entry.store_id = store_id
        entry.redelivered = redelivered
        if since:
            ttl = self._ttl_of(message)
            if ttl is not None:
                deadline = since + ttl / 1000.0
        if deadline:
            self._timed = True
            entry.deadline = deadline
        return entry

    def recovered(self, message: Message, store_id: int, redelivered: bool,
                  since: float = 0.0) -> None:
        """A persistent message read back from the store at start-up, in its old order;
        ``since``: when it entered the queue (monotonic clock; default now)."""
        entry = self.stored_entry(message, store_id, redelivered, since=since or _now())
        self.ready.append(entry)
        size = len(message.body)
        if self._counts_persistent and message.delivery_mode == 2:
            self.persistent_count += 1
            self.persistent_bytes += size
        self.ready_bytes += size
        self.memory.used += size
        if entry.deadline:
            self._arm_expiry_timer()  # expire on time even if nobody consumes after a restart

    def recovered_on_disk(self, count: int, size: int) -> None:
        """``count`` persistent messages of ``size`` bytes in all were recovered at start-up
        straight into the paged list's tail, unread (store/recovery.py)."""
        self.ready_bytes += size
        if self._counts_persistent:
            self.persistent_count += count
            self.persistent_bytes += size

    # ------------------------------------------------------------------ settlement

    def took_unacked(self, entry: Entry) -> None:
        """``entry`` was delivered and waits for its ack (a consumer's or basic.get's): counted
        in ``unacked`` and its sizes."""
        message = message_of(entry)
        size = len(message.body)
        self.unacked += 1
        self.unacked_bytes += size
        if self._counts_persistent and message.delivery_mode == 2:
            self.persistent_unacked += 1
            self.persistent_unacked_bytes += size

    def left_unacked(self, entry: Entry) -> None:
        """``entry`` no longer waits for its ack (acked, rejected or requeued)."""
        message = message_of(entry)
        size = len(message.body)
        self.unacked -= 1
        self.unacked_bytes -= size
        if self._counts_persistent and message.delivery_mode == 2:
            self.persistent_unacked -= 1
            self.persistent_unacked_bytes -= size

    def settled(self, entry: Entry) -> None:
        """An entry left the queue for good (acked, no-ack delivered, dropped)."""
        if self._counts_persistent:
            message = message_of(entry)
            if message.delivery_mode == 2:
                self.persistent_count -= 1
                self.persistent_bytes -= len(message.body)
        store = self.vhost.store
        if store is not None and entry.store_id:
            store.remove(self, entry)

    def acked(self, entry: Entry, consumer: Consumer | None) -> None:
        self.stat_ack += 1
        if consumer is not None:
            consumer.unacked -= 1
        self.left_unacked(entry)
        self.settled(entry)

    def discard(self, entry: Entry, consumer: Consumer | None, reason: str) -> None:
        """A delivered entry was rejected without requeue: it leaves the queue (to the DLX)."""
        if consumer is not None:
            consumer.unacked -= 1
        self.left_unacked(entry)
        self.settled(entry)
        if not self.deleted:
            self._dead_letter(entry, reason)

    def _dead_letter(self, entry: Entry, reason: str) -> None:
        """``entry`` left the queue (expired, pushed out, rejected): to the DLX, if any."""
        dead_letter(self, entry.message, reason)

    def requeue(self, entries: Iterable[Entry], consumers: Iterable[Consumer | None],
                explicit: bool = False) -> None:
        """Put delivered entries back at their original positions, marked redelivered.
        ``explicit``: the client asked (nack, reject, recover), rather than its channel
        closing; a quorum queue treats the two differently."""
        for c in consumers:
            if c is not None:
                c.unacked -= 1
        entries = list(entries)
        for entry in entries:
            self.left_unacked(entry)
        if self.deleted:
            for entry in entries:
                self.settled(entry)  # gone with the queue: its store record too
            return
        ready = self.ready
        for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
            entry.redelivered = True
            size = len(message_of(entry).body)
            self.ready_bytes += size
            self.memory.used += size
            ready.restore(entry)
        if self.options.overflow == "drop-head" and not self._plain:
            while self._full() and self.ready:
                head = self._pop_ready()
                self.settled(head)
                self._dead_letter(head, "maxlen")
        self.dispatch()
        if self.on_ready:
            self._ready_grew()

    # ------------------------------------------------------------------ consumers

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self._had_consumer = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
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
            return
        if not self.consumers:
            self.touch()
        elif self._sac:
            self.dispatch()  # the next consumer becomes the active one

    # ------------------------------------------------------------------ maintenance

    def purge(self) -> int:
        count = len(self.ready)
        store = self.vhost.store
        if store is not None:
            store.purge(self)  # without reading back what is paged out
        self.ready.clear()
        self.memory.used -= self.ready_bytes
        self.ready_bytes = 0
        self.persistent_count = self.persistent_unacked  # what is left: delivered, unacked
        self.persistent_bytes = self.persistent_unacked_bytes
        if self.memory.blocked:
            self.memory.check_release()
        return count

    def closed(self) -> None:
        """The queue was deleted: stop its timers."""
        for timer in (self._expiry_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_timer = self._idle_timer = None

    def _ready_grew(self) -> None:
        """Tell the watchers (``leveret.Broker.wait_for_messages``) that messages arrived."""
        for hook in list(self.on_ready):
            hook(self)

    def peek(self, limit: int | None = None) -> list[Entry]:
        """The ready entries from the head, without consuming them."""
        if limit is None:
            return list(self.ready)
        return list(itertools.islice(self.ready, limit))

"""Streams over AMQP 0-9-1 (``x-queue-type: stream``; rabbitmq.com/docs/streams).

A stream is an append-only log (``store/streams.py``): consuming does not remove anything, so
every consumer reads the messages again from where its ``x-stream-offset`` says (``first``,
``last``, ``next`` (the default), an offset, an AMQP timestamp, or an interval such as ``1h``)
and each delivery carries its offset in the ``x-stream-offset`` header (a long). What RabbitMQ
does, and so what this does (tests/test_streams.py, differential against RabbitMQ 3.10.8):

* A consumer needs manual acknowledgement and a prefetch (basic.qos, per consumer): it gets at
  most that many unacknowledged deliveries, and each ack, nack or reject lets one more through.
  Nothing is redelivered: a nack or reject with requeue, ``basic.recover`` or a closed channel
  only gives that credit back (RabbitMQ 3.11+; 3.10 closed the connection with 540 for nack and
  reject, and with 541 for recover). Deliveries are never flagged redelivered.
* ``basic.get`` and ``queue.purge`` are refused with 540 (connection), ``no_ack`` consumers
  with 540, a consumer without prefetch with 406, a channel with a global prefetch with 540;
  ``exclusive`` consume is not enforced; ``x-priority`` is refused (406).
* ``queue.declare`` reports the stream's length as its message count and 0 consumers;
  ``queue.delete`` ignores ``if-unused`` and ``if-empty`` and reports 0 messages.
* Retention (``x-max-length-bytes``, ``x-max-age``) deletes whole segments when a segment
  fills (``x-stream-max-segment-size-bytes``, 500 MB by default), as RabbitMQ does.
* With a data directory a stream is kept on disk and survives restarts (streams are always
  durable); without one it is kept in memory and counts against the memory watermark.
* Confirms: once the message is written to the OS (streams are not fsynced, as RabbitMQ's).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NOT_IMPLEMENTED, ConnectionError_
from .message import Entry, Message, QueueEntry
from .queue import Consumer, Queue
from .queue_args import QueueOptions
from .store.private import create, make_dir
from .store.streams import Cursor, StreamLog
from .stream_args import COMPARED_ARGS, StreamOptions, check_stream_consume, parse_offset_spec

if TYPE_CHECKING:
    from .channel import Channel
    from .vhost import VirtualHost

log = logging.getLogger("leveret.stream")


def stream_directory(root: Path, vhost: str, name: str) -> Path:
    """Where a stream lives in the data directory (names can be any bytes: hashed)."""
    digest = hashlib.sha256(f"{vhost}\0{name}".encode("utf-8", "surrogateescape"))
    return root / "streams" / digest.hexdigest()[:32]


class _Reader:
    """A consumer's place in the stream."""

    __slots__ = ("cursor", "start", "chunk", "i")

    def __init__(self, cursor: Cursor, start: int) -> None:
        self.cursor = cursor
        self.start = start  # nothing before this offset is delivered
        self.chunk: list[tuple[int, Message]] = []  # the chunk being delivered
        self.i = 0


class _StreamReady:
    """Stands in for a queue's ready list. True while a consumer could be fed (the channel
    dispatches queues whose ready list is true after acks and when it can write again); its
    length is the stream's, RabbitMQ's ``messages_ready`` of a stream."""

    __slots__ = ("stream",)

    def __init__(self, stream: StreamQueue) -> None:
        self.stream = stream

    def __bool__(self) -> bool:
        return self.stream.feedable()

    def __len__(self) -> int:
        return self.stream.message_count

    def in_memory_count(self) -> int:
        return self.stream.messages_ram

    def paged_out_bytes(self) -> int:
        return 0


class StreamQueue(Queue):
    """A stream: a queue whose messages stay, read by each consumer from its own offset."""

    queue_type = "stream"
    compared_arguments = COMPARED_ARGS

    def __init__(
        self,
        vhost: VirtualHost,
        name: str,
        durable: bool,
        exclusive_owner: object | None,
        auto_delete: bool,
        arguments: dict[str, Any],
        options: StreamOptions,
    ) -> None:
        # the base is set up as a plain in-memory queue (no paged ready list in the message
        # store); a stream is always durable (stream_args refuses anything else)
        super().__init__(vhost, name, False, None, False, arguments, QueueOptions())
        self.durable = True
        self.stream_options = options
        store = vhost.store
        directory = None
        if store is not None:
            directory = stream_directory(store.root, vhost.name, name)
            make_dir(directory, store.root)
            with create(directory / "NAME", "w", errors="surrogateescape") as f:
                f.write(f"{vhost.name}\n{name}\n")
        self.log = StreamLog(directory, options.max_segment_bytes, options.max_length_bytes,
                             options.max_age_ms, self._account)
        if store is not None:
            store.on_close.append(self.log.close)
        self.ready = _StreamReady(self)  # type: ignore[assignment]
        self._readers: dict[int, _Reader] = {}  # id(consumer) -> its place
        self._waiters: list[tuple[Channel, int] | None] = []  # confirms, one per pending
        self._flush_scheduled = False
        self._failing = False

    # ------------------------------------------------------------------ counts

    @property
    def message_count(self) -> int:
        return self.log.count

    @property
    def messages_ram(self) -> int:
        return self.log.count if self.log.dir is None else 0

    def declare_ok_counts(self) -> tuple[int, int]:
        # RabbitMQ's stream answers 0 consumers to queue.declare (rabbit_stream_queue:stat)
        return self.message_count, 0

    def check_delete(self, if_unused: bool, if_empty: bool) -> int:
        return 0  # a stream ignores both flags and reports no messages (3.10 and later)

    def _account(self, delta: int) -> None:
        memory = self.memory
        memory.used += delta
        if delta < 0 and memory.blocked:
            memory.check_release()

    # ------------------------------------------------------------------ publishing

    def push(self, message: Message, publisher: Channel | None = None, seq: int = 0) -> bool:
        self.log.append(message)
        waiter = None
        if (publisher is not None and seq and publisher.confirms is not None
                and self.log.dir is not None):
            publisher.confirms.wait(seq)  # confirmed once written
            waiter = (publisher, seq)
        self._waiters.append(waiter)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        """End of the turn: what was published becomes a chunk; its readers are fed."""
        self._flush_scheduled = False
        if self.log.closed:
            return
        written, error = self.log.flush()
        waiters, self._waiters = self._waiters, []
        for i, waiter in enumerate(waiters):
            if waiter is None:
                continue
            channel, seq = waiter
            confirms = channel.confirms
            if channel.open and confirms is not None:
                if i >= written:
                    confirms.nack(seq)  # not stored: the publisher must not count on it
                confirms.written(seq)
                channel.conn.want_confirm_flush(channel)
        if error is not None and not self._failing:
            log.error("stream '%s' in vhost '%s': cannot write (%s); %d messages were not "
                      "stored and their confirms are nacked", self.name, self.vhost.name, error,
                      len(waiters) - written)
        self._failing = error is not None
        if written:
            if self.consumers:
                self.dispatch()
            if self.on_ready:
                self._ready_grew()

    # ------------------------------------------------------------------ refused methods

    def _where(self) -> str:
        return f"queue '{self.name}' in vhost '{self.vhost.name}'"

    def get(self) -> Entry | None:
        raise ConnectionError_(NOT_IMPLEMENTED,
                               f"basic.get not supported by stream queues {self._where()}")

    def check_purge(self) -> None:
        raise ConnectionError_(NOT_IMPLEMENTED,
                               f"queue.purge not supported by stream queues {self._where()}")

    def purge(self) -> int:
        return 0  # nothing leaves a stream but by retention (the inspection API calls this)

    # ------------------------------------------------------------------ consumers

    def check_consume(self, channel: Channel, no_ack: bool, exclusive: bool,
                      arguments: dict[str, Any]) -> None:
        check_stream_consume(arguments, self.name, self.vhost.name, channel.prefetch_consumer,
                             no_ack, channel.prefetch_channel)

    def add_consumer(self, consumer: Consumer) -> None:
        if self.log.pending:
            self._flush()  # so that "next" and "last" mean what was published before
        kind, value = parse_offset_spec(consumer.arguments, self.name, self.vhost.name)
        stream = self.log
        if kind == "first":
            start = stream.first
        elif kind == "last":
            start = stream.last_chunk()
        elif kind == "next":
            start = stream.next
        elif kind == "offset":
            start = max(value, stream.first)  # a later one waits until it is written
        else:
            start = stream.offset_at(value)
        self._readers[id(consumer)] = _Reader(stream.cursor_at(start), start)
        super().add_consumer(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        self._readers.pop(id(consumer), None)
        super().remove_consumer(consumer)

    def feedable(self) -> bool:
        """Could a consumer take a message now (credit left and something to read)?"""
        end = self.log.next
        for consumer in self.consumers:
            reader = self._readers.get(id(consumer))
            if reader is not None and consumer.unacked < consumer.prefetch and (
                    reader.i < len(reader.chunk) or reader.cursor.offset < end):
                return True
        return False

    def dispatch(self) -> None:
        for consumer in list(self.consumers):
            self._feed(consumer)

    def _feed(self, consumer: Consumer) -> None:
        reader = self._readers.get(id(consumer))
        if reader is None:
            return
        channel = consumer.channel
        prefetch = consumer.prefetch
        stream = self.log
        while consumer.unacked < prefetch and channel.can_deliver():
            chunk = reader.chunk
            if reader.i >= len(chunk):
                more = stream.read(reader.cursor)
                if more is None:
                    return
                reader.chunk, reader.i = more, 0
                if more and more[-1][0] < reader.start:
                    reader.i = len(more)  # wholly before where this consumer starts
                continue
            offset, message = chunk[reader.i]
            reader.i += 1
            if offset < reader.start:
                continue
            consumer.unacked += 1
            channel.deliver(consumer, self, QueueEntry(offset, message))

    # ------------------------------------------------------------------ settlement

    def settled(self, entry: Entry) -> None:
        pass  # messages stay in the stream

    def acked(self, entry: Entry, consumer: Consumer | None) -> None:
        if consumer is not None:
            consumer.unacked -= 1  # credit for one more (the channel then dispatches)

    def discard(self, entry: Entry, consumer: Consumer | None, reason: str) -> None:
        self.acked(entry, consumer)  # no dead-lettering from a stream

    def requeue(self, entries: Iterable[Entry], consumers: Iterable[Consumer | None],
                explicit: bool = False) -> None:
        # RabbitMQ 3.11+: every settlement gives credit; nothing is delivered again
        for consumer in consumers:
            if consumer is not None:
                consumer.unacked -= 1
        if not self.deleted:
            self.dispatch()

    # ------------------------------------------------------------------ maintenance

    def closed(self) -> None:
        """The stream was deleted: its messages and files go."""
        super().closed()
        self._readers.clear()
        store = self.vhost.store
        if store is not None and self.log.close in store.on_close:
            store.on_close.remove(self.log.close)
        self.log.delete()
        self._waiters = []

    def peek(self, limit: int | None = None) -> list[Entry]:
        """Messages from the first kept, each as a consumer would get it."""
        out: list[Entry] = []
        if self.log.pending:
            self._flush()
        cursor = self.log.cursor_at(self.log.first)
        while limit is None or len(out) < limit:
            chunk = self.log.read(cursor)
            if chunk is None:
                break
            out.extend(QueueEntry(offset, message) for offset, message in chunk)
        return out if limit is None else out[:limit]

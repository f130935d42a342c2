"""One AMQP channel: publish assembly, consumers, acknowledgements, qos, confirms, transactions.

Hot events (publish, header, body, ack, nack, reject) arrive as tuples from the frame codec and
are handled by ``on_*`` methods; every other method arrives as a pamqp command and goes through
``handle_method``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import channel_methods, direct_reply, frames
from .ack_timeout import AckTimeouts
from .acks import DeliveryTags, UnknownDeliveryTag
from .confirms import Confirms
from .errors import (
    ACCESS_REFUSED,
    NO_ROUTE,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    PRECONDITION_FAILED,
    UNEXPECTED_FRAME,
    ChannelError,
    ConnectionError_,
)
from .exchange import Exchange
from .message import Entry, Message, message_of, redelivered_of
from .permissions import WRITE, Authorizer
from .queue import Consumer, Queue
from .queue_args import parse_expiration
from .sender_selected import apply as apply_sender_selected

if TYPE_CHECKING:
    from .connection import AMQPConnection
    from .vhost import VirtualHost

_encode_deliver = frames.encode_deliver
_encode_deliver_head = frames.encode_deliver_head
# bodies at least this large are written to the socket from the message (no copy): below it,
# copying into the output buffer costs less than another piece in the write
LARGE_BODY = 16384

_REPLY_QUEUE = direct_reply.REPLY_QUEUE.encode()
# RabbitMQ's ?MAX_MSG_SIZE: the most max_message_size may be
MAX_MESSAGE_SIZE = 512 * 1024 * 1024
# RabbitMQ's texts for frames out of order (rabbit_command_assembler)
_EXPECTED_METHOD = "expected method frame, got non method frame instead"
_EXPECTED_HEADER = "expected content header for class 60, got non content header frame instead"


class Channel:
    """Channel state of one connection (AMQP 0-9-1 section 2.2.5)."""

    def __init__(self, connection: AMQPConnection, channel_id: int) -> None:
        self.conn = connection
        self.id = channel_id
        vhost = connection.vhost
        # channel.open is only taken on an open connection, and connection.open set the vhost
        assert vhost is not None, "channel opened before connection.open"
        self.vhost: VirtualHost = vhost
        authz = connection.authz
        assert authz is not None, "connection.open sets the user's permissions with the vhost"
        self.authz: Authorizer = authz
        # exchanges this channel may publish to without another check, by name: the Exchange
        # it was checked against (a deleted and redeclared exchange is checked again). Cleared
        # when the user's permissions change (Server.access_changed).
        self.publish_allowed: dict[str, Exchange] = {}
        self.open = True
        self.closing = False  # we sent channel.close and wait for close-ok
        self.consumers: dict[str, Consumer] = {}
        self.tags = DeliveryTags()
        self.unacked = 0  # manual-ack consumer deliveries outstanding (basic.get's don't count)
        self.prefetch_consumer = 0  # basic.qos global=false: limit for each new consumer
        self.prefetch_channel = 0  # basic.qos global=true: shared by the channel
        self.confirms: Confirms | None = None
        self.tx: list[tuple] | None = None  # pending publishes and acks in tx mode
        self._tx_settled: set[int] = set()  # tags acked/nacked by the pending transaction
        self.last_queue = ""
        self.reply_consumer: direct_reply.ReplyConsumer | None = None  # amq.rabbitmq.reply-to
        # publish assembly
        self._pub: tuple | None = None
        self._body_size = 0
        self._header: tuple | None = None
        self._chunks: list[bytes] = []
        self._received = 0
        self._last_key = ""  # the last publish's routing key and properties, shared (_complete)
        self._last_props = b""
        # RabbitMQ caps max_message_size at 512 MiB (rabbit_channel:get_max_message_size)
        self.max_message_size = min(connection.settings.max_message_size, MAX_MESSAGE_SIZE)
        self.ack_timeouts = AckTimeouts(self, connection.settings.consumer_timeout)
        # message counters (counters.CHANNEL_COUNTERS): read by the management API
        self.stat_publish = 0
        self.stat_drop_unroutable = 0
        self.stat_return_unroutable = 0
        self.stat_deliver = 0
        self.stat_deliver_no_ack = 0
        self.stat_get = 0
        self.stat_get_no_ack = 0
        self.stat_get_empty = 0
        self.stat_redeliver = 0
        self.stat_ack = 0

    # ------------------------------------------------------------------ delivery side

    def can_deliver(self) -> bool:
        if not self.open or not self.conn.writable:
            return False
        return not self.prefetch_channel or self.unacked < self.prefetch_channel

    def deliver(self, consumer: Consumer, queue: Queue, entry: Entry) -> None:
        msg = message_of(entry)
        redelivered = redelivered_of(entry)
        if consumer.no_ack:
            tag = self.tags.next_tag()
            self.stat_deliver_no_ack += 1
        else:
            tag = self.tags.push((queue, entry, consumer))
            self.unacked += 1
            if self.ack_timeouts.idle:
                self.ack_timeouts.start(queue)
            self.stat_deliver += 1
        if redelivered:
            self.stat_redeliver += 1
        conn = self.conn
        body = msg.body
        if len(body) < LARGE_BODY:
            _encode_deliver(conn.out, self.id, consumer.tag, tag, redelivered, msg.exchange,
                            msg.routing_key, msg.raw_props, body, conn.frame_max)
        else:  # the body goes out from the message itself: no copy into the output buffer
            _encode_deliver_head(conn.out, self.id, consumer.tag, tag, redelivered,
                                 msg.exchange, msg.routing_key, msg.raw_props, len(body))
            conn.write_body(self.id, body)
        conn.want_flush()

    def consumer_cancelled_by_server(self, consumer: Consumer) -> None:
        """The queue went away: tell the client (consumer_cancel_notify) and forget the consumer."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        if self.open and not self.closing and self.conn.client_capability("consumer_cancel_notify"):
            self.send(spec.Basic.Cancel(consumer_tag=consumer.tag, nowait=True))

    def send(self, method: object) -> None:
        frames.encode_method(self.conn.out, self.id, method)
        self.conn.want_flush()

    # ------------------------------------------------------------------ publish assembly

    def on_publish(self, ev: tuple) -> None:
        if self._pub is not None:
            raise ConnectionError_(UNEXPECTED_FRAME, _EXPECTED_HEADER)
        if ev[5]:
            # RabbitMQ refuses the immediate flag outright (rabbitmq.com/docs/specification)
            raise ConnectionError_(NOT_IMPLEMENTED, "immediate=true")
        self._pub = ev

    def on_header(self, ev: tuple) -> None:
        if self._pub is None or self._header is not None:
            raise ConnectionError_(UNEXPECTED_FRAME, _EXPECTED_METHOD, (0, 0))
        if ev[2] != 60:
            raise ConnectionError_(UNEXPECTED_FRAME, "expected content header for class 60, "
                                   f"got one for class {ev[2]} instead")
        if ev[3] > self.max_message_size:
            # refused before any of the body is buffered (what follows on this channel is
            # dropped while it closes); RabbitMQ sends the same 406 once the body is in
            limit = self.max_message_size
            raise ChannelError(PRECONDITION_FAILED, f"message size {ev[3]} is larger than "
                               f"{'max' if limit == MAX_MESSAGE_SIZE else 'configured max'} "
                               f"size {limit}")
        self._header = ev
        self._body_size = ev[3]
        if ev[3] == 0:
            self._complete(b"")

    def on_body(self, ev: tuple) -> None:
        if self._header is None:
            if self._pub is not None:
                raise ConnectionError_(UNEXPECTED_FRAME, _EXPECTED_HEADER)
            raise ConnectionError_(UNEXPECTED_FRAME, _EXPECTED_METHOD, (0, 0))
        chunk = ev[2]
        size = self._received + len(chunk)
        if size > self._body_size:
            raise ConnectionError_(UNEXPECTED_FRAME, "content body exceeds the declared body size")
        if size == self._body_size:
            if self._chunks:
                self._chunks.append(chunk)
                chunk = b"".join(self._chunks)
                self._chunks = []
            self._received = 0
            self._complete(chunk)
        else:
            self._chunks.append(chunk)
            self._received = size

    def _complete(self, body: bytes) -> None:
        pub, header = self._pub, self._header
        self._pub = self._header = None
        assert pub is not None and header is not None
        if self.closing:
            return
        ex_name = pub[2]
        exchange = self.vhost.exchanges.get(ex_name)
        if exchange is None or self.publish_allowed.get(ex_name) is not exchange:
            exchange = self._authorize_publish(ex_name, pub[3])
        # consecutive publishes mostly repeat their routing key and properties: queued
        # messages share one copy of each instead of holding their own
        routing_key = pub[3]
        if routing_key == self._last_key:
            routing_key = self._last_key
        else:
            self._last_key = routing_key
        raw = header[4]
        if raw == self._last_props:
            raw = self._last_props
        else:
            self._last_props = raw
        msg = Message(ex_name, routing_key, raw, body, header[5], header[6], header[7])
        # reply_to (flag 0x02 of the first byte) naming amq.rabbitmq.reply-to: direct reply-to
        if raw[0] & 0x02 and _REPLY_QUEUE in raw:
            direct_reply.rewrite_reply_to(self, msg)
        if header[7] is not None:
            msg.ttl = parse_expiration(header[7])
        self.conn.check_user_id(msg)
        # a CC or BCC header needs the headers flag (third property) and "CC" in the bytes;
        # nothing is decoded for any other message (sender_selected.py)
        if raw[0] & 0x20 and b"CC" in raw:
            apply_sender_selected(msg)
        if self.tx is not None:
            self.tx.append(("publish", exchange, msg, pub[4]))
            return
        self.publish(exchange, msg, pub[4])

    def _authorize_publish(self, ex_name: str, routing_key: str) -> Exchange:
        """rabbit_channel's checks before a publish, in its order: write permission on the
        exchange (so a missing one the user may not write to is 403, not 404), that it exists,
        that it is not internal, and the topic permission on the routing key. An exchange that
        passes without topic permissions to match is remembered in ``publish_allowed``."""
        authz = self.authz
        authz.check(WRITE, "exchange", ex_name)
        exchange = self.vhost.exchanges.get(ex_name)
        if exchange is None:
            raise ChannelError(NOT_FOUND, f"no exchange '{ex_name}' in vhost '{self.vhost.name}'")
        if exchange.internal:
            raise ChannelError(
                ACCESS_REFUSED,
                f"cannot publish to internal exchange '{ex_name}' in vhost '{self.vhost.name}'",
            )
        if exchange.kind == "topic" and authz.has_topic_permissions(ex_name):
            authz.check_topic(WRITE, ex_name, routing_key)  # each message: not remembered
        else:
            self.publish_allowed[ex_name] = exchange
        return exchange

    def publish(self, exchange: Exchange, msg: Message, mandatory: bool) -> None:
        memory = self.vhost.memory
        if memory.alarmed or memory.used > memory.queued_limit:
            memory.block(self.conn)
        queues = self.vhost.route(exchange, msg)
        confirms = self.confirms
        seq = confirms.publish() if confirms is not None else 0
        self.stat_publish += 1
        exchange.stat_publish_in += 1
        if not queues:
            if mandatory:
                self.stat_return_unroutable += 1
                conn = self.conn
                frames.encode_return(conn.out, self.id, NO_ROUTE, "NO_ROUTE", msg.exchange,
                                     msg.routing_key, msg.raw_props, msg.body, conn.frame_max)
            else:
                self.stat_drop_unroutable += 1
            if confirms is not None:
                self.conn.want_confirm_flush(self)
            else:
                self.conn.want_flush()
            return
        exchange.stat_publish_out += 1
        rejected = False
        for q in queues:
            # a queue, or a direct reply-to consumer (direct_reply.ReplyConsumer)
            if isinstance(q, Queue):
                queue = q
                pushed = queue.push(msg, self, seq)
            else:
                pushed = q.push(msg, self, seq)
            if not pushed:
                rejected = True
        if confirms is not None:
            if rejected:
                confirms.nack(seq)
            self.conn.want_confirm_flush(self)

    def flush_confirms(self, out: bytearray) -> None:
        if self.confirms is None or not self.open:
            return
        for is_ack, tag, multiple in self.confirms.take():
            if is_ack:
                frames.encode_ack(out, self.id, tag, multiple)
            else:
                frames.encode_nack(out, self.id, tag, multiple, False)

    # ------------------------------------------------------------------ acknowledgements

    def _settle(self, tag: int, multiple: bool) -> list[tuple]:
        try:
            if multiple:
                return self.tags.pop_upto(tag)
            return [self.tags.pop(tag)]
        except UnknownDeliveryTag:
            raise ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {tag}") from None

    def on_ack(self, ev: tuple) -> None:
        if self.tx is not None:
            self._tx_check_tag(ev[2], ev[3])
            self.tx.append(("ack", ev[2], ev[3]))
            return
        self.ack(ev[2], ev[3])

    def ack(self, tag: int, multiple: bool) -> None:
        items = self._settle(tag, multiple)
        self.stat_ack += len(items)
        touched = None
        delivered = 0
        for queue, entry, consumer in items:
            queue.acked(entry, consumer)
            if consumer is not None:
                delivered += 1
            if queue is not touched:
                if touched is not None:
                    touched.dispatch()
                touched = queue
        self.unacked -= delivered
        if touched is not None and touched.ready:
            touched.dispatch()
        if self.prefetch_channel and len(self.consumers) > 1:
            self._kick()

    def on_nack(self, ev: tuple) -> None:
        if self.tx is not None:
            self._tx_check_tag(ev[2], ev[3])
            self.tx.append(("nack", ev[2], ev[3], ev[4]))
            return
        self.reject(ev[2], ev[3], ev[4])

    def on_reject(self, ev: tuple) -> None:
        if self.tx is not None:
            self._tx_check_tag(ev[2], False)
            self.tx.append(("nack", ev[2], False, ev[3]))
            return
        self.reject(ev[2], False, ev[3])

    def _tx_check_tag(self, tag: int, multiple: bool) -> None:
        """An ack in a transaction takes its tags at once as far as the transaction's later
        acks go: RabbitMQ answers a second ack of a tag with 406 before the commit."""
        settled = self._tx_settled
        if (tag or not multiple) and (tag not in self.tags or tag in settled):
            raise ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {tag}")
        if multiple:
            settled.update(t for t, _ in self.tags.items() if t <= tag or not tag)
        else:
            settled.add(tag)

    def reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        items = self._settle(tag, multiple)
        for item in items:
            if item[2] is not None:
                self.unacked -= 1
        self._return_items(items, requeue, "rejected", explicit=True)
        if self.prefetch_channel or not requeue:
            self._kick()

    def _return_items(self, items: list[tuple], requeue: bool, reason: str,
                      explicit: bool = False) -> None:
        """Requeue (at original positions) or dead-letter delivered items, grouped by queue;
        ``explicit``: returned by a nack, reject or recover, not by the channel closing."""
        by_queue: dict[int, tuple[Queue, list[Entry], list[Consumer | None]]] = {}
        for queue, entry, consumer in items:
            group = by_queue.get(id(queue))
            if group is None:
                group = by_queue[id(queue)] = (queue, [], [])
            group[1].append(entry)
            group[2].append(consumer)
        for queue, entries, consumers in by_queue.values():
            if requeue:
                queue.requeue(entries, consumers, explicit)
            else:
                for entry, consumer in zip(entries, consumers):
                    queue.discard(entry, consumer, reason)

    def _kick(self) -> None:
        seen: set[int] = set()
        for c in list(self.consumers.values()):
            q = c.queue
            if id(q) not in seen and q.ready:
                seen.add(id(q))
                q.dispatch()

    def writable_again(self) -> None:
        self._kick()

    # ------------------------------------------------------------------ closing

    def release(self) -> None:
        """The channel is gone (closed by either side, or its connection died)."""
        if not self.open:
            return
        self.open = False
        self.ack_timeouts.stop()
        if self.reply_consumer is not None:
            direct_reply.release(self)
        self.conn.server.counters.add_channel(self)  # its message counts outlive it
        # requeue before the consumers go, as RabbitMQ does: a consumer taking over (single
        # active consumer) gets the requeued messages first, in their original order
        items = self.tags.pop_all()
        self.unacked = 0
        if items:
            self._return_items(items, True, "")
        for consumer in list(self.consumers.values()):
            consumer.queue.remove_consumer(consumer)
        self.consumers.clear()
        self.tx = None
        self._tx_settled.clear()

    # ------------------------------------------------------------------ rare methods

    def handle_method(self, method: Any) -> None:
        handler = channel_methods.HANDLERS.get(type(method))
        if handler is None:
            raise ConnectionError_(
                UNEXPECTED_FRAME if isinstance(method, channel_methods.CONTENT_REPLIES)
                else 503, f"unexpected method {method.name} on a channel",
            )
        handler(self, method)

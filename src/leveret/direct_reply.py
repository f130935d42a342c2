"""Direct reply-to (rabbitmq.com/docs/direct-reply-to): RPC replies without a reply queue.

A requester consumes from the pseudo-queue ``amq.rabbitmq.reply-to`` in no-ack mode. A message
it then publishes with ``reply_to: amq.rabbitmq.reply-to`` leaves with ``reply_to`` rewritten to
``amq.rabbitmq.reply-to.<key>``, an address of that channel (the key is random, so an address
cannot be guessed). A reply published to the default exchange with that address as routing key
is handed to the requester's consumer at once, never queued; when the requester's channel or
consumer is gone the reply is unroutable (dropped, or returned when mandatory).

RabbitMQ's rules and texts (rabbit_channel, 3.10 and 4.2): consuming with acknowledgements is
406 "reply consumer cannot acknowledge", a second reply consumer on the channel 406 "reply
consumer already set", publishing with that reply_to before consuming 406 "fast reply consumer
does not exist"; declaring ``amq.rabbitmq.reply-to`` (passive or not) answers declare-ok with
one consumer, as does declaring a live address; another name under it is 404.

Where 3.10 and later releases differ, Leveret follows 4.2 (whose volatile queues implement it):
a mandatory reply that reached its requester is not returned (3.10 returned every mandatory
reply as unroutable, delivered or not), and binding or unbinding an address is 403.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from pamqp import commands as spec

from . import frames
from .deadletter import join_properties, split_properties
from .errors import ACCESS_REFUSED, NOT_ALLOWED, NOT_FOUND, PRECONDITION_FAILED, ChannelError

if TYPE_CHECKING:
    from .channel import Channel
    from .message import Message

REPLY_QUEUE = "amq.rabbitmq.reply-to"
REPLY_PREFIX = REPLY_QUEUE + "."
_REPLY_TO = 6  # reply_to is the seventh basic property (index 6, flag bit 9)


class ReplyConsumer:
    """The reply consumer of one channel; the virtual host routes replies to it by ``name``
    (it stands in for a queue there: ``push`` delivers)."""

    __slots__ = ("channel", "tag", "name")

    def __init__(self, channel: Channel, tag: str) -> None:
        self.channel = channel
        self.tag = tag
        self.name = REPLY_PREFIX + secrets.token_urlsafe(18)

    def push(self, message: Message, publisher: Channel | None = None, seq: int = 0) -> bool:
        """Deliver a reply now (no-ack: nothing to track); always taken, never queued."""
        channel = self.channel
        if channel.reply_consumer is self and channel.open and not channel.closing:
            conn = channel.conn
            frames.encode_deliver(conn.out, channel.id, self.tag, channel.tags.next_tag(), False,
                                  message.exchange, message.routing_key, message.raw_props,
                                  message.body, conn.frame_max)
            conn.want_flush()
        return True


def consume(channel: Channel, m: spec.Basic.Consume) -> None:
    """basic.consume on ``amq.rabbitmq.reply-to``."""
    from .queue import Consumer  # not at the top: queue imports channel, which imports us

    tag = m.consumer_tag or Consumer.new_tag()
    if tag in channel.consumers:
        raise ChannelError(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
    if not m.no_ack:
        raise ChannelError(PRECONDITION_FAILED, "reply consumer cannot acknowledge")
    if channel.reply_consumer is not None:
        raise ChannelError(PRECONDITION_FAILED, "reply consumer already set")
    consumer = channel.reply_consumer = ReplyConsumer(channel, tag)
    channel.vhost.reply_consumers[consumer.name] = consumer
    if not m.nowait:
        channel.send(spec.Basic.ConsumeOk(consumer_tag=tag))


def cancel(channel: Channel, m: spec.Basic.Cancel) -> None:
    """basic.cancel of the reply consumer: its address stops working."""
    release(channel)
    if not m.nowait:
        channel.send(spec.Basic.CancelOk(consumer_tag=m.consumer_tag))


def release(channel: Channel) -> None:
    consumer, channel.reply_consumer = channel.reply_consumer, None
    if consumer is not None:
        channel.vhost.reply_consumers.pop(consumer.name, None)


def rewrite_reply_to(channel: Channel, message: Message) -> None:
    """``reply_to: amq.rabbitmq.reply-to`` becomes this channel's address (406 without a
    reply consumer); the other properties keep their wire bytes."""
    if message.properties.get("reply_to") != REPLY_QUEUE:
        return
    consumer = channel.reply_consumer
    if consumer is None:
        raise ChannelError(PRECONDITION_FAILED, "fast reply consumer does not exist")
    props = split_properties(message.raw_props)
    address = consumer.name.encode()
    props[_REPLY_TO] = bytes((len(address),)) + address
    message.replace_raw_props(join_properties(props))


def declare(channel: Channel, m: spec.Queue.Declare) -> None:
    """queue.declare of a name starting with ``amq.rabbitmq.reply-to``: every declare of it
    is effectively passive (rabbit_channel); declare-ok names one consumer."""
    name = m.queue
    if name != REPLY_QUEUE and name not in channel.vhost.reply_consumers:
        raise ChannelError(NOT_FOUND, f"no queue '{name}' in vhost '{channel.vhost.name}'")
    channel.last_queue = name
    if not m.nowait:
        channel.send(spec.Queue.DeclareOk(queue=name, message_count=0, consumer_count=1))


def refuse_binding(queue: str) -> None:
    """Binding an address is 403 (RabbitMQ 4.2; 3.10 answered 404, having no such queue)."""
    if queue.startswith(REPLY_PREFIX):
        raise ChannelError(ACCESS_REFUSED,
                           "cannot bind or unbind to a volatile (direct reply-to) queue")

"""Which kind of queue a ``queue.declare`` makes, by its ``x-queue-type``.

A classic queue (also ``quorum``, which Leveret runs as a classic queue) is a ``Queue``; a
``stream`` is a ``StreamQueue`` (stream.py). The arguments are validated by the type's own
rules before anything is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .queue import Queue
from .queue_args import QueueOptions, parse_queue_arguments
from .stream import StreamQueue
from .stream_args import StreamOptions, is_stream, parse_stream_declare

if TYPE_CHECKING:
    from .vhost import VirtualHost


def parse_declare(arguments: dict[str, Any], queue: str, vhost: str, durable: bool,
                  exclusive: bool, auto_delete: bool) -> QueueOptions | StreamOptions:
    """Validate a new queue's arguments (and, for a stream, its properties) by its type's
    rules; raises ChannelError with RabbitMQ's texts."""
    if is_stream(arguments):
        return parse_stream_declare(arguments, queue, vhost, durable, exclusive, auto_delete)
    return parse_queue_arguments(arguments, queue, vhost)


def new_queue(vhost: VirtualHost, name: str, durable: bool, exclusive_owner: object | None,
              auto_delete: bool, arguments: dict[str, Any],
              options: QueueOptions | StreamOptions) -> Queue:
    """The queue object for options ``parse_declare`` returned (a vhost's queue_factory)."""
    if isinstance(options, StreamOptions):
        return StreamQueue(vhost, name, durable, exclusive_owner, auto_delete, arguments,
                           options)
    return Queue(vhost, name, durable, exclusive_owner, auto_delete, arguments, options)

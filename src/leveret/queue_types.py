"""Which kind of queue a ``queue.declare`` makes, by its ``x-queue-type``.

A classic queue is a ``Queue``, a ``quorum`` queue a ``QuorumQueue`` (quorum.py), a
``stream`` a ``StreamQueue`` (stream.py). The arguments are validated by the type's own rules
before anything is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import PRECONDITION_FAILED, ChannelError
from .queue import Queue
from .queue_args import QueueOptions, parse_queue_arguments
from .quorum import QuorumQueue
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
    options = parse_queue_arguments(arguments, queue, vhost)
    if options.queue_type == "quorum":
        # rabbit_quorum_queue:declare's checks, in its order, after the arguments'
        for refused, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                              (not durable, "non-durable")):
            if refused:
                raise ChannelError(PRECONDITION_FAILED, f"invalid property '{prop}' for queue "
                                                        f"'{queue}' in vhost '{vhost}'")
    return options


def new_queue(vhost: VirtualHost, name: str, durable: bool, exclusive_owner: object | None,
              auto_delete: bool, arguments: dict[str, Any],
              options: QueueOptions | StreamOptions) -> Queue:
    """The queue object for options ``parse_declare`` returned (a vhost's queue_factory)."""
    if isinstance(options, StreamOptions):
        return StreamQueue(vhost, name, durable, exclusive_owner, auto_delete, arguments,
                           options)
    cls = QuorumQueue if options.queue_type == "quorum" else Queue
    return cls(vhost, name, durable, exclusive_owner, auto_delete, arguments, options)

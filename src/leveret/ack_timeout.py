"""consumer_timeout: a delivery left unacknowledged too long closes its channel.

RabbitMQ (rabbitmq.com/docs/consumers#acknowledgement-timeout, rabbit_channel's
evaluate_consumer_timeout): every delivery awaiting an acknowledgement, consumer or basic.get,
must be settled within the timeout (30 minutes by default; a queue's ``x-consumer-timeout``
argument, RabbitMQ 3.12+, overrides it for that queue's deliveries). When one is not, the
channel is closed with 406 and its unacknowledged messages are requeued. RabbitMQ looks once a
minute, so a timeout is enforced up to a minute late; so is Leveret's, by the same margin at
most (a quarter of the shortest timeout in play, between 50 ms and 60 s).

No clock is read per delivery. While a channel has deliveries out, a timer ticks and each tick
records a mark: (the last delivery tag issued, the time). A delivery was made no later than the
first mark at or after its tag, so it has timed out once that mark is older than its timeout.
The timer stops when nothing is outstanding; an idle channel costs nothing.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from .errors import PRECONDITION_FAILED, ChannelError

if TYPE_CHECKING:
    import asyncio

    from .channel import Channel
    from .queue import Queue

log = logging.getLogger("leveret.channel")

_MIN_TICK = 0.05  # s
_MAX_TICK = 60.0  # s: RabbitMQ evaluates the timeout once a minute


class AckTimeouts:
    """Watches one channel's outstanding deliveries for consumer_timeout."""

    __slots__ = ("channel", "default", "idle", "_marks", "_timer", "_loop")

    def __init__(self, channel: Channel, default_ms: int | None) -> None:
        self.channel = channel
        self.default = default_ms or None  # ms; None or 0: no broker-wide timeout
        self.idle = True  # no timer running: the next delivery calls start()
        self._marks: deque[tuple[int, float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop = channel.conn.loop

    def timeout_for(self, queue: Queue) -> int | None:
        """The timeout (ms) of a delivery from ``queue``: its own, else the broker's."""
        # a stream's options have no x-consumer-timeout: the broker's applies
        own = getattr(queue.options, "consumer_timeout", None)
        return own if own is not None else self.default

    def start(self, queue: Queue) -> None:
        """A delivery awaiting an ack was made and no timer runs: start one if it can time
        out (called from the delivery path only while ``idle``)."""
        timeout = self.timeout_for(queue)
        if timeout is None:
            return
        now = self._loop.time()
        self._marks.append((self.channel.tags.last_tag, now))
        self.idle = False
        self._timer = self._loop.call_later(_tick(timeout), self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._marks.clear()
        self.idle = True

    def _tick(self) -> None:
        self._timer = None
        channel = self.channel
        if not channel.open or channel.closing:
            self.stop()
            return
        outstanding = channel.tags.items()
        if not outstanding:
            self.stop()
            return
        now = self._loop.time()
        marks = self._marks
        marks.append((channel.tags.last_tag, now))
        shortest: int | None = None
        i = 0
        for tag, (queue, _entry, consumer) in outstanding:
            while marks[i][0] < tag:
                i += 1
            timeout = self.timeout_for(queue)
            if timeout is None:
                continue
            if (now - marks[i][1]) * 1000 >= timeout:
                self._timed_out(tag, queue, consumer, timeout)
                return
            if shortest is None or timeout < shortest:
                shortest = timeout
        # marks before the one covering the oldest delivery are not needed any more
        oldest = outstanding[0][0]
        while len(marks) > 1 and marks[1][0] < oldest:
            marks.popleft()
        if shortest is None:  # what is out cannot time out (no timeout for its queues)
            self.stop()
            return
        self._timer = self._loop.call_later(_tick(shortest), self._tick)

    def _timed_out(self, tag: int, queue: Queue, consumer: object, timeout: int) -> None:
        channel = self.channel
        ctag = getattr(consumer, "tag", "none")
        log.warning("Consumer '%s' on channel %d and queue '%s' in vhost '%s' has timed out "
                    "waiting for a consumer acknowledgement of a delivery with delivery tag = "
                    "%d. Timeout used: %d ms", ctag, channel.id, queue.name, queue.vhost.name,
                    tag, timeout)
        self.stop()
        # RabbitMQ's text (rabbit_channel:handle_consumer_timed_out); it names no method
        channel.conn.close_channel(channel, ChannelError(
            PRECONDITION_FAILED,
            f"delivery acknowledgement on channel {channel.id} timed out. Timeout value used: "
            f"{timeout} ms. This timeout value can be configured, see consumers doc guide to "
            "learn more", (0, 0)))


def _tick(timeout_ms: int) -> float:
    return min(max(timeout_ms / 4000.0, _MIN_TICK), _MAX_TICK)

"""Rates from the data plane's counters, sampled a few times a second.

The data plane only increments plain integers (``leveret.counters``). Every ``INTERVAL``
seconds the sampler reads them for each queue, exchange, channel and connection and for the
broker, and keeps the samples of the last ``WINDOW`` seconds; a rate is the change across that
window divided by its length (RabbitMQ's ``*_details.rate``: per second, over its last sample
interval). Nothing here runs per message; objects that went away drop out at the next sample.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..counters import QUEUE_COUNTERS, channel_sums

if TYPE_CHECKING:
    from ..server import Server

INTERVAL = 0.5  # seconds between samples
WINDOW = 5.0  # seconds a rate is measured over (RabbitMQ's default sample interval)

# queue depth fields sampled alongside the counters (RabbitMQ gives these rates too)
QUEUE_FIELDS = tuple(name[5:] for name in QUEUE_COUNTERS) + (
    "messages", "messages_ready", "messages_unacknowledged")
CHANNEL_FIELDS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver",
                  "deliver_no_ack", "get", "get_no_ack", "get_empty", "redeliver", "ack")
CONNECTION_FIELDS = ("recv_oct", "recv_cnt", "send_oct", "send_cnt")
EXCHANGE_FIELDS = ("publish_in", "publish_out")
OVERVIEW_FIELDS = CHANNEL_FIELDS + ("messages", "messages_ready", "messages_unacknowledged",
                                    "connection_created", "connection_closed",
                                    "channel_created", "channel_closed", "queue_declared",
                                    "queue_created", "queue_deleted")


class Series:
    """Recent samples of one object's fields: ``deque`` of (time, values)."""

    __slots__ = ("obj", "samples", "last_change")

    def __init__(self, obj: Any = None) -> None:
        self.obj = obj  # what is sampled (held until the next sample at most)
        self.samples: deque[tuple[float, tuple[int, ...]]] = deque()
        self.last_change = time.time()

    def add(self, now: float, values: tuple[int, ...]) -> None:
        samples = self.samples
        if samples and samples[-1][1] != values:
            self.last_change = time.time()
        samples.append((now, values))
        while len(samples) > 2 and now - samples[1][0] >= WINDOW:
            samples.popleft()

    def rates(self) -> list[float]:
        samples = self.samples
        if len(samples) < 2:
            return [0.0] * (len(samples[0][1]) if samples else 0)
        (t0, v0), (t1, v1) = samples[0], samples[-1]
        dt = t1 - t0
        if dt <= 0:
            return [0.0] * len(v1)
        return [round((b - a) / dt, 1) for a, b in zip(v0, v1)]


def queue_values(q: Any) -> tuple[int, ...]:
    ready, unacked = len(q.ready), q.unacked
    return tuple(getattr(q, name) for name in QUEUE_COUNTERS) + (ready + unacked, ready, unacked)


def channel_values(ch: Any) -> tuple[int, ...]:
    confirms = ch.confirms
    return (ch.stat_publish, confirms.confirmed if confirms is not None else 0,
            ch.stat_return_unroutable, ch.stat_drop_unroutable, ch.stat_deliver,
            ch.stat_deliver_no_ack, ch.stat_get, ch.stat_get_no_ack, ch.stat_get_empty,
            ch.stat_redeliver, ch.stat_ack)


def connection_values(conn: Any) -> tuple[int, ...]:
    return (conn.recv_oct, conn.recv_cnt, conn.send_oct, conn.send_cnt)


def exchange_values(ex: Any) -> tuple[int, ...]:
    return (ex.stat_publish_in, ex.stat_publish_out)


def overview_values(server: Server) -> tuple[int, ...]:
    channels = [ch for conn in server.connections for ch in conn.channels.values()]
    sums = channel_sums(server.counters, channels)
    sums["confirm"] = sums["confirmed"]
    ready = unacked = 0
    declared = created = deleted = 0
    for vh in server.vhosts.values():
        declared += vh.stat_queue_declared
        created += vh.stat_queue_created
        deleted += vh.stat_queue_deleted
        for q in vh.queues.values():
            ready += len(q.ready)
            unacked += q.unacked
    c = server.counters
    return tuple(sums[name] for name in CHANNEL_FIELDS) + (
        ready + unacked, ready, unacked, c.connection_created, c.connection_closed,
        c.channel_created, c.channel_closed, declared, created, deleted)


class Sampler:
    """Samples a server's counters every ``INTERVAL`` seconds while it runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.queues: dict[int, Series] = {}
        self.channels: dict[int, Series] = {}
        self.connections: dict[int, Series] = {}
        self.exchanges: dict[int, Series] = {}
        self.overview = Series()
        self._task: asyncio.Task[None] | None = None
        self._sampled = False

    def start(self) -> None:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        server = self.server
        seed = self._sampled  # objects that appear later were created since a sample
        self._sampled = True
        queues: dict[int, Series] = {}
        exchanges: dict[int, Series] = {}
        for vh in server.vhosts.values():
            for q in vh.queues.values():
                queues[id(q)] = _add(self.queues, q, now, queue_values(q), seed)
            for ex in vh.exchanges.values():
                exchanges[id(ex)] = _add(self.exchanges, ex, now, exchange_values(ex), seed)
        channels: dict[int, Series] = {}
        connections: dict[int, Series] = {}
        for conn in server.connections:
            connections[id(conn)] = _add(self.connections, conn, now,
                                         connection_values(conn), seed)
            for ch in conn.channels.values():
                channels[id(ch)] = _add(self.channels, ch, now, channel_values(ch), seed)
        self.queues, self.exchanges = queues, exchanges
        self.channels, self.connections = channels, connections
        self.overview.add(now, overview_values(server))

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _rates(table: dict[int, Series], obj: Any, n: int) -> list[float]:
        series = table.get(id(obj))
        return series.rates() if series is not None and series.obj is obj else [0.0] * n

    def queue_rates(self, q: Any) -> dict[str, float]:
        return dict(zip(QUEUE_FIELDS, self._rates(self.queues, q, len(QUEUE_FIELDS))))

    def queue_idle_since(self, q: Any) -> float | None:
        series = self.queues.get(id(q))
        return series.last_change if series is not None else None

    def channel_idle_since(self, ch: Any) -> float | None:
        """When the channel's counters last moved (None: not sampled yet)."""
        series = self.channels.get(id(ch))
        return series.last_change if series is not None and series.obj is ch else None

    def channel_rates(self, ch: Any) -> dict[str, float]:
        return dict(zip(CHANNEL_FIELDS, self._rates(self.channels, ch, len(CHANNEL_FIELDS))))

    def connection_rates(self, conn: Any) -> dict[str, float]:
        return dict(zip(CONNECTION_FIELDS,
                        self._rates(self.connections, conn, len(CONNECTION_FIELDS))))

    def exchange_rates(self, ex: Any) -> dict[str, float]:
        return dict(zip(EXCHANGE_FIELDS, self._rates(self.exchanges, ex, len(EXCHANGE_FIELDS))))

    def overview_rates(self) -> dict[str, float]:
        return dict(zip(OVERVIEW_FIELDS, self.overview.rates() or [0.0] * len(OVERVIEW_FIELDS)))


def _add(old: dict[int, Series], obj: Any, now: float, values: tuple[int, ...],
         seed: bool) -> Series:
    series = old.get(id(obj))
    if series is None or series.obj is not obj:  # an id can be reused by a new object
        series = Series(obj)
        if seed:  # new since the last sample: it started from nothing then
            series.add(now - INTERVAL, (0,) * len(values))
    series.add(now, values)
    return series

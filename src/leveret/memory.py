"""Resource alarms (rabbitmq.com/docs/alarms, /docs/memory, /docs/disk-alarms,
/docs/connection-blocked): the memory high watermark and the free disk space limit.

``MemoryMonitor`` is the one object the model holds (``vhost.memory``): it keeps the set of
alarms in effect (``"memory"``, ``"disk"``) and the connections blocked by them. While any alarm
is on, a connection that publishes is blocked: it gets connection.blocked (if it declared that
capability; the reason says what is low, as RabbitMQ's ``low on memory``, ``low on disk``,
``low on memory & disk``) and its socket is no longer read. When the last alarm clears, every
blocked connection gets connection.unblocked and is read again. Connections that only consume
are never blocked: they are what brings memory down. This is what rabbit_reader does in 3.10
(``publish_received``: a connection is blocked at its first publish while an alarm is on).

Memory used, as the watermark sees it, depends on ``strategy``:

- ``"rss"`` (the default, RabbitMQ's ``vm_memory_calculation_strategy = rss``): the process's
  resident set size, read from ``/proc/self/statm`` on a timer (``SAMPLE_INTERVAL``; RabbitMQ's
  vm_memory_monitor checks once a second). RSS is what the kernel and a container limit count,
  and it includes everything a queued message costs beyond its body (the message and entry
  objects, properties, indexes: several times the body for small messages), which counting
  bodies alone misses by far. Nothing is measured per message: the data plane only keeps the
  byte count below, and the timer costs a read of a small file a few times a second. Before an
  alarm is set or kept, free heap pages go back to the OS (``resources.release_free_memory``)
  so that memory a drained queue no longer holds stops counting. Where ``/proc`` cannot be read,
  the process's RSS at start plus the queued bytes stand in for it.
- ``"queued"``: the bytes of message bodies held in memory by queues. Deterministic and
  independent of what else lives in the process: for a broker embedded in another program
  (``leveret.Broker``), whose RSS is mostly not the broker's.

In both, a publish finds the alarm on its own when queued bodies alone are over the limit, so
a burst of large messages is stopped before the next sample.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import resources
from .settings import node_name

if TYPE_CHECKING:
    import asyncio

    from .connection import AMQPConnection

log = logging.getLogger("leveret.memory")

SAMPLE_INTERVAL = 0.25  # seconds between two RSS reads
# while over the limit, free heap pages are given back when queued bytes fell since the last
# time, and at least this often otherwise (other memory, e.g. closed connections', was freed)
TRIM_INTERVAL = 5.0
_NO_LIMIT = sys.maxsize
STRATEGIES = ("rss", "queued")


class MemoryMonitor:
    """The memory watermark and the resource alarms that block publishers."""

    __slots__ = ("limit", "strategy", "used", "queued_limit", "process", "alarmed", "alarms",
                 "blocked", "_timer", "_loop", "_baseline", "_trimmed_at", "_peak_since_trim",
                 "_activity", "_idle_checked_at", "_last_activity", "_idle_trimmed")

    def __init__(self, limit: int | None = None, strategy: str = "queued") -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"memory calculation strategy {strategy!r}: one of "
                             f"{', '.join(STRATEGIES)}")
        self.limit = limit  # bytes; None: no memory watermark
        self.strategy = strategy
        # bytes of message bodies held in memory by queues (the data plane adds and subtracts)
        self.used = 0
        # the publish path compares ``used`` with this: the limit, or never when there is none
        self.queued_limit = _NO_LIMIT if limit is None else limit
        self.process = 0  # memory used as the watermark last saw it
        self.alarmed = False  # an alarm is in effect: the publish path reads this
        self.alarms: set[str] = set()  # "memory", "disk"
        self.blocked: set[AMQPConnection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._baseline = 0
        self._trimmed_at = 0.0
        self._peak_since_trim = 0  # the most queued bytes a sample saw since the last trim
        # keep_releasing: a count that moves while clients are served, when it last was read
        # and what it was, and whether the quiet since then has had its trim
        self._activity: Callable[[], int] | None = None
        self._idle_checked_at = 0.0
        self._last_activity = -1
        self._idle_trimmed = False

    # ------------------------------------------------------------------ alarms

    def set_alarm(self, resource: str) -> None:
        """Put an alarm in effect (``"memory"`` or ``"disk"``); publishers are blocked at their
        next publish. Logged as rabbit_alarm does."""
        if resource in self.alarms:
            return
        self.alarms.add(resource)
        self.alarmed = True
        log.warning("%s resource limit alarm set on node %s.\n\n"
                    "**********************************************************\n"
                    "*** Publishers will be blocked until this alarm clears ***\n"
                    "**********************************************************",
                    resource, node_name())

    def clear_alarm(self, resource: str) -> None:
        """End an alarm; once none is left every blocked connection is unblocked."""
        if resource not in self.alarms:
            return
        self.alarms.discard(resource)
        log.warning("%s resource limit alarm cleared on node %s", resource, node_name())
        if self.alarms:
            return  # still blocked by the other one
        self.alarmed = False
        blocked, self.blocked = self.blocked, set()
        for conn in blocked:
            conn.unblock()

    def block(self, conn: AMQPConnection) -> None:
        """Called by a publish while an alarm is on, or when queued bodies alone are over the
        limit (then this is where the memory alarm is noticed)."""
        if self.strategy == "queued":
            # queues report falling usage only while someone is blocked: look again now
            self._memory_alarm(self.used)
        elif not self.alarmed:
            self._memory_alarm(max(self.used, self.process))
        if not self.alarmed:
            return
        if conn not in self.blocked:
            self.blocked.add(conn)
            conn.block(self.reason())

    def reason(self) -> str:
        """connection.blocked's reason, as rabbit_reader words it."""
        return "low on " + " & ".join(r for r in ("memory", "disk") if r in self.alarms)

    def check_release(self) -> None:
        """Called when queued bytes may have fallen while someone is blocked. With the
        ``queued`` strategy the memory alarm clears here; with ``rss`` the next sample does."""
        if self.strategy == "queued" and "memory" in self.alarms and (
                self.limit is None or self.used <= self.limit):
            self._memory_alarm(self.used)

    def forget(self, conn: AMQPConnection) -> None:
        """A connection is gone: it is no longer blocked."""
        self.blocked.discard(conn)
        if not self.blocked:
            self.check_release()  # queues only report falling usage while someone is blocked

    def _memory_alarm(self, used: int) -> None:
        """Set or clear the memory alarm for ``used`` bytes, with vm_memory_monitor's lines."""
        self.process = used
        over = self.limit is not None and used > self.limit
        if over and "memory" not in self.alarms:
            log.info("vm_memory_high_watermark set. Memory used:%d allowed:%d", used,
                     self.limit)
            self.set_alarm("memory")
        elif not over and "memory" in self.alarms:
            log.info("vm_memory_high_watermark clear. Memory used:%d allowed:%d", used,
                     self.limit or 0)
            self.clear_alarm("memory")

    # ------------------------------------------------------------------ sampling (rss)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start sampling the process's memory (``rss`` strategy with a limit)."""
        if not self._watermark() or self._timer is not None:
            return
        self._loop = loop
        rss = resources.resident_memory()
        if rss is None:
            # no /proc: what the process held at start, plus what queues hold since
            self._baseline = resources.peak_resident_memory()
        self.sample()

    def keep_releasing(self, loop: asyncio.AbstractEventLoop,
                       activity: Callable[[], int]) -> None:
        """The allocator keeps free pages (``resources.tune_allocator``): give them back once
        the broker is quiet. ``activity()`` is a count that moves while clients are served
        (socket reads and writes); sampling runs, if not for the watermark then for this."""
        self._activity = activity
        self._idle_checked_at = time.monotonic()
        if self._timer is None:
            self._loop = loop
            self._timer = loop.call_later(SAMPLE_INTERVAL, self.sample)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watermark(self) -> bool:
        return self.strategy == "rss" and self.limit is not None

    def sample(self) -> None:
        """Read the memory used, set or clear the alarm, and come back in SAMPLE_INTERVAL."""
        watermark = self._watermark()
        used = self._measure() if watermark else 0
        over = self.limit is not None and used > self.limit
        if (over and self._may_trim()) or self._idle_trim_due():
            if resources.release_free_memory() and watermark:
                used = self._measure()
        if watermark:
            self._memory_alarm(max(used, self.used))
        if self._timer is not None:
            self._timer.cancel()  # sample() called out of turn: one timer at a time
        if self._loop is not None:
            self._timer = self._loop.call_later(SAMPLE_INTERVAL, self.sample)

    def _measure(self) -> int:
        rss = resources.resident_memory()
        return self._baseline + self.used if rss is None else rss

    def _may_trim(self) -> bool:
        """Whether to give free heap pages back now: queued bytes fell since the last time, or
        TRIM_INTERVAL passed. A trim with nothing to give back costs well under a millisecond;
        one after a big drain takes a while (~0.1 s for 450 MiB), once."""
        now = time.monotonic()
        used = self.used
        if used < self._peak_since_trim or now - self._trimmed_at >= TRIM_INTERVAL:
            self._trimmed_at, self._peak_since_trim = now, used
            return True
        self._peak_since_trim = max(self._peak_since_trim, used)
        return False

    def _idle_trim_due(self) -> bool:
        """Whether to give free pages back now: once per quiet spell, when ``activity()`` has
        not moved for a whole TRIM_INTERVAL. Not under load: a trim walks the whole heap and
        takes tens of milliseconds once it is large and fragmented (measured: 23-56 ms with
        ~800 MiB of small and 64 KiB blocks, half of them freed), a stall for every client;
        meanwhile glibc gives back what is free at the heap's top beyond
        resources.TRIM_THRESHOLD by itself."""
        if self._activity is None:
            return False
        now = time.monotonic()
        if now - self._idle_checked_at < TRIM_INTERVAL:
            return False
        self._idle_checked_at = now
        seen = self._activity()
        quiet, self._last_activity = seen == self._last_activity, seen
        if not quiet:
            self._idle_trimmed = False
            return False
        if self._idle_trimmed:
            return False
        self._idle_trimmed = True
        return True


def watermark_bytes(setting: float | int | None, total: int) -> int | None:
    """The watermark in bytes: a float is a share of ``total`` (at most 1.0, as RabbitMQ caps
    it), an int is bytes (at most ``total``, as vm_memory_monitor:interpret_limit takes it);
    None stays None (no watermark)."""
    if setting is None:
        return None
    if isinstance(setting, float):
        if setting > 1.0:
            log.warning("Memory high watermark of %s is above the allowed maximum, falling "
                        "back to 1.0", setting)
            setting = 1.0
        return int(setting * total)
    return min(int(setting), total)

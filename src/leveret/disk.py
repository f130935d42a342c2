"""The free disk space alarm (rabbitmq.com/docs/disk-alarms), as rabbit_disk_monitor does it.

The free space of the data directory's filesystem is checked on a timer; below ``limit`` the
``disk`` alarm is set on the ``MemoryMonitor`` (publishers are blocked, as by the memory
alarm), at or above it the alarm clears. The interval follows RabbitMQ's: the time the disk
would take to fill the gap at 250 MB/s, twice over, between 0.1 s and 10 s, so a disk far from
the limit is looked at rarely and one close to it often. While the alarm is on RabbitMQ waits
its longest interval (10 s: it runs ``df``); a ``statvfs`` costs microseconds, so Leveret looks
every second and unblocks publishers soon after space is freed.

Without a data directory Leveret writes nothing, and the monitor runs only when a limit was
set explicitly (then on the working directory), so a nearly full laptop disk does not stop an
in-memory broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import resources
from .memory import MemoryMonitor

log = logging.getLogger("leveret.disk")

DEFAULT_LIMIT = 50_000_000  # RabbitMQ 3.x's disk_free_limit, bytes
MIN_INTERVAL = 0.1
MAX_INTERVAL = 10.0
ALARMED_INTERVAL = 1.0
FAST_RATE = 250_000_000  # bytes a second a disk may fill at (RabbitMQ's ?FAST_RATE)


class DiskMonitor:
    """Checks ``path``'s free space against ``limit`` bytes and sets the ``disk`` alarm."""

    def __init__(self, alarms: MemoryMonitor, path: str, limit: int,
                 free_bytes: Callable[[str], int] = resources.disk_free) -> None:
        self.alarms = alarms
        self.path = path
        self.limit = limit
        self.free_bytes = free_bytes  # replaceable: tests give it a disk that fills up
        self.free: int | None = None  # the last figure read, None before the first
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        log.info("Enabling free disk space monitoring")
        log.info("Disk free limit set to %dMB", self.limit // 1_000_000)
        self.check()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None

    @property
    def alarmed(self) -> bool:
        return "disk" in self.alarms.alarms

    def check(self) -> None:
        """Read the free space, set or clear the alarm, come back after the next interval."""
        try:
            free = self.free_bytes(self.path)
        except OSError as exc:
            if not self._failed:  # said once, not every interval
                self._failed = True
                log.error("Free disk space monitor cannot read %s: %s", self.path,
                          exc.strerror or exc)
            self._schedule(MAX_INTERVAL)
            return
        self._failed = False
        self.free = free
        if free < self.limit and not self.alarmed:
            log.info("Free disk space is insufficient. Free bytes: %d. Limit: %d", free,
                     self.limit)
            self.alarms.set_alarm("disk")
        elif free >= self.limit and self.alarmed:
            log.info("Free disk space is sufficient. Free bytes: %d. Limit: %d", free,
                     self.limit)
            self.alarms.clear_alarm("disk")
        self._schedule(self.interval())

    def interval(self) -> float:
        """Seconds to the next check (rabbit_disk_monitor:interval/1, but 1 s while alarmed)."""
        if self.alarmed or self.free is None:
            return ALARMED_INTERVAL
        ideal = 2 * (self.free - self.limit) / FAST_RATE
        return max(MIN_INTERVAL, min(MAX_INTERVAL, ideal))

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()  # check() called out of turn: one timer at a time
            self._timer = None
        if self._loop is not None:
            self._timer = self._loop.call_later(delay, self.check)


def limit_bytes(setting: float | int | None, data_dir: str | None, total_memory: int
                ) -> int | None:
    """The disk free limit in bytes, None for no monitor: a float is a multiple of the memory
    (rabbitmq.conf's ``disk_free_limit.relative``, RabbitMQ's ``{mem_relative, F}``), an int
    bytes; unset, RabbitMQ's 50 MB with a data directory and no monitor without one."""
    if setting is None:
        return DEFAULT_LIMIT if data_dir else None
    if isinstance(setting, float):
        return round(setting * total_memory)
    return int(setting)

"""The memory high watermark (rabbitmq.com/docs/memory, /docs/connection-blocked).

Leveret counts the bytes of message bodies waiting in queues. Above the limit, a connection
that publishes is blocked: it gets connection.blocked (if it declared that capability) and its
socket is no longer read. When usage falls back to the limit, every blocked connection gets
connection.unblocked and is read again. Connections that only consume are never blocked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .settings import node_name

if TYPE_CHECKING:
    from .connection import AMQPConnection

log = logging.getLogger("leveret.memory")


class MemoryMonitor:
    __slots__ = ("limit", "used", "blocked", "_release_scheduled", "_alarm_on")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit  # bytes; 0 = no limit
        self.used = 0
        self.blocked: set[AMQPConnection] = set()
        self._release_scheduled = False
        self._alarm_on = False  # logged as set, not yet as cleared

    @property
    def alarm(self) -> bool:
        return bool(self.limit) and self.used > self.limit

    def block(self, conn: AMQPConnection) -> None:
        if conn not in self.blocked:
            if not self._alarm_on:
                self._alarm_on = True
                # the alarm is noticed by the first publish over the limit (RabbitMQ's
                # rabbit_alarm and vm_memory_monitor wording)
                log.info("vm_memory_high_watermark set. Memory used:%d allowed:%d",
                         self.used, self.limit)
                log.warning("memory resource limit alarm set on node %s.\n\n"
                            "**********************************************************\n"
                            "*** Publishers will be blocked until this alarm clears ***\n"
                            "**********************************************************",
                            node_name())
            self.blocked.add(conn)
            conn.block("low on memory")

    def check_release(self) -> None:
        """Called when usage may have fallen: unblock everyone once under the limit."""
        if (self.blocked or self._alarm_on) and not self.alarm:
            self._alarm_on = False
            log.info("vm_memory_high_watermark clear. Memory used:%d allowed:%d",
                     self.used, self.limit)
            log.warning("memory resource limit alarm cleared on node %s", node_name())
            blocked, self.blocked = self.blocked, set()
            for conn in blocked:
                conn.unblock()

    def forget(self, conn: AMQPConnection) -> None:
        self.blocked.discard(conn)
        if not self.blocked:
            self.check_release()  # queues only check while someone is blocked

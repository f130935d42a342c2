"""The memory high watermark (rabbitmq.com/docs/memory, /docs/connection-blocked).

Leveret counts the bytes of message bodies waiting in queues. Above the limit, a connection
that publishes is blocked: it gets connection.blocked (if it declared that capability) and its
socket is no longer read. When usage falls back to the limit, every blocked connection gets
connection.unblocked and is read again. Connections that only consume are never blocked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection


class MemoryMonitor:
    __slots__ = ("limit", "used", "blocked", "_release_scheduled")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit  # bytes; 0 = no limit
        self.used = 0
        self.blocked: set[Connection] = set()
        self._release_scheduled = False

    @property
    def alarm(self) -> bool:
        return bool(self.limit) and self.used > self.limit

    def block(self, conn: Connection) -> None:
        if conn not in self.blocked:
            self.blocked.add(conn)
            conn.block("low on memory")

    def check_release(self) -> None:
        """Called when usage may have fallen: unblock everyone once under the limit."""
        if self.blocked and not self.alarm:
            blocked, self.blocked = self.blocked, set()
            for conn in blocked:
                conn.unblock()

    def forget(self, conn: Connection) -> None:
        self.blocked.discard(conn)

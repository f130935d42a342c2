"""The listener: accepts connections, owns the virtual hosts, shuts down cleanly."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from .connection import Connection
from .memory import MemoryMonitor
from .settings import Settings
from .vhost import VirtualHost

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("leveret.server")


class Server:
    """One broker's state and its TCP listener, living on one event loop."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.store: Store | None = None  # set by store.attach_store with a data dir
        self.vhosts: dict[str, VirtualHost] = {}
        self.connections: set[Connection] = set()
        self.memory = MemoryMonitor(settings.memory_high_watermark)
        self._listener: asyncio.base_events.Server | None = None
        for name in settings.vhosts:
            self.add_vhost(name)

    # ------------------------------------------------------------------ vhosts

    def add_vhost(self, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name, self.store, self.memory)
        return vhost

    def delete_vhost(self, name: str) -> None:
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return
        for conn in list(self.connections):
            if conn.vhost is vhost:
                conn.force_close(f"vhost '{name}' is deleted")
        for queue in list(vhost.queues.values()):
            vhost.delete_queue(queue)
        if self.store is not None:
            self.store.delete_vhost(name)  # its durable exchanges must not come back either

    # ------------------------------------------------------------------ connections

    def connection_opened(self, conn: Connection) -> None:
        log.debug("connection %s opened vhost %r as %r", conn.peer, conn.vhost, conn.user)

    def connection_gone(self, conn: Connection) -> None:
        log.debug("connection %s closed", conn.peer)

    # ------------------------------------------------------------------ listening

    async def start(self) -> None:
        sock = _bound_socket(self.settings.host, self.settings.port)
        if sock is not None:
            # a numeric address needs no getaddrinfo: no resolver thread pool in this process
            try:
                self._listener = await self.loop.create_server(
                    lambda: Connection(self), sock=sock, backlog=1024)
            except BaseException:
                sock.close()
                raise
        else:
            self._listener = await self.loop.create_server(
                lambda: Connection(self),
                host=self.settings.host,
                port=self.settings.port,
                reuse_address=True,
                backlog=1024,
            )
        for sock in self._listener.sockets:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.sockets[0].getsockname()[1])

    @property
    def addresses(self) -> list[tuple[str, int]]:
        assert self._listener is not None
        return [tuple(s.getsockname()[:2]) for s in self._listener.sockets]  # type: ignore[misc]

    async def stop(self, grace: float = 1.0) -> None:
        """Stop listening, close every client with 320 CONNECTION_FORCED, wait for them."""
        if self._listener is not None:
            self._listener.close()
        conns = list(self.connections)
        for conn in conns:
            conn.force_close()
        if conns:
            waits = [asyncio.ensure_future(c.closed.wait()) for c in conns]
            done, pending = await asyncio.wait(waits, timeout=grace)
            for conn in conns:
                if conn.transport is not None and not conn.closed.is_set():
                    conn.transport.abort()
            for w in pending:
                w.cancel()
            if pending:
                await asyncio.wait(pending, timeout=0.5)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self.store is not None:
            self.store.close()


def _bound_socket(host: str, port: int) -> socket.socket | None:
    """A socket bound to ``host`` if it is a numeric IPv4 or IPv6 address, else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    return None

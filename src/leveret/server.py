"""The listener: accepts connections, owns the virtual hosts, shuts down cleanly."""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import resources
from .auth import Access
from .connection import AMQPConnection, Connection
from .counters import GlobalCounters
from .memory import MemoryMonitor, watermark_bytes
from .settings import Settings
from .vhost import VirtualHost

if TYPE_CHECKING:
    from .disk import DiskMonitor
    from .store import Store

log = logging.getLogger("leveret.server")


@dataclass(frozen=True)
class Listener:
    """A socket the broker listens on, as the start-up lines and ``leveret-ctl status`` name it.

    ``protocol`` is RabbitMQ's name for it (``amqp``, ``amqp/ssl``, ``http``, ``https``,
    ``http/prometheus``); ``plugins`` are the RabbitMQ plugins whose job it does, counted in
    "Server startup complete; N plugins started." (the management API serves what
    ``rabbitmq_management``, ``rabbitmq_management_agent`` and ``rabbitmq_web_dispatch`` do).
    """

    protocol: str
    host: str
    port: int
    plugins: tuple[str, ...] = ()


class Server:
    """One broker's state and its TCP listener, living on one event loop."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.store: Store | None = None  # set by store.attach_store with a data dir
        self.vhosts: dict[str, VirtualHost] = {}
        self.connections: set[AMQPConnection] = set()
        # resource alarms: the memory watermark's share is of the RAM or the cgroup's limit
        self.total_memory, self.cgroup_memory_limit = resources.total_memory()
        self.memory = MemoryMonitor(
            watermark_bytes(settings.memory_high_watermark, self.total_memory),
            settings.memory_calculation_strategy)
        self.disk: DiskMonitor | None = None  # the free disk space alarm, made at start
        self._listener: asyncio.base_events.Server | None = None
        self._tls_listener: asyncio.base_events.Server | None = None
        self.listeners: list[Listener] = []  # every socket listening, AMQP first
        self._connection_numbers = itertools.count(1)
        # users, vhost records, permissions; the server follows its changes (access_changed)
        self.access = Access()
        self.access.subscribe(self)
        self.counters = GlobalCounters()  # message counts of closed channels, churn
        self.started_at = time.time()

    def create_defaults(self) -> None:
        """RabbitMQ's first boot: the settings' vhosts and users (the first user is the
        default user, an administrator), each user with full permissions on each vhost. Done
        only when there is no user yet (a data dir keeps them: RabbitMQ too creates the default
        user on first boot only)."""
        s = self.settings
        if self.access.users:
            if any(name not in self.access.users for name in s.users):
                log.info("users %s not created: the data dir has its users already (created "
                         "on first boot only, as RabbitMQ does)", ", ".join(
                             repr(n) for n in s.users if n not in self.access.users))
            return
        log.info("Will seed default virtual host and user...")  # RabbitMQ's first-boot line
        # vhosts a data dir brought back (from before users were kept) are opened to them too
        vhosts = list(s.vhosts) + [v for v in self.access.vhosts if v not in s.vhosts]
        self.access.create_defaults(list(s.users.items()), vhosts, s.default_user_tags,
                                    s.default_permissions)

    # ------------------------------------------------------------------ vhosts

    def add_vhost(self, name: str) -> VirtualHost:
        """The vhost ``name``, created (record and exchanges) if there is none."""
        self.access.add_vhost(name)
        return self.vhosts[name]

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost if there is one (``Access.delete_vhost`` does the same)."""
        if name in self.access.vhosts:
            self.access.delete_vhost(name)

    def access_changed(self, kind: str, key: tuple[str, ...], record: object | None) -> None:
        """Follow the access model (``auth.AccessListener``)."""
        if kind == "vhost":
            if record is not None:
                if key[0] not in self.vhosts:
                    self.vhosts[key[0]] = VirtualHost(key[0], self.store, self.memory)
            else:
                self._drop_vhost(key[0])
        elif kind in ("permissions", "topic_permissions"):
            # changed permissions apply to open channels at once; RabbitMQ's channels cache
            # their last checks until they are idle, so they may take a little longer there
            user, vhost_name = key[0], key[1]
            for conn in self.connections:
                authz = conn.authz
                if authz is not None and authz.user == user and authz.vhost == vhost_name:
                    authz.refresh()
                    for ch in conn.channels.values():
                        ch.publish_allowed.clear()
        elif kind == "user" and record is None:
            # rabbit_connection_tracking: a deleted user's connections are closed
            for conn in list(self.connections):
                if conn.vhost is not None and conn.user == key[0]:
                    conn.force_close(f"user '{key[0]}' is deleted")

    def _drop_vhost(self, name: str) -> None:
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return
        for conn in list(self.connections):
            if conn.vhost is vhost:
                conn.force_close(f"vhost '{name}' is deleted")
        for queue in list(vhost.queues.values()):
            vhost.delete_queue(queue)
        # the store follows the access model itself: the vhost's record goes, and with it
        # every durable definition in it

    # ------------------------------------------------------------------ connections

    def connection_number(self) -> int:
        """A number for a new connection, unique in this broker (its ``<0.N.0>`` in logs)."""
        return next(self._connection_numbers)

    def connection_opened(self, conn: AMQPConnection) -> None:
        self.counters.connection_created += 1

    def connection_gone(self, conn: AMQPConnection) -> None:
        if conn.vhost is not None:
            self.counters.connection_closed += 1

    # ------------------------------------------------------------------ listening

    async def start(self) -> None:
        self._listener = await self._listen(self.settings.host, self.settings.port)
        self.listeners[:0] = [Listener("amqp", host, port) for host, port in self.addresses]
        if self.settings.tls is not None:
            try:
                await self._start_tls()
            except BaseException:
                self._listener.close()
                raise
        self._start_monitors()

    async def _start_tls(self) -> None:
        """The AMQPS listener (tls.py): the same protocol behind the loop's TLS transport."""
        from . import tls

        options = self.settings.tls
        assert options is not None
        context = tls.server_context(options)
        host = options.host or self.settings.host
        try:
            self._tls_listener = await self._listen(
                host, options.port, ssl=context, ssl_handshake_timeout=tls.HANDSHAKE_TIMEOUT)
        except OSError as exc:
            from .broker import ListenError

            raise ListenError(exc.errno or 0, exc.strerror or str(exc), "TLS", host,
                              options.port) from exc
        at = sum(1 for x in self.listeners if x.protocol == "amqp")
        self.listeners[at:at] = [Listener("amqp/ssl", h, p) for h, p in self.tls_addresses]

    async def _listen(self, host: str, port: int, **tls: Any) -> asyncio.base_events.Server:
        """A listener for AMQP connections on ``host``:``port`` (``tls``: the ssl options of
        ``create_server``), its sockets with TCP_NODELAY."""
        sock = _bound_socket(host, port)
        if sock is not None:
            # a numeric address needs no getaddrinfo: no resolver thread pool in this process
            try:
                listener = await self.loop.create_server(
                    lambda: Connection(self), sock=sock, backlog=1024, **tls)
            except BaseException:
                sock.close()
                raise
        else:
            listener = await self.loop.create_server(
                lambda: Connection(self), host=host, port=port, reuse_address=True,
                backlog=1024, **tls)
        for listening in listener.sockets:
            try:
                listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        return listener

    def _start_monitors(self) -> None:
        """The memory sampler and the disk monitor (memory.py, disk.py)."""
        from . import disk

        memory = self.memory
        if memory.limit is not None:
            if self.cgroup_memory_limit is not None:
                log.info("Memory limit of the process's cgroup: %s, below the machine's %s",
                         _mib(self.cgroup_memory_limit), _mib(resources.physical_memory()))
            # vm_memory_monitor's line
            log.info("Memory high watermark set to %s of %s total", _mib(memory.limit),
                     _mib(self.total_memory))
        memory.start(self.loop)
        s = self.settings
        limit = disk.limit_bytes(s.disk_free_limit, s.data_dir, self.total_memory)
        if limit is not None and self.disk is None:
            self.disk = disk.DiskMonitor(self.memory, s.data_dir or os.getcwd(), limit)
            self.disk.start(self.loop)

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.sockets[0].getsockname()[1])

    @property
    def addresses(self) -> list[tuple[str, int]]:
        assert self._listener is not None
        return [tuple(s.getsockname()[:2]) for s in self._listener.sockets]  # type: ignore[misc]

    @property
    def tls_addresses(self) -> list[tuple[str, int]]:
        """Where the AMQPS listener listens (none without TLS)."""
        if self._tls_listener is None:
            return []
        return [tuple(s.getsockname()[:2])  # type: ignore[misc]
                for s in self._tls_listener.sockets]

    async def stop(self, grace: float = 1.0) -> None:
        """Stop listening, close every client with 320 CONNECTION_FORCED, wait for them."""
        if self._listener is not None:
            self._listener.close()
        if self._tls_listener is not None:
            self._tls_listener.close()
        self.memory.stop()
        if self.disk is not None:
            self.disk.stop()
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
        if self._tls_listener is not None:
            await self._tls_listener.wait_closed()
            self._tls_listener = None
        self.listeners = [x for x in self.listeners if x.protocol not in ("amqp", "amqp/ssl")]
        if self.store is not None:
            self.store.close()


def _mib(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB ({n} bytes)"


def _bound_socket(host: str, port: int) -> socket.socket | None:
    """A socket bound to ``host`` if it is a numeric IPv4 or IPv6 address or "" (every
    address), else None."""
    if host == "":
        return _every_address_socket(port)
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


def _every_address_socket(port: int) -> socket.socket:
    """Every address, IPv4 and IPv6: RabbitMQ's listener given as a bare port
    (``listeners.tcp.default = 5672``) listens on ``[::]`` dual-stack, so a client whose
    ``localhost`` resolves to ::1 first (Node.js 17+) reaches it too. IPv4 only on a machine
    without IPv6."""
    if socket.has_ipv6:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            pass
        else:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::", port))
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise
            except BaseException:
                sock.close()
                raise
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
    except BaseException:
        sock.close()
        raise
    return sock

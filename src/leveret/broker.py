"""``leveret.Broker``: a whole broker inside the caller's process.

    async with Broker() as broker:            # on the running event loop
        conn = await aio_pika.connect(broker.url)

    with Broker.in_thread() as broker:        # on its own loop in a background thread
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))

The command line (``leveret``) is a thin shell over this class. The inspection API (``queues``,
``peek``, ``purge``, ``wait_for_messages``) reads the broker's state directly, no AMQP needed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .settings import Settings

if TYPE_CHECKING:
    from .tls import TLSOptions

log = logging.getLogger("leveret.broker")


def _reachable(host: str) -> str:
    """An address a local client can connect to for a listening address (any -> loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)

T = TypeVar("T")


class ListenError(OSError):
    """A port could not be listened on; ``what`` says which (``"management"``)."""

    def __init__(self, errno: int, strerror: str, what: str, host: str, port: int) -> None:
        super().__init__(errno, strerror)
        self.what = what
        self.host = host
        self.port = port


@dataclass(frozen=True)
class QueueInfo:
    """A queue as the inspection API reports it."""

    vhost: str
    name: str
    messages: int  # ready (not delivered)
    unacked: int  # delivered, waiting for an ack
    consumers: int
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any]
    # ready messages held in memory; with a data dir, a long durable queue keeps the rest on
    # disk (RabbitMQ's management API calls this messages_ram)
    messages_ram: int = 0


@dataclass(frozen=True)
class PeekedMessage:
    """A ready message, read without consuming it (``properties`` is a copy)."""

    body: bytes
    exchange: str
    routing_key: str
    properties: dict[str, Any]
    redelivered: bool

    @property
    def headers(self) -> dict[str, Any]:
        """The ``headers`` property, ``{}`` when the message has none."""
        return dict(self.properties.get("headers") or {})


class _QueueCreationWatch:
    """Stands in for a vhost's ``queue_factory`` to tell watchers about every new queue
    (``wait_for_messages`` may be called before the queue is declared)."""

    def __init__(self, factory: Callable[..., Any]) -> None:
        self.factory = factory
        self.watchers: list[Callable[[Any], None]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        queue = self.factory(*args, **kwargs)
        for watcher in list(self.watchers):
            watcher(queue)
        return queue

    @classmethod
    def on(cls, vhost: Any) -> _QueueCreationWatch:
        watch = vhost.queue_factory
        if not isinstance(watch, cls):
            watch = vhost.queue_factory = cls(watch)
        return watch


class Broker:
    """An in-process AMQP 0-9-1 broker.

    Arguments mirror the command line: ``host``/``port`` (default 127.0.0.1 and an ephemeral
    port), ``user``/``password``/``vhost`` (the default user and vhost, guest/guest and ``/``),
    ``users`` (more name -> password pairs), ``vhosts`` (more virtual hosts), ``data_dir``
    (None keeps everything in memory), ``heartbeat``, ``frame_max``, ``channel_max``,
    ``memory_high_watermark`` (publishers are blocked while memory used is above it: a float
    is a share of the memory, RAM or the cgroup's limit, an int or ``"512MiB"`` bytes; None,
    the default here, no limit: an embedded broker shares its process), ``memory_calculation_
    strategy`` (``"rss"``: the process's resident memory; ``"queued"``: bytes of message
    bodies in queues, independent of the program around the broker), ``disk_free_limit``
    (publishers are blocked while the data dir's disk has less free space: bytes, or a float
    multiple of the memory; default 50 MB with a ``data_dir``, none without), ``memory_budget``
    (bytes of durable queues' messages kept in memory when there is a ``data_dir``; the rest is
    paged out),
    ``max_message_size`` (bytes: a larger message body is refused with 406),
    ``consumer_timeout`` (ms a delivery may wait for its ack before its channel is closed;
    None or 0: none), ``loopback_users`` (users who may log in only through a loopback
    address; default ``["guest"]`` as RabbitMQ, ``[]`` lets everyone in from anywhere),
    ``management_port`` (the HTTP management API on ``host``; 0 = an ephemeral port, None = no
    API; ``management_port`` the property then tells the bound port), ``definitions`` (a
    RabbitMQ definitions file or directory, or several, imported before the broker listens;
    as RabbitMQ's load_definitions, on a first boot the default user and vhost are then not
    created; ``DefinitionsError`` from ``leveret.management.definitions`` if it cannot be),
    ``prometheus_port`` (Prometheus metrics at ``/metrics`` on ``host``, as
    rabbitmq_prometheus; 0 = an ephemeral port, None = none; the property ``prometheus_port``
    tells the bound port), ``management_host`` / ``prometheus_host`` (another address for the
    API / the metrics than ``host``), ``tls`` (a ``leveret.tls.TLSOptions``: an AMQPS listener
    besides the plain one, 5671 by default, 0 an ephemeral port; the property ``tls_port``
    tells the bound port), ``loop``
    (``uvloop`` or ``asyncio``: the loop ``in_thread`` runs; ``async with Broker()`` always
    uses the caller's loop).

    The methods run on the broker's event loop: call them from that loop (``async with``), or
    use ``Broker.in_thread()``, whose same-named methods are safe from any thread.
    """

    embedded = True  # the pytest plugin's stand-in for an external broker says False

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        user: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        users: dict[str, str] | None = None,
        vhosts: list[str] | None = None,
        data_dir: str | None = None,
        heartbeat: int = 60,
        frame_max: int = 131072,
        channel_max: int = 2047,
        memory_high_watermark: float | int | str | None = None,
        memory_calculation_strategy: str = "rss",
        disk_free_limit: float | int | str | None = None,
        memory_budget: int = 128 * 1024 * 1024,
        loopback_users: list[str] | None = None,
        max_message_size: int = 128 * 1024 * 1024,
        consumer_timeout: int | None = 30 * 60 * 1000,
        loop: str = "uvloop",
        management_port: int | None = None,
        definitions: str | Sequence[str] | None = None,
        prometheus_port: int | None = None,
        management_host: str | None = None,
        prometheus_host: str | None = None,
        tls: TLSOptions | None = None,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            all_users = {user: password}
            all_users.update(users or {})
            all_vhosts = [vhost] + [v for v in (vhosts or []) if v != vhost]
            settings = Settings(
                host=host,
                port=port,
                users=all_users,
                vhosts=all_vhosts,
                data_dir=data_dir,
                heartbeat=heartbeat,
                frame_max=frame_max,
                channel_max=channel_max,
                memory_high_watermark=_share_or_size(memory_high_watermark),
                memory_calculation_strategy=memory_calculation_strategy,
                disk_free_limit=_share_or_size(disk_free_limit),
                memory_budget=memory_budget,
                max_message_size=max_message_size,
                consumer_timeout=consumer_timeout,
                loop=loop,
                management_port=management_port,
                definitions_files=((definitions,) if isinstance(definitions, str)
                                   else tuple(definitions or ())),
                prometheus_port=prometheus_port,
                management_host=management_host,
                prometheus_host=prometheus_host,
                tls=tls,
            )
            if loopback_users is not None:
                settings.loopback_users = list(loopback_users)
        self.settings = settings
        self.user = next(iter(settings.users))
        self.password = settings.users[self.user]
        self.default_vhost = settings.vhosts[0] if settings.vhosts else "/"
        self._server: Any = None
        self._management: Any = None
        self._prometheus: Any = None
        self._wakeups: set[asyncio.Event] = set()  # pending wait_for_messages calls
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Broker:
        """Start listening on the running loop; returns self."""
        from .server import Server  # imported here: `import leveret` stays light

        if self._server is not None:
            raise RuntimeError("the broker is already running")
        self.loop = asyncio.get_running_loop()
        server = Server(self.settings, self.loop)
        if self.settings.data_dir:
            from .store import attach_store

            attach_store(server, self.settings.data_dir)
        try:
            definitions = self.settings.definitions_files
            if definitions and not server.access.users:
                # rabbit:maybe_insert_default_data: definitions to load at boot replace the
                # default user and vhost on a first boot (they must bring their own users)
                log.info("Will not seed default virtual host and user: have definitions to "
                         "load...")
            else:
                server.create_defaults()
            if definitions:
                from .management.definitions import load_definitions_file

                for path in definitions:
                    load_definitions_file(server, path)
                if not server.access.users:  # Leveret's own hint: RabbitMQ says nothing
                    log.warning("no user can log in: the definitions imported have no users "
                                "(the default user is not created when definitions are "
                                "loaded at boot, as with RabbitMQ)")
            await server.start()
        except BaseException:
            if server.store is not None:
                server.store.close()  # let go of the data dir's lock
            raise
        if self.settings.management_port is not None:
            # after the AMQP port listens: clients can connect while the API loads
            from .management import start_management

            host = self.settings.management_host or self.settings.host
            port = self.settings.management_port
            try:
                self._management = await start_management(server, host, port)
            except OSError as exc:
                await server.stop()
                raise ListenError(exc.errno or 0, exc.strerror or str(exc), "management", host,
                                  port) from exc
        if self.settings.prometheus_port is not None:
            # loaded only now, like the API: start-up and idle memory do not pay for it
            from .management.prometheus import start_prometheus

            host = self.settings.prometheus_host or self.settings.host
            port = self.settings.prometheus_port
            try:
                self._prometheus = await start_prometheus(server, host, port)
            except OSError as exc:
                if self._management is not None:
                    management, self._management = self._management, None
                    await management.stop()
                await server.stop()
                raise ListenError(exc.errno or 0, exc.strerror or str(exc), "metrics", host,
                                  port) from exc
        self._server = server
        return self

    async def stop(self) -> None:
        """Close every client connection (320 CONNECTION_FORCED) and stop listening."""
        if self._server is not None:
            server, self._server = self._server, None
            for wakeup in self._wakeups:
                wakeup.set()  # pending waits see that the broker stopped
            if self._management is not None:
                management, self._management = self._management, None
                await management.stop()
            if self._prometheus is not None:
                prometheus, self._prometheus = self._prometheus, None
                await prometheus.stop()
            await server.stop()

    async def __aenter__(self) -> Broker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def host(self) -> str:
        return _reachable(self.settings.host)

    @property
    def port(self) -> int:
        return int(self._need_server().port)

    @property
    def tls_port(self) -> int | None:
        """The AMQPS listener's bound port (None without TLS)."""
        addresses = self._need_server().tls_addresses
        return int(addresses[0][1]) if addresses else None

    @property
    def management_port(self) -> int | None:
        """The management API's bound port (None when it is off)."""
        self._need_server()
        return self._management.port if self._management is not None else None

    @property
    def management_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the management API (None when it is off)."""
        port = self.management_port
        if port is None:
            return None
        host = _reachable(self.settings.management_host or self.settings.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    @property
    def prometheus_port(self) -> int | None:
        """The Prometheus metrics' bound port (None when they are off)."""
        self._need_server()
        return self._prometheus.port if self._prometheus is not None else None

    def url_for(self, vhost: str | None = None) -> str:
        """The AMQP URL of ``vhost`` (default: the default vhost) for the default user."""
        from urllib.parse import quote

        vhost = self.default_vhost if vhost is None else vhost
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"amqp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{host}:"
                f"{self.port}/{quote(vhost, safe='')}")

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/`` (the default vhost ``/`` is the empty path)."""
        if self.default_vhost == "/":
            return self.url_for("/")[: -len("%2F")]
        return self.url_for()

    @classmethod
    def in_thread(cls, *args: Any, **kwargs: Any) -> ThreadedBroker:
        """A broker on its own event loop in a background thread, for synchronous code; use it
        as a context manager or call ``start()`` / ``stop()``."""
        return ThreadedBroker(cls(*args, **kwargs))

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.Event().wait()

    # ------------------------------------------------------------------ vhosts

    def add_vhost(self, name: str) -> None:
        """Create a virtual host (nothing happens if it exists) and give the users this broker
        was started with (``user`` and ``users``) full permissions on it, as RabbitMQ's
        management API grants them to the user who creates a vhost."""
        access = self._need_server().access
        access.add_vhost(name)
        for user in self.settings.users:
            if user in access.users:
                access.set_permissions(user, name, ".*", ".*", ".*")

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost, closing its connections with 320 and dropping its queues (nothing
        happens if there is no such vhost)."""
        self._need_server().delete_vhost(name)

    def vhost_names(self) -> list[str]:
        return list(self._need_server().vhosts)

    # ------------------------------------------------------------------ users

    @property
    def access(self) -> Any:
        """The users, vhost records and permissions (``leveret.auth.Access``); call it on the
        broker's loop."""
        return self._need_server().access

    def add_user(self, name: str, password: str | None, tags: list[str] | tuple[str, ...] = ()
                 ) -> None:
        """Create or update a user (password None: none, so no password login)."""
        self._need_server().access.put_user(name, password, tags=tags)

    def delete_user(self, name: str) -> None:
        """Delete a user and their permissions, closing their connections with 320."""
        self._need_server().access.delete_user(name)

    def set_permissions(self, user: str, vhost: str, configure: str = ".*", write: str = ".*",
                        read: str = ".*") -> None:
        """Grant regular expressions (RabbitMQ's semantics) on a vhost's resources."""
        self._need_server().access.set_permissions(user, vhost, configure, write, read)

    def clear_permissions(self, user: str, vhost: str) -> None:
        self._need_server().access.clear_permissions(user, vhost)

    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str = ".*",
                              read: str = ".*") -> None:
        """Restrict the routing keys a user may publish and bind with on a topic exchange."""
        self._need_server().access.set_topic_permissions(user, vhost, exchange, write, read)

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None
                                ) -> None:
        self._need_server().access.clear_topic_permissions(user, vhost, exchange)

    # ------------------------------------------------------------------ inspection

    def _need_server(self) -> Any:
        if self._server is None:
            raise RuntimeError("the broker is not running")
        return self._server

    def _vhost(self, vhost: str | None) -> Any:
        name = self.default_vhost if vhost is None else vhost
        try:
            return self._need_server().vhosts[name]
        except KeyError:
            raise KeyError(f"no vhost {name!r}") from None

    def _queue(self, name: str, vhost: str | None) -> Any:
        q = self._vhost(vhost).queues.get(name)
        if q is None:
            raise KeyError(f"no queue {name!r}")
        return q

    @staticmethod
    def _info(q: Any) -> QueueInfo:
        return QueueInfo(q.vhost.name, q.name, q.message_count, q.unacked, q.consumer_count,
                         q.durable, q.exclusive, q.auto_delete, dict(q.arguments),
                         q.messages_ram)

    def queues(self, vhost: str | None = None) -> list[QueueInfo]:
        """Every queue of ``vhost`` (default vhost if None) with its counts."""
        return [self._info(q) for q in self._vhost(vhost).queues.values()]

    def queue(self, name: str, vhost: str | None = None) -> QueueInfo:
        """One queue's counts (KeyError if there is no such queue)."""
        return self._info(self._queue(name, vhost))

    def peek(self, queue: str, vhost: str | None = None, limit: int | None = None
             ) -> list[PeekedMessage]:
        """The ready messages of ``queue`` from the head, without consuming them."""
        from . import frames

        return [
            PeekedMessage(e.message.body, e.message.exchange, e.message.routing_key,
                          frames.decode_properties(e.message.raw_props), e.redelivered)
            for e in self._queue(queue, vhost).peek(limit)
        ]

    def purge(self, queue: str, vhost: str | None = None) -> int:
        """Drop the ready messages of one queue; returns how many."""
        return int(self._queue(queue, vhost).purge())

    def purge_all(self, vhost: str | None = None) -> int:
        """Drop every ready message of every queue (of one vhost, or all); returns the count."""
        server = self._need_server()
        vhosts = [self._vhost(vhost)] if vhost is not None else list(server.vhosts.values())
        return sum(q.purge() for vh in vhosts for q in list(vh.queues.values()))

    async def wait_for_messages(self, queue: str, count: int, vhost: str | None = None,
                                timeout: float | None = 5.0) -> QueueInfo:
        """Wait until ``queue`` holds at least ``count`` ready messages; the queue need not
        exist yet. Raises TimeoutError after ``timeout`` seconds (None waits for ever).

        Woken by the queue itself (its ``on_ready`` hook), not by polling. Messages handed
        straight to a consumer are never ready: wait on a queue nobody consumes from.
        """
        vh = self._vhost(vhost)
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            raise RuntimeError("wait_for_messages runs on the broker's loop; with "
                               "Broker.in_thread() call the ThreadedBroker's method instead")
        wakeup = asyncio.Event()

        def poke(_queue: Any) -> None:
            wakeup.set()

        def created(new: Any) -> None:
            if new.name == queue:
                wakeup.set()

        creation = _QueueCreationWatch.on(vh)
        creation.watchers.append(created)
        self._wakeups.add(wakeup)
        watched: Any = None
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                if self._server is None:
                    raise RuntimeError("the broker stopped")
                if self._server.vhosts.get(vh.name) is not vh:
                    raise KeyError(f"vhost {vh.name!r} was deleted")
                q = vh.queues.get(queue)
                if q is not watched:
                    _unhook(watched, poke)
                    if q is not None:
                        q.on_ready.append(poke)
                        q.on_delete.append(poke)
                    watched = q
                if q is not None and q.message_count >= count:
                    return self._info(q)
                wakeup.clear()
                if deadline is None:
                    await wakeup.wait()
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    have = f"{q.message_count} ready" if q is not None else "not been declared"
                    raise TimeoutError(f"queue {queue!r} has {have} after {timeout} s; "
                                       f"waited for {count} messages")
                try:
                    await asyncio.wait_for(wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    pass  # checked once more above, then reported
        finally:
            self._wakeups.discard(wakeup)
            creation.watchers.remove(created)
            _unhook(watched, poke)


def _share_or_size(value: float | int | str | None) -> float | int | None:
    """A watermark or limit as the command line writes it (``"0.4"``, ``"512MiB"``) or as a
    number (a float: a share or multiple of the memory; an int: bytes)."""
    if isinstance(value, str):
        import argparse

        from .cli import share_or_size

        try:
            return share_or_size(value)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(str(exc)) from None
    return value


def _unhook(queue: Any, hook: Callable[[Any], None]) -> None:
    if queue is not None:
        for hooks in (queue.on_ready, queue.on_delete):
            if hook in hooks:
                hooks.remove(hook)


class ThreadedBroker:
    """A ``Broker`` running on its own loop in a daemon thread.

    Every method is safe to call from any thread: each runs on the broker's loop and returns
    its result. ``stop()`` leaves no thread, socket or task behind, and the broker can be
    started again. Async code on another loop awaits ``wait_for_messages_async``.
    """

    embedded = True

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ThreadedBroker:
        """Start the broker thread and return once the broker listens (or raise why not)."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the broker is already running")
            started = threading.Event()
            self._error = None
            thread = threading.Thread(target=self._run, args=(started,), name="leveret-broker",
                                      daemon=True)
            thread.start()
            started.wait()
            if self._error is not None:
                thread.join()
                error, self._error = self._error, None
                raise error
            self._thread = thread
        return self

    def _run(self, started: threading.Event) -> None:
        try:
            loop = _new_loop(self.broker.settings.loop)
        except BaseException as exc:
            self._error = exc
            started.set()
            return
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(loop, started))
        finally:
            try:
                _cancel_remaining_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                self._loop = None
                asyncio.set_event_loop(None)
                loop.close()
                started.set()  # in case the loop died before the broker started

    async def _main(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        self._stop = asyncio.Event()
        try:
            await self.broker.start()
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            return
        self._loop = loop
        started.set()
        try:
            await self._stop.wait()
        finally:
            await self.broker.stop()

    def stop(self) -> None:
        """Close every client connection (320 CONNECTION_FORCED), stop listening, and end the
        thread. Doing nothing if the broker is not running."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            if thread.ident == threading.get_ident():
                raise RuntimeError("stop() called from the broker's own thread")
            self._thread = None
            loop, stop = self._loop, self._stop
            if loop is not None and stop is not None:
                try:
                    loop.call_soon_threadsafe(stop.set)
                except RuntimeError:
                    pass  # the loop is already closed
            thread.join()

    @property
    def running(self) -> bool:
        return self._thread is not None and self.broker.running

    def __enter__(self) -> ThreadedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ marshalling

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        loop = self._loop
        if loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("the broker is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def _result(self, future: concurrent.futures.Future[T]) -> T:
        """The future's result; a RuntimeError if the broker's thread ends first."""
        thread = self._thread
        while True:
            done, _ = concurrent.futures.wait([future], timeout=0.25)
            if done:
                return future.result()
            if thread is None or not thread.is_alive():
                future.cancel()
                raise RuntimeError("the broker stopped")

    def _call(self, fn: Callable[[], T]) -> T:
        thread = self._thread
        if thread is not None and thread.ident == threading.get_ident():
            return fn()  # already on the broker's loop (e.g. from a hook)

        async def run() -> T:
            return fn()

        return self._result(self._submit(run()))

    # ------------------------------------------------------------------ the Broker API

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def tls_port(self) -> int | None:
        return self.broker.tls_port

    @property
    def management_port(self) -> int | None:
        return self.broker.management_port

    @property
    def management_url(self) -> str | None:
        return self.broker.management_url

    @property
    def prometheus_port(self) -> int | None:
        return self.broker.prometheus_port

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def default_vhost(self) -> str:
        return self.broker.default_vhost

    def url_for(self, vhost: str | None = None) -> str:
        return self.broker.url_for(vhost)

    def add_vhost(self, name: str) -> None:
        self._call(lambda: self.broker.add_vhost(name))

    def delete_vhost(self, name: str) -> None:
        self._call(lambda: self.broker.delete_vhost(name))

    def vhost_names(self) -> list[str]:
        return self._call(self.broker.vhost_names)

    def add_user(self, name: str, password: str | None, tags: list[str] | tuple[str, ...] = ()
                 ) -> None:
        self._call(lambda: self.broker.add_user(name, password, tags))

    def delete_user(self, name: str) -> None:
        self._call(lambda: self.broker.delete_user(name))

    def set_permissions(self, user: str, vhost: str, configure: str = ".*", write: str = ".*",
                        read: str = ".*") -> None:
        self._call(lambda: self.broker.set_permissions(user, vhost, configure, write, read))

    def clear_permissions(self, user: str, vhost: str) -> None:
        self._call(lambda: self.broker.clear_permissions(user, vhost))

    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str = ".*",
                              read: str = ".*") -> None:
        self._call(lambda: self.broker.set_topic_permissions(user, vhost, exchange, write,
                                                             read))

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None
                                ) -> None:
        self._call(lambda: self.broker.clear_topic_permissions(user, vhost, exchange))

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the broker's loop and return its result (for the model objects,
        e.g. ``broker.call(lambda: broker.broker.access.list_users())``)."""
        return self._call(fn)

    def queues(self, vhost: str | None = None) -> list[QueueInfo]:
        return self._call(lambda: self.broker.queues(vhost))

    def queue(self, name: str, vhost: str | None = None) -> QueueInfo:
        return self._call(lambda: self.broker.queue(name, vhost))

    def peek(self, queue: str, vhost: str | None = None, limit: int | None = None
             ) -> list[PeekedMessage]:
        return self._call(lambda: self.broker.peek(queue, vhost, limit))

    def purge(self, queue: str, vhost: str | None = None) -> int:
        return self._call(lambda: self.broker.purge(queue, vhost))

    def purge_all(self, vhost: str | None = None) -> int:
        return self._call(lambda: self.broker.purge_all(vhost))

    def wait_for_messages(self, queue: str, count: int, vhost: str | None = None,
                          timeout: float | None = 5.0) -> QueueInfo:
        """Block until ``queue`` holds ``count`` ready messages (TimeoutError after timeout).
        Don't call it from a loop your clients need: use ``wait_for_messages_async`` there."""
        return self._result(self.wait_for_messages_future(queue, count, vhost, timeout))

    async def wait_for_messages_async(self, queue: str, count: int, vhost: str | None = None,
                                      timeout: float | None = 5.0) -> QueueInfo:
        """The same, awaited in the caller's async code: asyncio (pytest-asyncio, anyio) or
        trio, without blocking the caller's loop."""
        future = self.wait_for_messages_future(queue, count, vhost, timeout)
        if _in_trio():
            import trio

            return await trio.to_thread.run_sync(self._result, future)  # type: ignore
        return await asyncio.wrap_future(future)

    def wait_for_messages_future(self, queue: str, count: int, vhost: str | None = None,
                                 timeout: float | None = 5.0
                                 ) -> concurrent.futures.Future[QueueInfo]:
        """The same as a ``concurrent.futures.Future``."""
        return self._submit(self.broker.wait_for_messages(queue, count, vhost, timeout))

    def vhost(self, name: str | None = None) -> VhostView:
        """The inspection API bound to one vhost (default: the default vhost)."""
        return VhostView(self, self.default_vhost if name is None else name)


class VhostView:
    """The inspection API of one vhost of a ``ThreadedBroker``, for assertions in tests."""

    def __init__(self, broker: ThreadedBroker, name: str) -> None:
        self.broker = broker
        self.name = name

    def __repr__(self) -> str:
        return f"<VhostView {self.name!r}>"

    @property
    def url(self) -> str:
        return self.broker.url_for(self.name)

    def queues(self) -> list[QueueInfo]:
        return self.broker.queues(self.name)

    def queue(self, name: str) -> QueueInfo:
        return self.broker.queue(name, self.name)

    def queue_names(self) -> list[str]:
        return [q.name for q in self.queues()]

    def peek(self, queue: str, limit: int | None = None) -> list[PeekedMessage]:
        return self.broker.peek(queue, self.name, limit)

    def purge(self, queue: str | None = None) -> int:
        """Drop the ready messages of one queue, or of every queue of the vhost."""
        if queue is None:
            return self.broker.purge_all(self.name)
        return self.broker.purge(queue, self.name)

    def wait_for_messages(self, queue: str, count: int, timeout: float | None = 5.0
                          ) -> QueueInfo:
        return self.broker.wait_for_messages(queue, count, self.name, timeout)

    async def wait_for_messages_async(self, queue: str, count: int,
                                      timeout: float | None = 5.0) -> QueueInfo:
        return await self.broker.wait_for_messages_async(queue, count, self.name, timeout)


def _in_trio() -> bool:
    trio = sys.modules.get("trio")  # not imported by us unless the caller runs trio
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _cancel_remaining_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """As ``asyncio.run`` does on the way out: cancel what is left and let it finish."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()

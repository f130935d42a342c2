"""``leveret.Broker``: a whole broker inside the caller's process.

    async with Broker() as broker:            # on the running event loop
        conn = await aio_pika.connect(broker.url)

    with Broker.in_thread() as broker:        # on its own loop in a background thread
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))

The command line (``leveret``) is a thin shell over this class.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class QueueInfo:
    """A queue as the inspection API reports it."""

    vhost: str
    name: str
    messages: int  # ready
    unacked: int
    consumers: int
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any]


@dataclass(frozen=True)
class PeekedMessage:
    """A ready message, read without consuming it."""

    body: bytes
    exchange: str
    routing_key: str
    properties: dict[str, Any]
    redelivered: bool


class Broker:
    """An in-process AMQP 0-9-1 broker.

    Arguments mirror the command line: ``host``/``port`` (default 127.0.0.1 and an ephemeral
    port), ``user``/``password``/``vhost`` (the default user and vhost, guest/guest and ``/``),
    ``users`` (more name -> password pairs), ``vhosts`` (more virtual hosts), ``data_dir``
    (None keeps everything in memory), ``heartbeat``, ``frame_max``, ``channel_max``,
    ``memory_high_watermark`` (bytes; 0 = none).
    """

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
        memory_high_watermark: int = 0,
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
                memory_high_watermark=memory_high_watermark,
            )
        self.settings = settings
        self.user = next(iter(settings.users))
        self.password = settings.users[self.user]
        self.default_vhost = settings.vhosts[0] if settings.vhosts else "/"
        self._server: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Broker:
        """Start listening on the running loop; returns self."""
        from .server import Server  # imported here: `import leveret` stays light

        self.loop = asyncio.get_running_loop()
        server = Server(self.settings, self.loop)
        if self.settings.data_dir:
            from .store import attach_store

            attach_store(server, self.settings.data_dir)
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        """Close every client connection (320 CONNECTION_FORCED) and stop listening."""
        if self._server is not None:
            server, self._server = self._server, None
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
        host = self.settings.host
        return "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the broker is not running")
        return int(self._server.port)

    def url_for(self, vhost: str | None = None) -> str:
        """The AMQP URL of ``vhost`` (default: the default vhost) for the default user."""
        vhost = self.default_vhost if vhost is None else vhost
        user = urllib.parse.quote(self.user, safe="")
        password = urllib.parse.quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://{user}:{password}@{host}:{self.port}/{urllib.parse.quote(vhost, safe='')}"

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/`` (the default vhost ``/`` is the empty path)."""
        if self.default_vhost == "/":
            return self.url_for("/")[: -len("%2F")]
        return self.url_for()

    @classmethod
    def in_thread(cls, *args: Any, **kwargs: Any) -> ThreadedBroker:
        """A broker on its own event loop in a background thread, for synchronous code."""
        return ThreadedBroker(cls(*args, **kwargs))

    # ------------------------------------------------------------------ vhosts

    def add_vhost(self, name: str) -> None:
        self._need_server().add_vhost(name)
        if name not in self.settings.vhosts:
            self.settings.vhosts.append(name)

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost, closing its connections with 320 and dropping its queues."""
        self._need_server().delete_vhost(name)
        if name in self.settings.vhosts:
            self.settings.vhosts.remove(name)

    def vhost_names(self) -> list[str]:
        return list(self._need_server().vhosts)

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

    def queues(self, vhost: str | None = None) -> list[QueueInfo]:
        """Every queue of ``vhost`` (default vhost if None) with its counts."""
        vh = self._vhost(vhost)
        return [
            QueueInfo(vh.name, q.name, q.message_count, q.unacked, q.consumer_count, q.durable,
                      q.exclusive, q.auto_delete, dict(q.arguments))
            for q in vh.queues.values()
        ]

    def queue(self, name: str, vhost: str | None = None) -> QueueInfo:
        for info in self.queues(vhost):
            if info.name == name:
                return info
        raise KeyError(f"no queue {name!r}")

    def peek(self, queue: str, vhost: str | None = None, limit: int | None = None
             ) -> list[PeekedMessage]:
        """The ready messages of ``queue`` from the head, without consuming them."""
        q = self._vhost(vhost).queues.get(queue)
        if q is None:
            raise KeyError(f"no queue {queue!r}")
        return [
            PeekedMessage(e.message.body, e.message.exchange, e.message.routing_key,
                          dict(e.message.properties), e.redelivered)
            for e in q.peek(limit)
        ]

    def purge_all(self, vhost: str | None = None) -> int:
        """Drop every ready message of every queue (of one vhost, or all); returns the count."""
        server = self._need_server()
        vhosts = [self._vhost(vhost)] if vhost is not None else list(server.vhosts.values())
        return sum(q.purge() for vh in vhosts for q in vh.queues.values())

    async def wait_for_messages(self, queue: str, count: int, vhost: str | None = None,
                                timeout: float = 5.0) -> QueueInfo:
        """Wait until ``queue`` holds at least ``count`` ready messages (TimeoutError after
        ``timeout`` seconds); the queue need not exist yet."""
        deadline = time.monotonic() + timeout
        vh_name = vhost
        while True:
            vh = self._vhost(vh_name)
            q = vh.queues.get(queue)
            if q is not None and q.message_count >= count:
                return self.queue(queue, vh_name)
            if time.monotonic() >= deadline:
                have = q.message_count if q is not None else "no queue"
                raise TimeoutError(f"queue {queue!r} has {have} messages, wanted {count}")
            await asyncio.sleep(0.005)

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.Event().wait()


class ThreadedBroker:
    """A ``Broker`` running on its own loop in a daemon thread; every method is thread-safe."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> ThreadedBroker:
        self._thread = threading.Thread(target=self._run, name="leveret-broker", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _run(self) -> None:
        loop = _new_loop(self.broker.settings.loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.broker.start()
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.broker.stop()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> ThreadedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def _await(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore

    # the Broker API, marshalled onto the broker's loop
    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def host(self) -> str:
        return self.broker.host

    def url_for(self, vhost: str | None = None) -> str:
        return self.broker.url_for(vhost)

    def add_vhost(self, name: str) -> None:
        self._call(lambda: self.broker.add_vhost(name))

    def delete_vhost(self, name: str) -> None:
        self._call(lambda: self.broker.delete_vhost(name))

    def vhost_names(self) -> list[str]:
        return self._call(self.broker.vhost_names)

    def queues(self, vhost: str | None = None) -> list[QueueInfo]:
        return self._call(lambda: self.broker.queues(vhost))

    def queue(self, name: str, vhost: str | None = None) -> QueueInfo:
        return self._call(lambda: self.broker.queue(name, vhost))

    def peek(self, queue: str, vhost: str | None = None, limit: int | None = None
             ) -> list[PeekedMessage]:
        return self._call(lambda: self.broker.peek(queue, vhost, limit))

    def purge_all(self, vhost: str | None = None) -> int:
        return self._call(lambda: self.broker.purge_all(vhost))

    def wait_for_messages(self, queue: str, count: int, vhost: str | None = None,
                          timeout: float = 5.0) -> QueueInfo:
        """Block until ``queue`` holds ``count`` ready messages (TimeoutError after timeout)."""
        return self.wait_for_messages_future(queue, count, vhost, timeout).result()

    def wait_for_messages_future(self, queue: str, count: int, vhost: str | None = None,
                                 timeout: float = 5.0) -> concurrent.futures.Future[QueueInfo]:
        """The same as a future, for ``await asyncio.wrap_future(...)`` in async code."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(
            self.broker.wait_for_messages(queue, count, vhost, timeout), self._loop)


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()

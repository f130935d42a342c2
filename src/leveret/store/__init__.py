"""Durable definitions and persistent messages, kept in a data directory.

What is kept: vhosts, users, permissions, durable exchanges, durable queues and the bindings
between durable ends (``definitions.log``, a journal: see ``definitions.py`` and
``journal.py``), and persistent messages (delivery_mode 2) in durable queues (``messages/``,
see ``records.py`` for the format and ``messages.py`` for how it is written). Transient
entities and messages are never restored.

    DIR/VERSION            "leveret-store 3"; a format-2 directory is converted (its
                           definitions.json moves into the journal), any other is refused
    DIR/LOCK               flock()ed while a broker uses the directory
    DIR/definitions.log
    DIR/messages/NNNNNNNN.log     message records, append-only, CRC-checked
    DIR/messages/NNNNNNNN.marks   acks and deliveries of that segment's messages
    DIR/messages/CLEAN            present only between a clean shutdown and the next start

A publisher confirm for a persistent message in a durable queue is sent once an fsync covers
its record (group commit). Messages past the in-memory budget (``memory_budget``) are paged out:
durable queues keep their head in memory and the rest on disk (``paging.py``).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .definitions import Definitions, atomic_write
from .messages import DEFAULT_BUDGET, SEGMENT_BYTES, MessageLog
from .private import make_dir, open_fd
from .recovery import recover_messages

if TYPE_CHECKING:
    from ..exchange import Binding, Exchange
    from ..queue import Queue
    from ..server import Server
    from ..vhost import VirtualHost

log = logging.getLogger("leveret.store")

__all__ = ["DEFAULT_BUDGET", "STORE_VERSION", "Store", "StoreError", "attach_store",
           "default_data_dir"]

STORE_VERSION = "leveret-store 3"
# format 2 kept definitions in definitions.json; its message log is format 3's
_CONVERTIBLE = ("leveret-store 2",)


class StoreError(Exception):
    """The data directory cannot be used (another broker holds it, or another format)."""


def default_data_dir() -> str:
    """``$XDG_DATA_HOME/leveret``, or ``~/.local/share/leveret``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(base, "leveret")


class Store(MessageLog):
    """One data directory: the interface the virtual hosts and queues call."""

    def __init__(self, directory: str | os.PathLike[str], segment_bytes: int = SEGMENT_BYTES,
                 budget: int = DEFAULT_BUDGET) -> None:
        root = Path(directory)
        make_dir(root)  # the owner's only (private.py), an existing data dir too
        self.root = root
        self._lock_fd = open_fd(root / "LOCK", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise StoreError(f"data directory {root} is in use by another leveret") from None
        try:
            version = root / "VERSION"
            self._convert = False
            if version.exists():
                found = version.read_text().strip()
                if found in _CONVERTIBLE:
                    self._convert = True
                elif found != STORE_VERSION:
                    raise StoreError(f"data directory {root} holds '{found}', this leveret "
                                     f"reads '{STORE_VERSION}': use another --data-dir")
            else:
                atomic_write(version, STORE_VERSION + "\n")
            make_dir(root / "messages")
            super().__init__(root / "messages", segment_bytes, budget)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.definitions = Definitions(root)
        # told before the message log closes (streams and delayed messages write their own)
        self.on_close: list[Callable[[], None]] = []

    # the vhost's calls, forwarded
    def save_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        self.definitions.save_exchange(vhost, ex)

    def delete_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        self.definitions.delete_exchange(vhost, ex)

    def save_queue(self, vhost: VirtualHost, q: Queue) -> None:
        self.definitions.save_queue(vhost, q)

    def delete_queue(self, vhost: VirtualHost, q: Queue) -> None:
        self.definitions.delete_queue(vhost, q)

    def save_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        self.definitions.save_binding(vhost, src, b)

    def delete_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        self.definitions.delete_binding(vhost, src, b)

    def access_changed(self, kind: str, key: tuple[str, ...], record: object | None) -> None:
        """Users, vhosts and permissions (``auth.AccessListener``)."""
        self.definitions.access_changed(kind, key, record)

    def recover(self, server: Server) -> None:
        """Recreate durable definitions and persistent messages into ``server``."""
        self.loop = server.loop
        self.definitions.recover(server)
        recover_messages(self, server)
        if self._convert:
            atomic_write(self.root / "VERSION", STORE_VERSION + "\n")
            self._convert = False

    def close(self) -> None:
        """Write everything, mark the shutdown clean, release the directory."""
        if self._closed:
            return
        self._close_others()
        self.close_log()
        self.definitions.close()
        try:
            if self._failing:
                return  # something was not written: the next start recovers as from a crash
            atomic_write(self.dir / "CLEAN", "")
        except OSError as exc:
            log.error("store: could not mark the shutdown clean (%s); the next start recovers "
                      "as after a crash", exc)
        finally:
            os.close(self._lock_fd)

    def abandon(self) -> None:
        """Let go of the directory without a clean-shutdown mark (a failed start)."""
        if not self._closed:
            self._close_others()
            self.close_log()
            self.definitions.close()
            os.close(self._lock_fd)

    def _close_others(self) -> None:
        hooks, self.on_close = self.on_close, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # one failing must not keep the others from writing
                log.exception("store: error while closing")


def attach_store(server: Server, data_dir: str) -> Store:
    """Open ``data_dir``, restore what it holds into ``server``, and keep it up to date."""
    settings = server.settings
    budget = getattr(settings, "memory_budget", DEFAULT_BUDGET)
    segment_bytes = int(os.environ.get("LEVERET_STORE_SEGMENT_BYTES", 0)) or SEGMENT_BYTES
    store = Store(data_dir, segment_bytes, budget)
    try:
        server.store = store
        for vhost in server.vhosts.values():
            vhost.store = store
        store.recover(server)
        server.access.subscribe(store)  # users, vhosts, permissions from now on
    except BaseException:
        store.abandon()
        server.store = None
        raise
    return store

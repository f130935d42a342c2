"""Durable definitions and persistent messages, kept in a data directory.

What is kept: durable exchanges, durable queues and the bindings between durable ends
(``definitions.json``, rewritten atomically on every change), and persistent messages
(delivery_mode 2) in durable queues (``messages/*.log``, see ``log.py``). Transient entities
and messages never touch the disk.

Group commit: records are written to the log as they come and fsynced in batches on a worker
thread; a publisher confirm for a persistent message waits for the fsync that covers it, so a
confirmed message survives ``kill -9``. A message that was delivered and not acknowledged
comes back redelivered; after a crash (no clean-shutdown record) every recovered message is
marked redelivered, since its delivery marker may not have reached the disk.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import frames
from ..message import Message, QueueEntry
from .log import (
    CLEAN,
    DELIVERED,
    PUBLISH,
    REMOVE,
    Published,
    SegmentedLog,
    encode_marker,
    encode_publish,
    read_segment,
)

if TYPE_CHECKING:
    from ..channel import Channel
    from ..exchange import Binding, Exchange
    from ..queue import Queue
    from ..server import Server
    from ..vhost import VirtualHost

log = logging.getLogger("leveret.store")

STORE_VERSION = "leveret-store 1"


class StoreError(Exception):
    """The data directory cannot be used (another broker holds it, or another format)."""


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(base, "leveret")


def _table_out(table: dict[str, Any]) -> str:
    return base64.b64encode(frames.encode_properties({"headers": table})).decode()


def _table_in(text: str) -> dict[str, Any]:
    props = frames.decode_properties(base64.b64decode(text))
    return dict(props.get("headers") or {})


class Store:
    def __init__(self, directory: str | os.PathLike[str], segment_bytes: int = 64 << 20) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise StoreError(f"data directory {self.dir} is in use by another leveret") from None
        version = self.dir / "VERSION"
        if version.exists():
            found = version.read_text().strip()
            if found != STORE_VERSION:
                self._unlock()
                raise StoreError(f"data directory {self.dir} holds '{found}', this leveret "
                                 f"reads '{STORE_VERSION}': use another --data-dir")
        else:
            _atomic_write(version, STORE_VERSION + "\n")
        (self.dir / "messages").mkdir(exist_ok=True)
        self.log = SegmentedLog(self.dir / "messages", segment_bytes)
        self.defs: dict[str, dict[str, dict[str, Any]]] = {}
        self.where: dict[int, int] = {}  # store_id -> segment holding its PUBLISH
        self.next_id = 1
        self.loop: asyncio.AbstractEventLoop | None = None
        self._buf = bytearray()
        self._flush_scheduled = False
        self._waiters: list[tuple[Channel, int]] = []
        self._syncing = False
        self._closed = False

    def _unlock(self) -> None:
        os.close(self._lock_fd)

    # ------------------------------------------------------------------ definitions

    def _vhost_defs(self, vhost: VirtualHost) -> dict[str, dict[str, Any]]:
        return self.defs.setdefault(vhost.name, {"exchanges": {}, "queues": {}, "bindings": {}})

    def _save_defs(self) -> None:
        _atomic_write(self.dir / "definitions.json", json.dumps(
            {"version": 1, "vhosts": {k: {kind: list(v.values()) for kind, v in d.items()}
                                      for k, d in self.defs.items()}}, indent=1))

    def save_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        self._vhost_defs(vhost)["exchanges"][ex.name] = {
            "name": ex.name, "type": ex.kind, "auto_delete": ex.auto_delete,
            "internal": ex.internal, "arguments": _table_out(ex.arguments)}
        self._save_defs()

    def delete_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        d = self._vhost_defs(vhost)
        if d["exchanges"].pop(ex.name, None) is not None:
            self._save_defs()

    def save_queue(self, vhost: VirtualHost, q: Queue) -> None:
        self._vhost_defs(vhost)["queues"][q.name] = {
            "name": q.name, "auto_delete": q.auto_delete, "arguments": _table_out(q.arguments)}
        self._save_defs()

    def delete_queue(self, vhost: VirtualHost, q: Queue) -> None:
        d = self._vhost_defs(vhost)
        if d["queues"].pop(q.name, None) is not None:
            self._save_defs()

    @staticmethod
    def _binding_key(src: Exchange, b: Binding) -> str:
        kind = "exchange" if hasattr(b.destination, "kind") else "queue"
        return json.dumps([src.name, kind, b.destination.name, b.routing_key,
                           _table_out(b.arguments)])

    def save_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        key = self._binding_key(src, b)
        kind = "exchange" if hasattr(b.destination, "kind") else "queue"
        self._vhost_defs(vhost)["bindings"][key] = {
            "source": src.name, "destination_type": kind, "destination": b.destination.name,
            "routing_key": b.routing_key, "arguments": _table_out(b.arguments)}
        self._save_defs()

    def delete_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        if self._vhost_defs(vhost)["bindings"].pop(self._binding_key(src, b), None) is not None:
            self._save_defs()

    # ------------------------------------------------------------------ messages

    def add(self, queue: Queue, entry: QueueEntry, publisher: Channel | None, seq: int) -> None:
        """Log a persistent message of a durable queue; its confirm waits for the fsync."""
        if self._closed:
            return
        store_id = self.next_id
        self.next_id += 1
        entry.store_id = store_id
        m = entry.message
        self._buf += encode_publish(store_id, queue.vhost.name, queue.name, m.exchange,
                                    m.routing_key, m.raw_props, m.body)
        self.where[store_id] = self.log.current
        self.log.live[self.log.current] = self.log.live.get(self.log.current, 0) + 1
        if publisher is not None and seq and publisher.confirms is not None:
            publisher.confirms.wait(seq)
            self._waiters.append((publisher, seq))
        self._schedule()

    def remove(self, queue: Queue, entry: QueueEntry) -> None:
        store_id = entry.store_id
        if not store_id or self._closed:
            return
        entry.store_id = 0
        self._buf += encode_marker(REMOVE, store_id)
        segment = self.where.pop(store_id, None)
        if segment is not None:
            self.log.live[segment] = self.log.live.get(segment, 0) - 1
        self._schedule()

    def delivered(self, entry: QueueEntry) -> None:
        if entry.store_id and not self._closed:
            self._buf += encode_marker(DELIVERED, entry.store_id)
            self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled and self.loop is not None:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return
        if self._buf:
            data, self._buf = self._buf, bytearray()
            self.log.write(data)
            self.log.collect()  # REMOVE records are written: dead segments may go
        if self._waiters and not self._syncing:
            self._start_sync()
        elif not self._syncing and self.log.size > self.log.segment_bytes:
            self.log.open_new()

    def _start_sync(self) -> None:
        assert self.loop is not None
        waiters, self._waiters = self._waiters, []
        self._syncing = True
        fut = self.loop.run_in_executor(None, os.fsync, self.log.fd)
        fut.add_done_callback(lambda f: self._synced(f, waiters))

    def _synced(self, fut: asyncio.Future[None], waiters: list[tuple[Channel, int]]) -> None:
        self._syncing = False
        if fut.exception() is not None:
            log.error("store: fsync failed: %s", fut.exception())
        for channel, seq in waiters:
            if channel.open and channel.confirms is not None:
                if fut.exception() is not None:
                    channel.confirms.nack(seq)
                channel.confirms.written(seq)
                channel.conn.want_confirm_flush(channel)
        if self._closed:
            return
        if self._waiters:
            self._flush()
        elif self.log.size > self.log.segment_bytes:
            self.log.open_new()

    def close(self) -> None:
        """Write everything, mark the shutdown clean, release the directory."""
        if self._closed:
            return
        self._closed = True
        self._buf += encode_marker(CLEAN)
        if self._buf:
            self.log.write(bytes(self._buf))
            self._buf.clear()
        self.log.sync()
        self.log.close()
        self._unlock()

    # ------------------------------------------------------------------ recovery

    def recover(self, server: Server) -> None:
        """Recreate durable definitions and persistent messages into ``server``."""
        self.loop = server.loop
        defs_path = self.dir / "definitions.json"
        raw_defs: dict[str, Any] = {}
        if defs_path.exists():
            try:
                raw_defs = json.loads(defs_path.read_text())
            except (ValueError, OSError) as exc:
                aside = defs_path.with_suffix(".json.damaged")
                defs_path.rename(aside)
                log.error("store: %s is damaged (%s); moved it to %s and started without "
                          "durable definitions", defs_path, exc, aside.name)
        for vname, d in raw_defs.get("vhosts", {}).items():
            vhost = server.add_vhost(vname)
            vhost.store = None  # recreating must not rewrite what we are reading
            try:
                self._recover_vhost(vhost, d)
            finally:
                vhost.store = self
        self._recover_messages(server)
        self._save_defs()

    def _recover_vhost(self, vhost: VirtualHost, d: dict[str, Any]) -> None:
        defs = self._vhost_defs(vhost)
        for e in d.get("exchanges", []):
            ex = vhost.declare_exchange(e["name"], e["type"], durable=True,
                                        auto_delete=e["auto_delete"], internal=e["internal"],
                                        arguments=_table_in(e["arguments"]))
            defs["exchanges"][ex.name] = e
        for q in d.get("queues", []):
            queue, _ = vhost.declare_queue(q["name"], None, durable=True,
                                           auto_delete=q["auto_delete"],
                                           arguments=_table_in(q["arguments"]))
            defs["queues"][queue.name] = q
        for b in d.get("bindings", []):
            src = vhost.exchanges.get(b["source"])
            dest = (vhost.exchanges if b["destination_type"] == "exchange"
                    else vhost.queues).get(b["destination"])
            if src is None or dest is None:
                continue
            vhost.bind(src, dest, b["routing_key"], _table_in(b["arguments"]))
            from ..exchange import Binding

            binding = Binding(dest, b["routing_key"], _table_in(b["arguments"]))
            defs["bindings"][self._binding_key(src, binding)] = b

    def _recover_messages(self, server: Server) -> None:
        live: dict[int, Published] = {}
        clean = False
        segments = self.log.segments()
        for number in segments:
            for kind, value in read_segment(self.log.path(number)):
                clean = kind == CLEAN
                if kind == PUBLISH:
                    assert isinstance(value, Published)
                    value.segment = number
                    live[value.store_id] = value
                elif kind == REMOVE:
                    live.pop(value, None)  # type: ignore[call-overload]
                elif kind == DELIVERED:
                    p = live.get(value)  # type: ignore[call-overload]
                    if p is not None:
                        p.delivered = True
        self.log.current = segments[-1] if segments else 0
        for number in segments:
            self.log.live[number] = 0
        self.log.open_new()
        restored = dropped = 0
        for store_id in sorted(live):
            p = live[store_id]
            vhost = server.vhosts.get(p.vhost)
            queue = vhost.queues.get(p.queue) if vhost is not None else None
            if queue is None or not queue.durable:
                dropped += 1
                continue
            props = frames.decode_properties(p.raw_props)
            msg = Message(p.exchange, p.routing_key, p.raw_props, p.body,
                          props.get("delivery_mode") or 0, props.get("priority") or 0,
                          props.get("expiration"))
            queue.recovered(msg, store_id, redelivered=p.delivered or not clean)
            self.where[store_id] = p.segment
            self.log.live[p.segment] = self.log.live.get(p.segment, 0) + 1
            restored += 1
        self.next_id = max(live, default=0) + 1
        if self.next_id <= 1:
            self.next_id = 1
        self.log.collect()
        if segments:
            log.info("store: recovered %d persistent messages from %s (%s shutdown)%s",
                     restored, self.dir, "clean" if clean else "unclean",
                     f"; {dropped} of queues that no longer exist were dropped" if dropped else "")


def attach_store(server: Server, data_dir: str) -> Store:
    """Open ``data_dir``, restore what it holds into ``server``, and keep it up to date."""
    store = Store(data_dir)
    server.store = store
    for vhost in server.vhosts.values():
        vhost.store = store
    store.recover(server)
    for vhost in server.vhosts.values():
        vhost.store = store
    return store


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

"""Durable exchanges, queues and bindings: ``definitions.json``, rewritten atomically.

Every change rewrites the whole file (write a temporary file, fsync, rename, fsync the
directory), so the file on disk is always one complete state: the old one or the new one.
Argument tables are kept in their AMQP wire encoding (base64) so their value types survive.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import frames

if TYPE_CHECKING:
    from ..exchange import Binding, Exchange
    from ..queue import Queue
    from ..server import Server
    from ..vhost import VirtualHost

log = logging.getLogger("leveret.store")


def table_out(table: dict[str, Any]) -> str:
    return base64.b64encode(frames.encode_properties({"headers": table})).decode()


def table_in(text: str) -> dict[str, Any]:
    props = frames.decode_properties(base64.b64decode(text))
    return dict(props.get("headers") or {})


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (files created, renamed, removed) durable."""
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Definitions:
    """The durable topology of every virtual host, as kept in ``definitions.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vhosts: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.suspended = False  # while recovery recreates what the file says

    def _of(self, vhost: VirtualHost) -> dict[str, dict[str, Any]]:
        return self.vhosts.setdefault(vhost.name, {"exchanges": {}, "queues": {},
                                                   "bindings": {}})

    def save(self) -> None:
        if self.suspended:
            return
        atomic_write(self.path, json.dumps(
            {"version": 1, "vhosts": {name: {kind: list(items.values())
                                             for kind, items in d.items()}
                                      for name, d in self.vhosts.items()}}, indent=1))

    def save_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        self._of(vhost)["exchanges"][ex.name] = {
            "name": ex.name, "type": ex.kind, "auto_delete": ex.auto_delete,
            "internal": ex.internal, "arguments": table_out(ex.arguments)}
        self.save()

    def delete_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        if self._of(vhost)["exchanges"].pop(ex.name, None) is not None:
            self.save()

    def save_queue(self, vhost: VirtualHost, q: Queue) -> None:
        self._of(vhost)["queues"][q.name] = {
            "name": q.name, "auto_delete": q.auto_delete, "arguments": table_out(q.arguments)}
        self.save()

    def delete_queue(self, vhost: VirtualHost, q: Queue) -> None:
        if self._of(vhost)["queues"].pop(q.name, None) is not None:
            self.save()

    @staticmethod
    def _binding(src: Exchange, b: Binding) -> tuple[str, dict[str, Any]]:
        kind = "exchange" if hasattr(b.destination, "kind") else "queue"
        args = table_out(b.arguments)
        key = json.dumps([src.name, kind, b.destination.name, b.routing_key, args])
        return key, {"source": src.name, "destination_type": kind,
                     "destination": b.destination.name, "routing_key": b.routing_key,
                     "arguments": args}

    def save_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        key, item = self._binding(src, b)
        self._of(vhost)["bindings"][key] = item
        self.save()

    def delete_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        key, _ = self._binding(src, b)
        if self._of(vhost)["bindings"].pop(key, None) is not None:
            self.save()

    def delete_vhost(self, name: str) -> None:
        if self.vhosts.pop(name, None) is not None:
            self.save()

    def recover(self, server: Server) -> None:
        """Recreate what the file holds in ``server`` (vhosts included)."""
        raw: dict[str, Any] = {}
        if self.path.exists():
            try:
                raw = json.loads(self.path.read_text())
            except (ValueError, OSError) as exc:
                aside = self.path.with_suffix(".json.damaged")
                self.path.rename(aside)
                log.error("store: %s is damaged (%s); moved it to %s and started without "
                          "durable definitions", self.path, exc, aside.name)
        self.suspended = True
        try:
            for name, d in raw.get("vhosts", {}).items():
                self._recover_vhost(server.add_vhost(name), d)
        finally:
            self.suspended = False
        self.save()

    def _recover_vhost(self, vhost: VirtualHost, d: dict[str, Any]) -> None:
        from ..exchange import Binding

        mine = self._of(vhost)
        for e in d.get("exchanges", []):
            ex = vhost.declare_exchange(e["name"], e["type"], durable=True,
                                        auto_delete=e["auto_delete"], internal=e["internal"],
                                        arguments=table_in(e["arguments"]))
            mine["exchanges"][ex.name] = e
        for q in d.get("queues", []):
            queue, _ = vhost.declare_queue(q["name"], None, durable=True,
                                           auto_delete=q["auto_delete"],
                                           arguments=table_in(q["arguments"]))
            mine["queues"][queue.name] = q
        for b in d.get("bindings", []):
            src = vhost.exchanges.get(b["source"])
            dest = (vhost.exchanges if b["destination_type"] == "exchange"
                    else vhost.queues).get(b["destination"])
            if src is None or dest is None:
                continue
            arguments = table_in(b["arguments"])
            vhost.bind(src, dest, b["routing_key"], arguments)
            key, item = self._binding(src, Binding(dest, b["routing_key"], arguments))
            mine["bindings"][key] = item

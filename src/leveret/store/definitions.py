"""Durable definitions: vhosts, users, permissions, topic permissions, durable exchanges,
durable queues and the bindings between durable ends, in ``definitions.log`` (``journal.py``).

Each change is one record appended to the journal before the change is answered (O(1), however
many definitions there are); the latest record for a thing wins, and a deletion record takes it
out (deleting a vhost or a user takes out what names it: its permissions, exchanges, queues,
bindings). The journal is compacted when it holds more than twice the live records (plus a
thousand). At start the records are read back and the definitions recreated in order: vhosts,
users, permissions, exchanges, queues, bindings. Argument tables are kept in their AMQP wire
encoding (base64) so their value types survive.

A data directory of format 2 kept its topology in ``definitions.json``, rewritten whole on
every change; it is read once, written into the journal, and removed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import frames
from . import private
from .journal import Journal, encode_line

if TYPE_CHECKING:
    from ..exchange import Binding, Exchange
    from ..queue import Queue
    from ..server import Server
    from ..vhost import VirtualHost

log = logging.getLogger("leveret.store")

JOURNAL = "definitions.log"
LEGACY = "definitions.json"
# record kinds, in the order they are recreated at start
KINDS = ("vhost", "user", "perm", "topic", "exchange", "queue", "binding")
# compaction waits for this many dead records more than twice the live ones (a test may
# lower it with LEVERET_DEFINITIONS_COMPACT_SLACK to compact often)
_COMPACT_SLACK = 1000


def table_out(table: dict[str, Any]) -> str:
    return base64.b64encode(frames.encode_properties({"headers": table})).decode()


def table_in(text: str) -> dict[str, Any]:
    props = frames.decode_properties(base64.b64decode(text))
    return dict(props.get("headers") or {})


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with private.create(tmp, "w") as f:
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


def record_key(record: dict[str, Any]) -> tuple[str, ...]:
    """What a record is about: the same key for its put and its deletion."""
    kind = record["t"].rstrip("-")
    if kind == "vhost" or kind == "user":
        return (kind, record["name"])
    if kind == "perm":
        return (kind, record["user"], record["vhost"])
    if kind == "topic":
        return (kind, record["user"], record["vhost"], record["exchange"])
    if kind == "exchange" or kind == "queue":
        return (kind, record["vhost"], record["name"])
    if kind == "binding":
        return (kind, record["vhost"], record["source"], record["destination_type"],
                record["destination"], record["routing_key"], record["arguments"])
    raise KeyError(kind)


def _names_vhost(key: tuple[str, ...], vhost: str) -> bool:
    kind = key[0]
    if kind in ("perm", "topic"):
        return key[2] == vhost
    return kind in ("exchange", "queue", "binding") and key[1] == vhost


def _names_user(key: tuple[str, ...], user: str) -> bool:
    return key[0] in ("perm", "topic") and key[1] == user


def _binding_record(vhost: VirtualHost, src: Exchange, b: Binding) -> dict[str, Any]:
    kind = "exchange" if hasattr(b.destination, "kind") else "queue"
    return {"t": "binding", "vhost": vhost.name, "source": src.name, "destination_type": kind,
            "destination": b.destination.name, "routing_key": b.routing_key,
            "arguments": table_out(b.arguments)}


class Definitions:
    """The durable definitions of one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.journal = Journal(root / JOURNAL)
        self.live: dict[tuple[str, ...], bytes] = {}  # key -> its latest put line
        self.suspended = False  # while recovery recreates what the journal says
        self.slack = int(os.environ.get("LEVERET_DEFINITIONS_COMPACT_SLACK", 0)) or _COMPACT_SLACK

    # ------------------------------------------------------------------ changes

    def put(self, record: dict[str, Any]) -> None:
        if self.suspended:
            return
        line = encode_line(record)
        self.live[record_key(record)] = line
        self.journal.append(line)
        self._maybe_compact()

    def remove(self, record: dict[str, Any]) -> None:
        """Append a deletion (``t`` ending in ``-``) if it takes anything out."""
        if self.suspended:
            return
        key = record_key(record)
        gone = self.live.pop(key, None) is not None
        if key[0] == "vhost":
            gone = self._cascade(lambda k: _names_vhost(k, key[1])) or gone
        elif key[0] == "user":
            gone = self._cascade(lambda k: _names_user(k, key[1])) or gone
        if gone:
            self.journal.append(encode_line(record))
            self._maybe_compact()

    def _cascade(self, names: Any) -> bool:
        doomed = [k for k in self.live if names(k)]
        for k in doomed:
            del self.live[k]
        return bool(doomed)

    def _maybe_compact(self) -> None:
        journal = self.journal
        if journal.lines > 2 * len(self.live) + self.slack and not journal.compacting:
            journal.compact(list(self._ordered_lines()), len(self.live))

    def _ordered_lines(self) -> list[bytes]:
        order = {kind: i for i, kind in enumerate(KINDS)}
        return [line for _, line in sorted(self.live.items(), key=lambda kv: order[kv[0][0]])]

    # the vhosts' calls (durable topology)

    def save_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        self.put({"t": "exchange", "vhost": vhost.name, "name": ex.name, "type": ex.kind,
                  "auto_delete": ex.auto_delete, "internal": ex.internal,
                  "arguments": table_out(ex.arguments)})

    def delete_exchange(self, vhost: VirtualHost, ex: Exchange) -> None:
        self.remove({"t": "exchange-", "vhost": vhost.name, "name": ex.name})

    def save_queue(self, vhost: VirtualHost, q: Queue) -> None:
        self.put({"t": "queue", "vhost": vhost.name, "name": q.name,
                  "auto_delete": q.auto_delete, "arguments": table_out(q.arguments)})

    def delete_queue(self, vhost: VirtualHost, q: Queue) -> None:
        self.remove({"t": "queue-", "vhost": vhost.name, "name": q.name})

    def save_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        self.put(_binding_record(vhost, src, b))

    def delete_binding(self, vhost: VirtualHost, src: Exchange, b: Binding) -> None:
        record = _binding_record(vhost, src, b)
        record["t"] = "binding-"
        self.remove(record)

    # the access model's changes (auth.AccessListener)

    def access_changed(self, kind: str, key: tuple[str, ...], record: Any) -> None:
        if kind == "user":
            if record is None:
                self.remove({"t": "user-", "name": key[0]})
            else:
                self.put({"t": "user", "name": record.name,
                          "password_hash": record.password_hash,
                          "hashing_algorithm": record.hashing_algorithm,
                          "tags": list(record.tags), "limits": dict(record.limits)})
        elif kind == "vhost":
            if record is None:
                self.remove({"t": "vhost-", "name": key[0]})
            else:
                self.put({"t": "vhost", "name": record.name, "description": record.description,
                          "tags": list(record.tags),
                          "default_queue_type": record.default_queue_type,
                          "tracing": record.tracing})
        elif kind == "permissions":
            if record is None:
                self.remove({"t": "perm-", "user": key[0], "vhost": key[1]})
            else:
                self.put({"t": "perm", "user": key[0], "vhost": key[1],
                          "configure": record.configure, "write": record.write,
                          "read": record.read})
        elif kind == "topic_permissions":
            if record is None:
                self.remove({"t": "topic-", "user": key[0], "vhost": key[1],
                             "exchange": key[2]})
            else:
                self.put({"t": "topic", "user": key[0], "vhost": key[1], "exchange": key[2],
                          "write": record.write, "read": record.read})

    # ------------------------------------------------------------------ start

    def recover(self, server: Server) -> None:
        """Read the journal (or a format-2 ``definitions.json``) and recreate what it holds
        in ``server``."""
        records: dict[tuple[str, ...], tuple[dict[str, Any], bytes]] = {}
        for record, line in self.journal.read():
            try:
                key = record_key(record)
            except (KeyError, TypeError):
                log.error("store: %s: a record of an unknown kind skipped", JOURNAL)
                continue
            if record["t"].endswith("-"):
                records.pop(key, None)
                if key[0] == "vhost":
                    for k in [k for k in records if _names_vhost(k, key[1])]:
                        del records[k]
                elif key[0] == "user":
                    for k in [k for k in records if _names_user(k, key[1])]:
                        del records[k]
            else:
                records[key] = (record, line)
        legacy = self.root / LEGACY
        migrated = False
        if not self.journal.existed and legacy.exists():
            for record in self._read_legacy(legacy):
                records[record_key(record)] = (record, encode_line(record))
            migrated = True
        self.live = {key: line for key, (_, line) in records.items()}
        self.suspended = True
        try:
            missing = self._apply(server, [record for record, _ in records.values()])
        finally:
            self.suspended = False
        for name in missing:  # topology of a vhost whose record was lost: keep the vhost
            self.put({"t": "vhost", "name": name, "description": "", "tags": [],
                      "default_queue_type": None, "tracing": False})
        if migrated:
            self.journal.compact(self._ordered_lines(), len(self.live))
            if legacy.exists():  # not if it was damaged and set aside
                legacy.unlink()
                log.info("store: definitions moved from %s to %s", LEGACY, JOURNAL)
            fsync_dir(self.root)
        elif legacy.exists():
            legacy.unlink()  # a migration that stopped before removing it
        else:
            self._maybe_compact()
        self.journal.loop = server.loop

    def _read_legacy(self, path: Path) -> list[dict[str, Any]]:
        try:
            raw = json.loads(path.read_text())
        except (ValueError, OSError) as exc:
            aside = path.with_suffix(".json.damaged")
            path.rename(aside)
            log.error("store: %s is damaged (%s); moved it to %s and started without "
                      "durable definitions", path, exc, aside.name)
            return []
        out: list[dict[str, Any]] = []
        for name, d in raw.get("vhosts", {}).items():
            out.append({"t": "vhost", "name": name, "description": "", "tags": [],
                        "default_queue_type": None, "tracing": False})
            out += [{"t": "exchange", "vhost": name, **e} for e in d.get("exchanges", [])]
            out += [{"t": "queue", "vhost": name, **q} for q in d.get("queues", [])]
            out += [{"t": "binding", "vhost": name, **b} for b in d.get("bindings", [])]
        return out

    def _apply(self, server: Server, records: list[dict[str, Any]]) -> list[str]:
        """Recreate the records in ``server``; returns the vhosts topology named that had no
        record of their own."""
        from ..auth import AccessError
        from ..permissions import InvalidRegex

        by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for record in records:
            by_kind[record["t"]].append(record)
        access = server.access
        for r in by_kind["vhost"]:
            access.add_vhost(r["name"], description=r.get("description") or "",
                             tags=r.get("tags") or (),
                             default_queue_type=r.get("default_queue_type"),
                             tracing=bool(r.get("tracing")))
        for kind, apply in (
            ("user", lambda r: access.put_user(
                r["name"], password_hash=r.get("password_hash") or "",
                hashing_algorithm=r.get("hashing_algorithm"), tags=r.get("tags") or (),
                limits=r.get("limits") or {})),
            ("perm", lambda r: access.set_permissions(r["user"], r["vhost"], r["configure"],
                                                      r["write"], r["read"])),
            ("topic", lambda r: access.set_topic_permissions(r["user"], r["vhost"],
                                                            r["exchange"], r["write"],
                                                            r["read"])),
        ):
            for r in by_kind[kind]:
                try:
                    apply(r)
                except (AccessError, InvalidRegex, KeyError) as exc:
                    log.error("store: %s record %s not restored: %s", kind,
                              record_key(r), exc)
                    self.live.pop(record_key(r), None)
        missing: list[str] = []

        def vhost_of(r: dict[str, Any]) -> VirtualHost:
            name = r["vhost"]
            if name not in server.vhosts:
                missing.append(name)
                access.add_vhost(name)
            return server.vhosts[name]

        for e in by_kind["exchange"]:
            vhost_of(e).declare_exchange(e["name"], e["type"], durable=True,
                                         auto_delete=e["auto_delete"], internal=e["internal"],
                                         arguments=table_in(e["arguments"]))
        for q in by_kind["queue"]:
            vhost_of(q).declare_queue(q["name"], None, durable=True,
                                      auto_delete=q["auto_delete"],
                                      arguments=table_in(q["arguments"]))
        for b in by_kind["binding"]:
            vhost = vhost_of(b)
            src = vhost.exchanges.get(b["source"])
            dest = (vhost.exchanges if b["destination_type"] == "exchange"
                    else vhost.queues).get(b["destination"])
            if src is None or dest is None:
                self.live.pop(record_key(b), None)
                continue
            vhost.bind(src, dest, b["routing_key"], table_in(b["arguments"]))
        return missing

    def close(self) -> None:
        self.journal.close()

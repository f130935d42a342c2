"""Persistent delayed messages (``x-delayed-message`` exchanges, delayed.py): ``DIR/delayed.log``.

Persistent messages (delivery_mode 2) waiting on a durable delayed exchange are kept in one
append-only file, as the plugin keeps them in a disc-copies Mnesia table::

    record   u32 length | u32 crc32(payload) | payload
    payload  u8 ADD (1) | u64 id | u64 due (wall clock, ms) | i64 delay ms | u8 delivery_mode
             | u8 priority | u8 flags | shortstr vhost | shortstr exchange | shortstr routing key
             | [shortstr expiration, if flags & 1] | [u16 n | n x (u32 size | key), if flags & 2]
             | u32 props size | props | body
    payload  u8 DONE (2) | u64 id          (the message was routed, or its exchange deleted)

Records reach the OS at the end of the loop turn they were made in and are fsynced at a clean
shutdown, not one by one (the plugin's Mnesia writes are not synchronous either). At start the
file is read once, what is not DONE is handed to the exchanges as they are recovered (those that
no longer exist drop theirs), and the file is rewritten with the live records only; while
running it is rewritten when dead records pass half of a file over a megabyte.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..message import Message
from . import private
from .definitions import fsync_dir

if TYPE_CHECKING:
    from . import Store

log = logging.getLogger("leveret.store")

HEAD = struct.Struct(">II")
FIXED = struct.Struct(">BQQqBBB")  # type, id, due, delay, delivery_mode, priority, flags
ADD, DONE = 1, 2
EXPIRES, KEYS = 1, 2
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DONE = struct.Struct(">BQ")
COMPACT_AT = 1 << 20


@dataclass
class StoredDelay:
    """A delayed message read back at start."""

    id: int
    due_ms: int
    delay: int
    message: Message


def _short(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    return bytes((len(raw),)) + raw


def encode_add(record_id: int, due_ms: int, delay: int, vhost: str, message: Message) -> bytes:
    flags = 0
    tail = b""
    if message.expiration is not None:
        flags |= EXPIRES
        tail += _short(message.expiration)
    if message.extra_routing_keys:
        flags |= KEYS
        keys = [k.encode("utf-8", "surrogateescape") for k in message.extra_routing_keys]
        tail += _U16.pack(len(keys)) + b"".join(_U32.pack(len(k)) + k for k in keys)
    payload = b"".join((
        FIXED.pack(ADD, record_id, due_ms, delay, message.delivery_mode or 0,
                   min(message.priority or 0, 255), flags),
        _short(vhost), _short(message.exchange), _short(message.routing_key), tail,
        _U32.pack(len(message.raw_props)), message.raw_props, message.body))
    return HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_add(payload: bytes) -> tuple[str, StoredDelay]:
    _, record_id, due, delay, mode, priority, flags = FIXED.unpack_from(payload, 0)
    pos = FIXED.size
    names = []
    for _ in range(4 if flags & EXPIRES else 3):
        n = payload[pos]
        names.append(payload[pos + 1 : pos + 1 + n].decode("utf-8", "surrogateescape"))
        pos += 1 + n
    keys: tuple[str, ...] = ()
    if flags & KEYS:
        (count,) = _U16.unpack_from(payload, pos)
        pos += 2
        found = []
        for _ in range(count):
            (n,) = _U32.unpack_from(payload, pos)
            found.append(payload[pos + 4 : pos + 4 + n].decode("utf-8", "surrogateescape"))
            pos += 4 + n
        keys = tuple(found)
    (props_size,) = _U32.unpack_from(payload, pos)
    pos += 4
    props = payload[pos : pos + props_size]
    body = payload[pos + props_size :]
    message = Message(names[1], names[2], props, body, mode, priority,
                      names[3] if flags & EXPIRES else None)
    message.extra_routing_keys = keys
    return names[0], StoredDelay(record_id, due, delay, message)


class DelayedLog:
    """The file of one data directory; exchanges add and finish their messages here."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_id = 1
        self.waiting: dict[tuple[str, str], list[StoredDelay]] = {}  # until claimed at start
        self.live: dict[int, int] = {}  # id -> size of its record
        self.size = 0
        self._buf = bytearray()
        self._scheduled = False
        self.closed = False
        self._read()
        self.fd = private.open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self.size = os.fstat(self.fd).st_size
        try:
            asyncio.get_running_loop().call_soon(self._drop_unclaimed)
        except RuntimeError:
            pass

    def _read(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        records: dict[int, bytes] = {}
        pos = 0
        while pos + HEAD.size <= len(data):
            length, crc = HEAD.unpack_from(data, pos)
            payload = data[pos + HEAD.size : pos + HEAD.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc or not payload:
                log.warning("store: %s damaged at byte %d of %d; the records before it are "
                            "kept", self.path.name, pos, len(data))
                break
            if payload[0] == ADD:
                record_id = FIXED.unpack_from(payload, 0)[1]
                records[record_id] = data[pos : pos + HEAD.size + length]
                self.next_id = max(self.next_id, record_id + 1)
            elif payload[0] == DONE:
                records.pop(_DONE.unpack_from(payload, 0)[1], None)
            pos += HEAD.size + length
        for record_id, record in records.items():
            vhost, stored = _decode_add(record[HEAD.size :])
            self.waiting.setdefault((vhost, stored.message.exchange), []).append(stored)
            self.live[record_id] = len(record)
        # start over with the live records only
        tmp = self.path.with_suffix(".tmp")
        with private.create(tmp, "wb") as f:
            f.write(b"".join(records.values()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)

    def claim(self, vhost: str, exchange: str) -> list[StoredDelay]:
        """The stored messages of a delayed exchange being recovered."""
        return self.waiting.pop((vhost, exchange), [])

    def _drop_unclaimed(self) -> None:
        """After recovery: messages whose exchange did not come back are dropped."""
        for stored in [s for items in self.waiting.values() for s in items]:
            self.done(stored.id)
        self.waiting.clear()

    def add(self, due_ms: int, delay: int, vhost: str, message: Message) -> int:
        record_id = self.next_id
        self.next_id += 1
        record = encode_add(record_id, due_ms, delay, vhost, message)
        self.live[record_id] = len(record)
        self._append(record)
        return record_id

    def done(self, record_id: int) -> None:
        if self.live.pop(record_id, None) is not None:
            payload = _DONE.pack(DONE, record_id)
            self._append(HEAD.pack(len(payload), zlib.crc32(payload)) + payload)

    def _append(self, record: bytes) -> None:
        if self.closed:
            return
        self._buf += record
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if self.closed or not self._buf:
            return
        try:
            while self._buf:
                n = os.write(self.fd, self._buf)
                del self._buf[:n]
                self.size += n
        except OSError as exc:
            # kept buffered and tried again with the next record or at shutdown
            log.error("store: cannot write %s (%s)", self.path.name, exc)
            return
        if self.size > COMPACT_AT and sum(self.live.values()) * 2 < self.size:
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with the live records only (read back from it)."""
        with open(self.path, "rb") as f:
            data = f.read()
        keep = []
        pos = 0
        while pos + HEAD.size <= len(data):
            length, _ = HEAD.unpack_from(data, pos)
            end = pos + HEAD.size + length
            payload = data[pos + HEAD.size : end]
            if payload and payload[0] == ADD and FIXED.unpack_from(payload, 0)[1] in self.live:
                keep.append(data[pos:end])
            pos = end
        tmp = self.path.with_suffix(".tmp")
        with private.create(tmp, "wb") as f:
            f.write(b"".join(keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.size = os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        try:
            os.fsync(self.fd)
        except OSError as exc:
            log.error("store: fsync of %s failed: %s", self.path.name, exc)
        os.close(self.fd)


_logs: weakref.WeakKeyDictionary[Store, DelayedLog] = weakref.WeakKeyDictionary()


def delayed_log(store: Store) -> DelayedLog:
    """The delayed-message file of ``store`` (opened, and read, on first use)."""
    found = _logs.get(store)
    if found is None:
        found = _logs[store] = DelayedLog(store.root / "delayed.log")
        store.on_close.append(found.close)
    return found

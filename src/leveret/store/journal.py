"""An append-only journal of records, one per line, each with its own checksum.

    XXXXXXXX {"t":"queue","vhost":"/","name":"q",...}\\n

``XXXXXXXX`` is the CRC-32 of the JSON text in hex. A change costs one ``write()`` of one line
before the caller answers, so a process killed at any moment keeps every change it answered
for (the OS has the bytes); a worker thread fsyncs within ``SYNC_DELAY`` (for the machine
crashing too), without holding anything up. At start the lines are read back in order: a line
cut short by a crash in the middle of a write (no newline at the end of the file) is dropped
and cut off the file, and a line whose checksum fails is skipped with a log line, the ones
after it kept.

Compaction: when the file holds many more lines than there are live records, the live ones are
written to a new file and it replaces the old one (rename). The slow part (fsync, rename, fsync
of the directory) runs on the worker thread; appends made meanwhile go to both files, so a
crash at any point finds one complete journal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import private

log = logging.getLogger("leveret.store")

SYNC_DELAY = 0.05  # seconds from a change to the fsync that covers it (machine crashes only)


def encode_line(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The record a line holds, or None if it is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Journal:
    """One journal file: ``read()`` its records at start, then ``append`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp_path = path.with_name(path.name + ".new")
        self.fd = -1
        self.lines = 0  # lines in the file (live or not): what compaction compares with
        self.existed = False  # read() found a journal with something in it
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending = bytearray()  # lines the OS refused (a full disk): retried
        self._failing = False
        self._retry_scheduled = False
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._sync_wanted = False
        self._sync_running = False
        self._compacting_fd = -1  # the new file while a compaction finishes on the worker
        self._closed = False

    # ------------------------------------------------------------------ start

    def read(self) -> list[tuple[dict[str, Any], bytes]]:
        """Every good record in file order, with its line; opens the file for appending."""
        if self.tmp_path.exists():
            self.tmp_path.unlink()  # a compaction that did not finish: the old file is whole
        data = self.path.read_bytes() if self.path.exists() else b""
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("store: %s ends with an unfinished record (%d bytes, a crash in the "
                        "middle of a write): dropped", self.path.name, len(data) - end)
        records: list[tuple[dict[str, Any], bytes]] = []
        damaged = 0
        for line in data[:end].split(b"\n")[:-1] if end else ():
            record = decode_line(line)
            if record is None:
                damaged += 1
            else:
                records.append((record, line + b"\n"))
        if damaged:
            log.error("store: %s: %d damaged record(s) skipped", self.path.name, damaged)
        self.existed = bool(data)
        self.lines = len(records) + damaged
        self.fd = private.open_fd(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        if end < len(data):
            os.ftruncate(self.fd, end)
        return records

    # ------------------------------------------------------------------ appends

    def append(self, line: bytes) -> None:
        """Write one encoded line to the OS now (and to the new file of a compaction that is
        finishing); an fsync follows on the worker thread."""
        self.lines += 1
        if self._pending or self._failing:
            self._pending += line
            self._retry()
        else:
            self._write(self.fd, line)
        if self._compacting_fd >= 0:
            try:
                self._write(self._compacting_fd, line)
            except OSError as exc:  # the old file has it; the new one may miss it
                log.error("store: a compaction of %s missed a record (%s)", self.path.name,
                          exc.strerror or exc)
        self._want_sync()

    def _write(self, fd: int, data: bytes | bytearray) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            if fd == self.fd:
                if not self._failing:
                    log.error("store: cannot write %s (%s); definitions changed from now on "
                              "are kept in memory and written when it works again",
                              self.path.name, exc.strerror or exc)
                self._failing = True
                self._pending += view
                if self.loop is not None and not self._closed and not self._retry_scheduled:
                    self._retry_scheduled = True
                    self.loop.call_later(1.0, self._retry_later)
            else:
                raise

    def _retry_later(self) -> None:
        self._retry_scheduled = False
        if self._failing and not self._closed:
            self._retry()
            if not self._failing:
                self._want_sync()

    def _retry(self) -> None:
        pending, self._pending = bytes(self._pending), bytearray()
        was_failing, self._failing = self._failing, False
        self._write(self.fd, pending)
        if was_failing and not self._failing:
            log.warning("store: %s is written again", self.path.name)

    # ------------------------------------------------------------------ fsync

    def _submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="leveret-definitions")
        return self._worker.submit(fn, *args)

    def _want_sync(self) -> None:
        if self.loop is None or self._closed or self._sync_wanted:
            return
        self._sync_wanted = True
        if not self._sync_running:
            # a moment later, so a burst of changes shares one fsync: each hand-over to the
            # worker thread costs the loop more than the write itself
            self.loop.call_later(SYNC_DELAY, self._start_sync)

    def _start_sync(self) -> None:
        assert self.loop is not None
        if self._closed or self._sync_running:
            return
        self._sync_wanted = False
        self._sync_running = True
        future = asyncio.wrap_future(self._submit(os.fdatasync, self.fd), loop=self.loop)
        future.add_done_callback(self._synced)

    def _synced(self, future: asyncio.Future[Any]) -> None:
        self._sync_running = False
        if not future.cancelled() and future.exception() is not None:
            log.error("store: fsync of %s failed: %s", self.path.name, future.exception())
        if self._sync_wanted and not self._closed and self.loop is not None:
            self.loop.call_later(SYNC_DELAY, self._start_sync)

    # ------------------------------------------------------------------ compaction

    @property
    def compacting(self) -> bool:
        return self._compacting_fd >= 0

    def compact(self, live: Iterable[bytes], count: int) -> None:
        """Replace the file with ``live`` lines (``count`` of them). They are written to a new
        file here; its fsync and the rename happen on the worker thread, and until they are
        done appends go to both files."""
        if self.compacting or self._failing or self._closed:
            return
        data = b"".join(live)
        fd = private.open_fd(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        try:
            self._write(fd, data)
        except OSError as exc:
            os.close(fd)
            self.tmp_path.unlink(missing_ok=True)
            log.error("store: could not compact %s (%s)", self.path.name, exc.strerror or exc)
            return
        self._compacting_fd = fd
        self.lines = count
        if self.loop is None:  # not running yet (start-up): finish here
            self._finish_compaction(fd)
            self._compacted(fd, None)
            return
        future = asyncio.wrap_future(self._submit(self._finish_compaction, fd), loop=self.loop)
        future.add_done_callback(lambda f: self._compacted(fd, f))

    def _finish_compaction(self, fd: int) -> None:
        """Worker thread: make the new file durable, then make it the journal."""
        os.fsync(fd)
        os.replace(self.tmp_path, self.path)
        _fsync_dir(self.path.parent)

    def _compacted(self, fd: int, future: asyncio.Future[Any] | None) -> None:
        if self._closed:
            return  # close() settled it
        self._compacting_fd = -1
        error = None
        if future is not None and not future.cancelled():
            error = future.exception()
        if error is not None:
            log.error("store: could not compact %s (%s)", self.path.name, error)
            os.close(fd)
            self.tmp_path.unlink(missing_ok=True)
            return
        old, self.fd = self.fd, fd
        if self._closed:
            os.close(old)
        else:
            self._submit(os.close, old)  # after any fsync of it already queued

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Write what is pending, fsync, and close (waiting for the worker)."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        if self._compacting_fd >= 0:  # its worker job finished above, its callback did not
            fd = self._compacting_fd
            self._compacting_fd = -1
            if self.tmp_path.exists():
                os.close(fd)  # the rename did not happen: the old file is complete
                self.tmp_path.unlink(missing_ok=True)
            else:
                self.fd, fd = fd, self.fd
                os.close(fd)
        if self.fd < 0:
            return
        try:
            if self._pending:
                self._retry()
            os.fsync(self.fd)
        except OSError as exc:
            log.error("store: could not write %s at shutdown (%s)", self.path.name,
                      exc.strerror or exc)
        finally:
            os.close(self.fd)
            self.fd = -1

    @property
    def failing(self) -> bool:
        return self._failing

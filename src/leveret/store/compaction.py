"""Compaction: a segment whose live messages fell under half of its records is rewritten.

Its live records are copied, a megabyte of the old segment per event-loop turn, to the end of
the current segment with the MOVED flag; the entries that name them keep their store ids and
``MessageLog.remap`` says where each one is now. Once an fsync covers the copies, the old
segment and its marks are deleted.

A crash in between leaves both copies: recovery keeps one (they share an ``order``), and if the
MOVED copy was removed meanwhile the message is dead, whatever the old copy says. Deleting
other dead segments waits until the old segment is gone, so the MOVED copy's REMOVE mark
cannot vanish before it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from .records import HEAD, TRANSIENT, read_marks, record_length, valid_at

if TYPE_CHECKING:
    from .messages import MessageLog

log = logging.getLogger("leveret.store")

STEP = 1 << 20


class Compaction:
    def __init__(self, store: MessageLog, seg: int) -> None:
        self.store = store
        self.seg = seg
        store.write_out()  # its marks are all in its marks file now
        self.removed, self.delivered = read_marks(store.marks_path(seg))
        self.fd = os.open(store.data_path(seg), os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.pos = 0
        self.moved = 0
        self.failed = False
        # TRANSIENT records of an earlier run belong to nobody now
        self.dead_transient = seg < store.first_seg

    def step(self) -> bool:
        """Copy the live records of the next megabyte; True when the segment is done."""
        data = os.pread(self.fd, STEP, self.pos)
        p = 0
        while p + HEAD.size <= len(data):
            n = record_length(data, p)
            if p + n > len(data):
                if p:
                    break  # the rest comes with the next step
                data = os.pread(self.fd, n, self.pos)
            if not valid_at(data, p):
                log.error("store: segment %d is damaged at byte %d; it is kept as it is "
                          "(compaction stopped)", self.seg, self.pos + p)
                self.failed = True
                return True
            offset = self.pos + p
            flags = data[p + HEAD.size + 1]
            if offset not in self.removed and not (flags & TRANSIENT and self.dead_transient):
                self.store.move(self.seg, offset, data[p : p + n], offset in self.delivered)
                self.moved += 1
            p += n
        if not p and len(data) < HEAD.size:
            if self.pos + len(data) < self.size:
                log.error("store: segment %d ends in a torn record; compaction stopped", self.seg)
                self.failed = True
            return True
        self.pos += p
        return self.pos >= self.size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

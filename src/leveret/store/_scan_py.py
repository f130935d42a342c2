"""Pure-Python twin of ``_scan_c``: the fast path of reading a data segment at start-up.

``scan_run`` walks the records of a segment (format in ``records.py``) from ``pos`` while they
are good, and hands each live one to its queue's collector. It stops at the first record that
is not good; ``records.past_damage`` decides what to do there and the scan resumes after it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

PUBLISH = 1
TRANSIENT, MOVED = 1, 2
_HEAD = struct.Struct(">II")  # length, crc32(payload)
_ORDER = struct.Struct(">QI")  # order, body_size: at byte 12 of a record
_FIXED_SIZE = 24  # type .. enqueued: the payload's fixed part
_NAMES_AT = 8 + _FIXED_SIZE  # where the vhost name starts


def scan_run(data: bytes, pos: int, base: int, removed: set[int], delivered: set[int],
             collected: dict[bytes, Any], new: Callable[[bytes], Any]
             ) -> tuple[int, int, int, list[int], int, int]:
    """Collect the good records of ``data`` from ``pos`` on; stop at the first bad one or at
    the end. A live record (not TRANSIENT, its offset not in ``removed``) goes to
    ``collected[queue key]`` (made by ``new(key)`` the first time): its order, store id
    (``base | offset``), body size, whether ``delivered`` holds its offset, its priority.

    Returns (where it stopped, records passed, highest order of a kept-kind record, orders of
    removed MOVED copies, live records collected, how many of those were MOVED copies).
    """
    size = len(data)
    view = memoryview(data)
    crc32 = zlib.crc32
    head = _HEAD.unpack_from
    order_of = _ORDER.unpack_from
    seen = 0
    max_order = 0
    dead: list[int] = []
    live = moved = 0
    last_key = b""
    c: Any = None
    while size - pos >= _NAMES_AT:
        length, crc = head(data, pos)
        end = pos + 8 + length
        if (length < _FIXED_SIZE or end > size or data[pos + 8] != PUBLISH
                or crc32(view[pos + 8 : end]) != crc):
            break
        flags = data[pos + 9]
        if not flags & TRANSIENT:
            order, body_size = order_of(data, pos + 12)
            if pos in removed:
                if flags & MOVED:
                    dead.append(order)
            else:
                k = pos + _NAMES_AT
                vlen = data[k]
                if k + 2 + vlen > end:
                    break
                kend = k + 2 + vlen + data[k + 1 + vlen]
                if kend > end:
                    break
                key = data[k:kend]
                if key != last_key or c is None:
                    c = collected.get(key)
                    if c is None:
                        c = collected[key] = new(key)
                    last_key = key
                c.orders.append(order)
                c.ids.append(base | pos)
                c.sizes.append(body_size)
                c.delivered.append(pos in delivered)
                c.prios.append(data[pos + 11])
                live += 1
                if flags & MOVED:
                    moved += 1
            if order > max_order:
                max_order = order
        seen += 1
        pos = end
    return pos, seen, max_order, dead, live, moved

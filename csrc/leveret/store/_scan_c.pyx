# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of ``leveret.store._scan_py`` (see there): the start-up scan of a segment."""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp

cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int length)

DEF PUBLISH = 1
DEF TRANSIENT = 1
DEF MOVED = 2
DEF FIXED_SIZE = 24
DEF NAMES_AT = 32


cdef inline uint32_t _u32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t _u64(const uint8_t *p) noexcept nogil:
    return (<uint64_t>_u32(p) << 32) | _u32(p + 4)


def scan_run(bytes data, Py_ssize_t pos, uint64_t base, set removed, set delivered,
             dict collected, new):
    cdef const uint8_t *d = <const uint8_t *>data
    cdef Py_ssize_t size = len(data)
    cdef Py_ssize_t end, k, kend
    cdef uint32_t length, crc
    cdef uint64_t order, max_order = 0
    cdef uint32_t body_size
    cdef uint8_t flags, vlen
    cdef Py_ssize_t seen = 0, live = 0, moved = 0
    cdef list dead = []
    cdef bytes key, last_key = b""
    cdef object c = None
    cdef object orders_append = None, ids_append = None, sizes_append = None
    cdef object delivered_append = None, prios_append = None
    cdef bint check_removed = len(removed) > 0
    cdef bint check_delivered = len(delivered) > 0
    cdef object offset
    while size - pos >= NAMES_AT:
        length = _u32(d + pos)
        crc = _u32(d + pos + 4)
        end = pos + 8 + <Py_ssize_t>length
        if (length < FIXED_SIZE or end > size or d[pos + 8] != PUBLISH
                or <uint32_t>crc32(0, d + pos + 8, length) != crc):
            break
        flags = d[pos + 9]
        if not flags & TRANSIENT:
            order = _u64(d + pos + 12)
            body_size = _u32(d + pos + 20)
            offset = pos
            if check_removed and offset in removed:
                if flags & MOVED:
                    dead.append(order)
            else:
                k = pos + NAMES_AT
                vlen = d[k]
                if k + 2 + vlen > end:
                    break
                kend = k + 2 + vlen + d[k + 1 + vlen]
                if kend > end:
                    break
                if (c is None or kend - k != len(last_key)
                        or memcmp(d + k, <const char *>last_key, kend - k) != 0):
                    key = data[k:kend]
                    c = collected.get(key)
                    if c is None:
                        c = new(key)
                        collected[key] = c
                    last_key = key
                    orders_append = c.orders.append
                    ids_append = c.ids.append
                    sizes_append = c.sizes.append
                    delivered_append = c.delivered.append
                    prios_append = c.prios.append
                orders_append(order)
                ids_append(base | <uint64_t>pos)
                sizes_append(body_size)
                delivered_append(1 if check_delivered and offset in delivered else 0)
                prios_append(d[pos + 11])
                live += 1
                if flags & MOVED:
                    moved += 1
            if order > max_order:
                max_order = order
        seen += 1
        pos = end
    return pos, seen, max_order, dead, live, moved

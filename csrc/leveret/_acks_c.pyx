# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled delivery-tag bookkeeping: the twin of ``leveret._acks_py``.

Tags are issued in increasing order, so outstanding ones live in a ring of (tag, item) slots
in tag order. ``pop_upto`` (multiple ack) releases from the head. A single ``pop`` finds its
slot by interpolation (one probe while no tag has been skipped), and leaves a hole that is
skipped at the ends and compacted away once holes outnumber items.

The ring holds strong references as raw pointers, which the cycle collector cannot see on its
own; the channel stores ``(queue, entry, consumer)`` and the consumer points back at the
channel, so that would be a leak. ``_traverse`` and ``_clear`` below are installed as the
type's GC slots and make the ring as visible to ``gc`` as the pure twin's OrderedDict.
"""

cimport cython
from cpython.long cimport PY_LONG_LONG, PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.stdint cimport uint64_t

from leveret._acks_py import UnknownDeliveryTag


cdef extern from "Python.h":
    ctypedef int (*visitproc)(PyObject*, void*)
    ctypedef int (*traverseproc)(PyObject*, visitproc, void*)
    ctypedef int (*inquiry)(PyObject*)
    ctypedef struct PyTypeObject:
        traverseproc tp_traverse
        inquiry tp_clear
    list PyList_New(Py_ssize_t n)
    # Steals the reference: ownership moves from the ring to the list without a refcount round trip.
    void list_set_stolen "PyList_SET_ITEM"(object l, Py_ssize_t i, PyObject* o)


cdef struct Slot:
    uint64_t tag
    PyObject* item  # owned; NULL is a hole left by an out-of-order pop


cdef enum:
    MIN_CAP = 16                # a power of two: ring positions are masked, not divided
    SHRINK_WHEN_EMPTY = 65536   # an emptied ring larger than this goes back to MIN_CAP
    COMPACT_FROM = 64           # smaller rings are not worth compacting until they fill up


@cython.final
cdef class DeliveryTags:
    """Outstanding delivery tags of one channel, in tag order."""

    cdef Slot* slots
    cdef Py_ssize_t cap, mask   # cap is 0 (after gc clear) or a power of two
    cdef Py_ssize_t head        # ring position of the oldest slot
    cdef Py_ssize_t used        # slots in use from head, holes included
    cdef Py_ssize_t live        # slots in use that hold an item
    cdef uint64_t last          # last tag issued, acknowledged or not
    cdef object _gc_flag        # gives the type Py_TPFLAGS_HAVE_GC; see _traverse

    def __cinit__(self):
        self._resize(MIN_CAP)

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.slots != NULL:
            for i in range(self.used):
                Py_XDECREF(self._at(i).item)
            PyMem_Free(self.slots)
            self.slots = NULL

    # ------------------------------------------------------------------ ring primitives

    cdef inline Slot* _at(self, Py_ssize_t i) noexcept:
        """The i-th slot from the head."""
        return &self.slots[(self.head + i) & self.mask]

    cdef int _resize(self, Py_ssize_t newcap) except -1:
        """Move the live slots, holes dropped, to the front of a fresh ring of ``newcap``."""
        cdef Slot* fresh = <Slot*>PyMem_Malloc(newcap * sizeof(Slot))
        cdef Py_ssize_t i, n = 0
        if fresh == NULL:
            raise MemoryError()
        for i in range(self.used):
            if self._at(i).item != NULL:
                fresh[n] = self._at(i)[0]
                n += 1
        PyMem_Free(self.slots)
        self.slots = fresh
        self.cap = newcap
        self.mask = newcap - 1
        self.head = 0
        self.used = n
        return 0

    cdef int _trim(self) except -1:
        """Drop holes at the head and the tail; give back the memory of a big emptied ring."""
        while self.used and self._at(0).item == NULL:
            self.head = (self.head + 1) & self.mask
            self.used -= 1
        while self.used and self._at(self.used - 1).item == NULL:
            self.used -= 1
        if not self.used:
            self.head = 0
            if self.cap > SHRINK_WHEN_EMPTY:
                self._resize(MIN_CAP)
        return 0

    cdef Py_ssize_t _find(self, uint64_t tag) noexcept:
        """Position (from head) of the slot for ``tag``, hole or not, or -1.

        Interpolation search, exact in one probe where slot tags are consecutive (no no-ack
        tag and no compaction in between: the usual case), a few probes where holes were
        compacted away at random. Slot tags rise by at least one per slot, so a probe that
        misses by k tags also bounds the far end of the range to within k slots. A guess that
        fails to halve the range is followed by a bisection: the worst case stays logarithmic.
        """
        cdef Py_ssize_t lo = 0, hi = self.used - 1, mid, width
        cdef uint64_t tlo, thi, t
        cdef bint interpolate = True
        while lo <= hi:
            tlo = self._at(lo).tag
            if tag <= tlo:
                return lo if tag == tlo else -1
            thi = self._at(hi).tag
            if tag >= thi:
                return hi if tag == thi else -1
            width = hi - lo  # tlo < tag < thi: the slot, if any, is strictly inside
            if width < 2:
                return -1
            if interpolate:
                mid = lo + <Py_ssize_t>(<double>(tag - tlo) * <double>width
                                        / <double>(thi - tlo) + 0.5)
                if mid <= lo:
                    mid = lo + 1
                elif mid >= hi:
                    mid = hi - 1
            else:
                mid = lo + (width >> 1)
            t = self._at(mid).tag
            if t == tag:
                return mid
            if t < tag:
                lo = mid + 1
                if tag - t <= <uint64_t>(hi - mid):
                    hi = mid + <Py_ssize_t>(tag - t)
            else:
                hi = mid - 1
                if t - tag <= <uint64_t>(mid - lo):
                    lo = mid - <Py_ssize_t>(t - tag)
            interpolate = (hi - lo) * 2 < width
        return -1

    cdef Py_ssize_t _outstanding(self, object tag) except -2:
        """Position of ``tag`` if it is an outstanding tag, else -1 (any object is accepted)."""
        cdef int overflow = 0
        cdef PY_LONG_LONG v
        cdef Py_ssize_t i
        if not PyLong_Check(tag):
            return -1
        v = PyLong_AsLongLongAndOverflow(tag, &overflow)
        if overflow or v <= 0:
            return -1
        i = self._find(<uint64_t>v)
        if i >= 0 and self._at(i).item == NULL:
            return -1
        return i

    cdef int _visit(self, visitproc visit, void* arg) noexcept:
        cdef Py_ssize_t i
        cdef int r
        for i in range(self.used):
            if self._at(i).item != NULL:
                r = visit(self._at(i).item, arg)
                if r:
                    return r
        return 0

    cdef void _forget(self) noexcept:
        cdef Slot* ring = self.slots
        cdef Py_ssize_t i, head = self.head, mask = self.mask, used = self.used
        # Detach first: releasing an item can run arbitrary code, which then finds an empty,
        # still usable object (push allocates a new ring when cap is 0).
        self.slots = NULL
        self.cap = self.mask = self.head = self.used = self.live = 0
        for i in range(used):
            Py_XDECREF(ring[(head + i) & mask].item)
        PyMem_Free(ring)

    # ------------------------------------------------------------------ the API

    def __len__(self):
        return self.live

    def __contains__(self, tag):
        return self._outstanding(tag) >= 0

    @property
    def last_tag(self):
        """The most recently issued tag (0 before the first)."""
        return self.last

    def next_tag(self):
        """Issue a tag that needs no acknowledgement (no-ack delivery)."""
        self.last += 1
        return self.last

    def push(self, item):
        """Issue the next tag and hold ``item`` until it is settled; returns the tag."""
        cdef Slot* s
        if self.used == self.cap:
            # Full: squeeze the holes out if they are at least half, else double.
            self._resize(self.cap if self.live * 2 <= self.used and self.cap else
                         max(self.cap * 2, MIN_CAP))
        self.last += 1
        s = self._at(self.used)
        s.tag = self.last
        Py_INCREF(item)
        s.item = <PyObject*>item
        self.used += 1
        self.live += 1
        return self.last

    def pop(self, tag):
        """Settle one tag; raises UnknownDeliveryTag if it is not outstanding."""
        cdef Py_ssize_t i = self._outstanding(tag)
        cdef Slot* s
        if i < 0:
            raise UnknownDeliveryTag(tag)
        s = self._at(i)
        item = <object>s.item  # takes its own reference...
        Py_XDECREF(s.item)     # ...so the ring's can go: never the last one, no code runs here
        s.item = NULL
        self.live -= 1
        if i == 0 or i == self.used - 1:
            self._trim()
        elif self.used >= COMPACT_FROM and (self.used - self.live) > self.live:
            # Holes outnumber items: compact in place of the same size, or shrink a ring that
            # is mostly empty. Each compaction costs less than the pops that made its holes.
            self._resize(self.cap if self.live * 8 > self.cap else
                         max(_pow2_above(self.live * 2), MIN_CAP))
        return item

    def pop_upto(self, tag):
        """Settle every outstanding tag <= ``tag`` (0 means all), oldest first.

        Raises UnknownDeliveryTag when ``tag`` is non-zero and not outstanding, as RabbitMQ
        answers ``multiple=true`` with an unknown tag by closing the channel (406).
        """
        if tag == 0:
            return self.pop_all()
        cdef Py_ssize_t i = self._outstanding(tag)
        if i < 0:
            raise UnknownDeliveryTag(tag)
        out = self._take(i + 1)
        self._trim()
        return out

    def pop_all(self):
        """Settle everything outstanding, oldest first."""
        out = self._take(self.used)
        self._trim()
        return out

    cdef list _take(self, Py_ssize_t count):
        """Release the first ``count`` slots into a list, oldest first; holes are skipped."""
        cdef Py_ssize_t i, n = 0
        cdef Slot* s
        for i in range(count):
            if self._at(i).item != NULL:
                n += 1
        cdef list out = PyList_New(n)
        n = 0
        for i in range(count):
            s = self._at(i)
            if s.item != NULL:
                list_set_stolen(out, n, s.item)
                s.item = NULL
                n += 1
        self.live -= n
        self.used -= count
        self.head = (self.head + count) & self.mask
        return out

    def items(self):
        """Outstanding (tag, item) pairs, oldest first."""
        cdef list out = []
        cdef Py_ssize_t i
        cdef Slot* s
        for i in range(self.used):
            s = self._at(i)
            if s.item != NULL:
                out.append((s.tag, <object>s.item))
        return out


cdef Py_ssize_t _pow2_above(Py_ssize_t n) noexcept:
    cdef Py_ssize_t p = 1
    while p < n:
        p <<= 1
    return p


# ---------------------------------------------------------------------- garbage collection

cdef traverseproc _cython_traverse = (<PyTypeObject*>DeliveryTags).tp_traverse
cdef inquiry _cython_clear = (<PyTypeObject*>DeliveryTags).tp_clear


cdef int _traverse(PyObject* o, visitproc visit, void* arg) noexcept:
    """Show the collector every held item, then whatever Cython's own slot visits."""
    cdef int r = (<DeliveryTags>o)._visit(visit, arg)
    return r if r else _cython_traverse(o, visit, arg)


cdef int _clear(PyObject* o) noexcept:
    """Break a reference cycle through the ring by forgetting every item."""
    (<DeliveryTags>o)._forget()
    return _cython_clear(o)


(<PyTypeObject*>DeliveryTags).tp_traverse = _traverse
(<PyTypeObject*>DeliveryTags).tp_clear = _clear

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled delivery-tag bookkeeping: the twin of ``leveret._acks_py``.

Tags are issued in increasing order, so outstanding ones live in a ring of (tag, item) slots
in tag order. ``pop_upto`` (multiple ack) releases from the head; a single ``pop`` finds its
slot by binary search and leaves a hole that is skipped and compacted lazily.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport uint64_t

from leveret._acks_py import UnknownDeliveryTag


cdef struct Slot:
    uint64_t tag
    PyObject* item  # NULL: a hole left by an out-of-order pop


cdef class DeliveryTags:
    """Outstanding delivery tags of one channel, in tag order."""

    cdef Slot* slots
    cdef Py_ssize_t cap, head, used, live  # ring: `used` slots from `head`, `live` non-holes
    cdef uint64_t last

    def __cinit__(self):
        self.cap = 16
        self.slots = <Slot*>PyMem_Malloc(self.cap * sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()
        self.head = self.used = self.live = 0
        self.last = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.slots != NULL:
            for i in range(self.used):
                if self.slots[(self.head + i) % self.cap].item != NULL:
                    Py_DECREF(<object>self.slots[(self.head + i) % self.cap].item)
            PyMem_Free(self.slots)

    def __len__(self):
        return self.live

    @property
    def last_tag(self):
        """The most recently issued tag (0 before the first)."""
        return self.last

    cdef inline Slot* _at(self, Py_ssize_t i):
        return &self.slots[(self.head + i) % self.cap]

    cdef int _grow(self) except -1:
        cdef Py_ssize_t i, n = 0
        cdef Py_ssize_t newcap = self.cap
        if self.live * 2 < self.used:
            newcap = self.cap  # mostly holes: compacting is enough
        else:
            newcap = self.cap * 2
        cdef Slot* fresh = <Slot*>PyMem_Malloc(newcap * sizeof(Slot))
        if fresh == NULL:
            raise MemoryError()
        for i in range(self.used):
            if self._at(i).item != NULL:
                fresh[n] = self._at(i)[0]
                n += 1
        PyMem_Free(self.slots)
        self.slots = fresh
        self.cap = newcap
        self.head = 0
        self.used = n
        return 0

    cdef void _trim(self):
        """Drop holes at the head and the tail."""
        while self.used and self._at(0).item == NULL:
            self.head = (self.head + 1) % self.cap
            self.used -= 1
        while self.used and self._at(self.used - 1).item == NULL:
            self.used -= 1
        if not self.used:
            self.head = 0

    cdef Py_ssize_t _find(self, uint64_t tag):
        """Index (from head) of the slot holding ``tag``, or -1."""
        cdef Py_ssize_t lo = 0, hi = self.used - 1, mid
        cdef uint64_t t
        while lo <= hi:
            mid = (lo + hi) >> 1
            t = self._at(mid).tag
            if t == tag:
                return mid if self._at(mid).item != NULL else -1
            if t < tag:
                lo = mid + 1
            else:
                hi = mid - 1
        return -1

    def __contains__(self, tag):
        if not isinstance(tag, int) or tag <= 0 or tag > self.last:
            return False
        return self._find(<uint64_t>tag) >= 0

    def next_tag(self):
        """Issue a tag that needs no acknowledgement (no-ack delivery)."""
        self.last += 1
        return self.last

    def push(self, item):
        """Issue the next tag and hold ``item`` until it is settled; returns the tag."""
        if self.used == self.cap:
            self._grow()
        self.last += 1
        cdef Slot* s = self._at(self.used)
        s.tag = self.last
        Py_INCREF(item)
        s.item = <PyObject*>item
        self.used += 1
        self.live += 1
        return self.last

    def pop(self, tag):
        """Settle one tag; raises UnknownDeliveryTag if it is not outstanding."""
        if not isinstance(tag, int) or tag <= 0 or tag > self.last:
            raise UnknownDeliveryTag(tag)
        cdef Py_ssize_t i = self._find(<uint64_t>tag)
        if i < 0:
            raise UnknownDeliveryTag(tag)
        cdef Slot* s = self._at(i)
        item = <object>s.item
        Py_DECREF(item)  # the ring's reference; `item` holds its own
        s.item = NULL
        self.live -= 1
        self._trim()
        return item

    def pop_upto(self, tag):
        """Settle every outstanding tag <= ``tag`` (0 means all), oldest first.

        Raises UnknownDeliveryTag when ``tag`` is non-zero and not outstanding.
        """
        if tag == 0:
            return self.pop_all()
        if not isinstance(tag, int) or tag < 0 or tag > self.last or \
                self._find(<uint64_t>tag) < 0:
            raise UnknownDeliveryTag(tag)
        cdef uint64_t limit = <uint64_t>tag
        cdef list out = []
        cdef Slot* s
        while self.used:
            s = self._at(0)
            if s.tag > limit:
                break
            if s.item != NULL:
                out.append(<object>s.item)
                Py_DECREF(<object>s.item)
                s.item = NULL
                self.live -= 1
            self.head = (self.head + 1) % self.cap
            self.used -= 1
        self._trim()
        return out

    def pop_all(self):
        """Settle everything outstanding, oldest first."""
        cdef list out = []
        cdef Py_ssize_t i
        cdef Slot* s
        for i in range(self.used):
            s = self._at(i)
            if s.item != NULL:
                out.append(<object>s.item)
                Py_DECREF(<object>s.item)
                s.item = NULL
        self.head = self.used = self.live = 0
        return out

    def items(self):
        """Outstanding (tag, item) pairs, oldest first."""
        cdef list out = []
        cdef Py_ssize_t i
        for i in range(self.used):
            if self._at(i).item != NULL:
                out.append((self._at(i).tag, <object>self._at(i).item))
        return out

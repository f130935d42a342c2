# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""Compiled headers matcher: the twin of ``leveret.routing._headers_py`` (same API, results).

The same index as the pure twin (header name -> on-presence bindings and canonical value ->
bindings), with the bindings numbered into slots so that a match counts hits in C arrays:
a per-slot hit counter stamped with the match's epoch (no clearing between messages), a
per-target stamp for deduplication, and slot numbers kept in bind order so that sorting the
matched slots gives first-bound-first results. Unbinding frees a slot; when half the slots are
free the index is rebuilt from the bindings, which keeps the numbering dense and ordered.

The semantics (``x-match``, ``x-`` arguments, presence, RabbitMQ's value equality) come from
``leveret.routing._common``, shared with the pure twin; see ``_headers_py`` for the rules.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_Append, PyList_GET_ITEM
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, uint32_t
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static inline int leveret_ctz64(unsigned long long x) {
        unsigned long i; _BitScanForward64(&i, x); return (int)i;
    }
    #else
    static inline int leveret_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #endif
    """
    int leveret_ctz64(unsigned long long x) nogil

from leveret.routing._common import (
    binding_identity,
    binding_tests,
    header_value,
    x_match,
)

cdef object _header_value = header_value


cdef inline object _canonical(object value):
    # the common cases without a Python call; the rest as _common decides
    cdef type t = type(value)
    if t is str or t is int:
        return value
    if t is float and value == value:
        return value
    return _header_value(value)


cdef inline Py_ssize_t _sort_slots(int32_t *slots, Py_ssize_t n, uint64_t *bits) noexcept:
    """Sort slot numbers: insertion sort when few, else through a bitmap of slots (which also
    drops duplicates; there are none unless the index changed mid-match). Returns the count."""
    cdef Py_ssize_t i, j, k, lo, hi
    cdef int32_t s
    cdef uint64_t word
    if n <= 32:
        for i in range(1, n):
            s = slots[i]
            j = i - 1
            while j >= 0 and slots[j] > s:
                slots[j + 1] = slots[j]
                j -= 1
            slots[j + 1] = s
        return n
    lo = hi = slots[0] >> 6
    for i in range(n):
        s = slots[i]
        bits[s >> 6] |= (<uint64_t>1) << (s & 63)
        if (s >> 6) < lo:
            lo = s >> 6
        elif (s >> 6) > hi:
            hi = s >> 6
    k = 0
    for i in range(lo, hi + 1):
        word = bits[i]
        if word:
            bits[i] = 0
            while word:
                slots[k] = <int32_t>((i << 6) + leveret_ctz64(word))
                k += 1
                word &= word - 1
    return k


cdef class _Slots:
    """A growable C array of slot numbers (one posting list of the index)."""

    cdef int32_t *items
    cdef Py_ssize_t n
    cdef Py_ssize_t cap

    def __dealloc__(self):
        free(self.items)

    cdef int add(self, int32_t slot) except -1:
        cdef Py_ssize_t cap
        cdef int32_t *grown
        if self.n == self.cap:
            cap = self.cap * 2 if self.cap else 4
            grown = <int32_t *>realloc(self.items, cap * sizeof(int32_t))
            if grown is NULL:
                raise MemoryError()
            self.items = grown
            self.cap = cap
        self.items[self.n] = slot
        self.n += 1
        return 0

    cdef void discard(self, int32_t slot) noexcept:
        cdef Py_ssize_t i, j
        for i in range(self.n):
            if self.items[i] == slot:
                for j in range(i + 1, self.n):
                    self.items[j - 1] = self.items[j]
                self.n -= 1
                return


cdef class _Name:
    """The bindings that compare one header name: on presence, or by canonical value."""

    cdef _Slots present
    cdef dict values  # canonical value -> _Slots

    def __cinit__(self):
        self.present = _Slots()
        self.values = {}


cdef class _Rule:
    cdef object arguments  # dict, as bound
    cdef object target
    cdef list tests  # [(name, wanted value or None)]
    cdef int32_t need  # hits that make a match: 0 matches always, -1 never
    cdef int32_t slot  # -1 when not indexed (an 'any' binding with nothing to compare)

    def __init__(self, dict arguments, target):
        match_all, with_x = x_match(arguments)
        self.arguments = arguments
        self.target = target
        self.tests = binding_tests(arguments, with_x)
        self.need = len(self.tests) if match_all else (1 if self.tests else -1)
        self.slot = -1


cdef inline Py_ssize_t _hits(_Slots found, int32_t *need, uint32_t *stamp, int32_t *count,
                            uint32_t epoch, int32_t *matched, Py_ssize_t nm) noexcept:
    """Count one hit for each slot of ``found``; record the slots that reach their need."""
    cdef Py_ssize_t i
    cdef int32_t slot
    for i in range(found.n):
        slot = found.items[i]
        if stamp[slot] != epoch:
            stamp[slot] = epoch
            count[slot] = 1
        else:
            count[slot] += 1
        if count[slot] == need[slot]:
            matched[nm] = slot
            nm += 1
    return nm


cdef class HeadersMatcher:
    """Headers-exchange bindings: ``bind(arguments, target)``, ``unbind``, ``match(headers)``.

    A binding is identified by its arguments table and its target, as in RabbitMQ. Targets
    are any hashable objects; ``match`` returns each matching target once, first-bound first.
    """

    cdef dict _rules  # (identity, target) -> _Rule, in bind order
    cdef dict _names  # header name -> _Name
    cdef _Slots _always  # slots of 'all' bindings with nothing to compare
    cdef list _slot_rule  # slot -> _Rule or None (freed)
    cdef Py_ssize_t _free  # freed slots not yet reclaimed by a rebuild
    cdef dict _target_ids  # target -> [id, number of its bindings]
    cdef list _targets  # id -> target or None
    cdef list _free_ids
    cdef uint32_t _epoch
    cdef unsigned long long _generation  # bumped by every change to the index
    # per slot: hits needed, epoch of the last hit, hits in that epoch, target id
    cdef int32_t *_need
    cdef uint32_t *_stamp
    cdef int32_t *_count
    cdef int32_t *_target_of
    cdef int32_t *_matched  # scratch: matched slots of one match
    cdef uint64_t *_slot_bits  # scratch: zeroed bitmap of slots, to sort matched slots
    cdef Py_ssize_t _cap
    cdef uint32_t *_target_stamp
    cdef Py_ssize_t _target_cap

    def __cinit__(self):
        self._rules = {}
        self._names = {}
        self._always = _Slots()
        self._slot_rule = []
        self._free = 0
        self._target_ids = {}
        self._targets = []
        self._free_ids = []
        self._epoch = 0
        self._generation = 0
        self._cap = 0
        self._target_cap = 0

    def __dealloc__(self):
        free(self._need)
        free(self._stamp)
        free(self._count)
        free(self._target_of)
        free(self._matched)
        free(self._slot_bits)
        free(self._target_stamp)

    def __len__(self):
        return len(self._rules)

    # ------------------------------------------------------------ C arrays

    cdef int _grow_slots(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self._cap, old_words, words
        if need <= cap:
            return 0
        cap = max(need, cap * 2, 16)
        self._need = <int32_t *>_grow(self._need, cap * sizeof(int32_t))
        self._count = <int32_t *>_grow(self._count, cap * sizeof(int32_t))
        self._target_of = <int32_t *>_grow(self._target_of, cap * sizeof(int32_t))
        self._matched = <int32_t *>_grow(self._matched, cap * sizeof(int32_t))
        self._stamp = <uint32_t *>_grow(self._stamp, cap * sizeof(uint32_t))
        memset(self._stamp + self._cap, 0, (cap - self._cap) * sizeof(uint32_t))
        old_words = (self._cap >> 6) + 1 if self._cap else 0
        words = (cap >> 6) + 1
        self._slot_bits = <uint64_t *>_grow(self._slot_bits, words * sizeof(uint64_t))
        memset(self._slot_bits + old_words, 0, (words - old_words) * sizeof(uint64_t))
        self._cap = cap
        return 0

    cdef int _grow_targets(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self._target_cap
        if need <= cap:
            return 0
        cap = max(need, cap * 2, 16)
        self._target_stamp = <uint32_t *>_grow(self._target_stamp, cap * sizeof(uint32_t))
        memset(self._target_stamp + self._target_cap, 0,
               (cap - self._target_cap) * sizeof(uint32_t))
        self._target_cap = cap
        return 0

    # ------------------------------------------------------------ index upkeep

    cdef int32_t _target_id(self, target) except -1:
        cdef list entry = self._target_ids.get(target)
        cdef Py_ssize_t tid
        if entry is not None:
            entry[1] += 1
            return entry[0]
        if self._free_ids:
            tid = self._free_ids.pop()
            self._targets[tid] = target
        else:
            tid = len(self._targets)
            self._grow_targets(tid + 1)
            self._targets.append(target)
        self._target_ids[target] = [tid, 1]
        return <int32_t>tid

    cdef void _release_target(self, target):
        cdef list entry = self._target_ids[target]
        entry[1] -= 1
        if entry[1] == 0:
            del self._target_ids[target]
            self._targets[entry[0]] = None
            self._free_ids.append(entry[0])

    cdef int _index(self, _Rule rule) except -1:
        """Give a rule the next slot (slots grow in bind order) and post its arguments."""
        cdef Py_ssize_t slot = len(self._slot_rule)
        cdef _Name entry
        cdef _Slots posting
        self._generation += 1
        self._grow_slots(slot + 1)
        self._slot_rule.append(rule)
        rule.slot = <int32_t>slot
        self._need[slot] = rule.need
        self._stamp[slot] = 0
        self._target_of[slot] = self._target_id(rule.target)
        if rule.need == 0:
            self._always.add(<int32_t>slot)
            self._generation += 1
            return 0
        for name, want in rule.tests:
            entry = self._names.get(name)
            if entry is None:
                entry = _Name()
                self._names[name] = entry
            if want is None:
                entry.present.add(<int32_t>slot)
            else:
                key = header_value(want)
                posting = entry.values.get(key)
                if posting is None:
                    posting = _Slots()
                    entry.values[key] = posting
                posting.add(<int32_t>slot)
        self._generation += 1
        return 0

    cdef int _rebuild(self) except -1:
        """Renumber the live rules densely, in bind order, and re-post them.

        The containers are emptied in place, never replaced: Python code run in the middle
        of a call (a target's __eq__, a finalizer) may rebuild or clear the index, and an
        attribute replaced then would be freed under the call still using it.
        """
        cdef _Rule rule
        self._generation += 1
        self._names.clear()
        self._always.n = 0
        del self._slot_rule[:]
        self._free = 0
        self._target_ids.clear()
        del self._targets[:]
        del self._free_ids[:]
        for rule in list(self._rules.values()):
            if rule.slot >= 0:
                self._index(rule)
        self._generation += 1
        return 0

    # ------------------------------------------------------------ API

    def bind(self, arguments, target):
        """Add a binding; returns False if these arguments were already bound to ``target``."""
        cdef dict args = dict(arguments) if arguments else {}
        ident = (binding_identity(args), target)
        if ident in self._rules:
            return False
        cdef _Rule rule = _Rule(args, target)
        self._rules[ident] = rule
        if rule.need >= 0:
            self._index(rule)  # (an 'any' binding with nothing to compare never matches)
        return True

    def unbind(self, arguments, target):
        """Remove a binding; returns False if it did not exist."""
        cdef _Rule rule = self._rules.pop(
            (binding_identity(dict(arguments) if arguments else {}), target), None)
        cdef _Name entry
        cdef _Slots posting
        cdef int32_t slot
        if rule is None:
            return False
        self._generation += 1
        slot = rule.slot
        if slot < 0:
            return True
        rule.slot = -1
        self._slot_rule[slot] = None
        self._need[slot] = -1  # never reached by a count
        self._release_target(rule.target)
        if not rule.tests:
            self._always.discard(slot)
        for name, want in rule.tests:
            entry = self._names[name]
            if want is None:
                entry.present.discard(slot)
            else:
                key = header_value(want)
                posting = entry.values[key]
                posting.discard(slot)
                if posting.n == 0:
                    del entry.values[key]
            if entry.present.n == 0 and not entry.values:
                del self._names[name]
        self._free += 1
        self._generation += 1
        if self._free > 32 and self._free * 2 > len(self._slot_rule):
            self._rebuild()
        return True

    def clear(self):
        """Remove every binding."""
        self._rules.clear()
        self._rebuild()

    def bindings(self):
        """Every (arguments, target) pair, in bind order."""
        cdef _Rule rule
        for rule in list(self._rules.values()):
            yield dict(rule.arguments), rule.target

    def match(self, headers):
        """Every target whose binding matches ``headers``, each once, first-bound first."""
        cdef list postings
        cdef list out
        cdef unsigned long long generation
        while True:
            # Looking up headers may run Python code (hashing a key, canonicalising a value,
            # a finalizer), which may bind or unbind here. So gather the postings first, then
            # count in C with nothing that can call out, and start over if the index changed.
            generation = self._generation
            postings = self._postings(headers)
            out = []
            if self._generation == generation:
                self._count_hits(postings, out)
                return out

    cdef list _postings(self, headers):
        """The slot lists a message hits: per header, on presence and on its value."""
        cdef list postings = []
        cdef PyObject *ptr
        cdef _Name entry
        cdef dict names = self._names
        if not headers or not names:
            return postings
        cdef dict table = headers if type(headers) is dict else dict(headers)
        for name, have in table.items():
            ptr = PyDict_GetItem(names, name)
            if ptr is NULL:
                continue
            entry = <_Name>ptr
            if entry.present.n:
                postings.append(entry.present)
            if entry.values:
                ptr = PyDict_GetItem(entry.values, _canonical(have))
                if ptr is not NULL:
                    postings.append(<_Slots>ptr)
        return postings

    cdef int _count_hits(self, list postings, list out) except -1:
        """Count the hits, sort the matched slots and append their targets once each."""
        cdef Py_ssize_t nm = 0, i, tid
        cdef _Slots found
        cdef int32_t *need = self._need
        cdef uint32_t *stamp = self._stamp
        cdef int32_t *count = self._count
        cdef int32_t *matched = self._matched

        self._epoch += 1
        if self._epoch == 0:  # wrapped: stale stamps could look current, so clear them
            memset(self._stamp, 0, self._cap * sizeof(uint32_t))
            memset(self._target_stamp, 0, self._target_cap * sizeof(uint32_t))
            self._epoch = 1
        cdef uint32_t epoch = self._epoch
        for i in range(len(postings)):
            nm = _hits(<_Slots>PyList_GET_ITEM(postings, i), need, stamp, count, epoch,
                       matched, nm)
        found = self._always
        for i in range(found.n):
            matched[nm] = found.items[i]
            nm += 1
        if nm == 0:
            return 0
        if nm > 1:
            nm = _sort_slots(matched, nm, self._slot_bits)

        cdef list targets = self._targets
        cdef Py_ssize_t ntargets = len(targets)
        cdef uint32_t *target_stamp = self._target_stamp
        cdef int32_t *target_of = self._target_of
        cdef PyObject *target
        for i in range(nm):
            tid = target_of[matched[i]]
            if tid < ntargets and target_stamp[tid] != epoch:
                target_stamp[tid] = epoch
                target = PyList_GET_ITEM(targets, tid)
                if target != <PyObject *>None:  # a freed id: only after a re-entrant change
                    PyList_Append(out, <object>target)
        return 0


cdef void *_grow(void *ptr, size_t size) except NULL:
    cdef void *grown = realloc(ptr, size)
    if grown is NULL:
        raise MemoryError()
    return grown

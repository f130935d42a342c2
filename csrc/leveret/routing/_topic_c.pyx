# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""Compiled topic trie: the twin of ``leveret.routing._topic_py`` (same API, results, order).

The trie lives in C arrays, not Python objects:

- nodes are structs in one array (``*`` child, ``#`` child, number of literal children,
  memo stamp), recycled through a free list when unbinding prunes them;
- words are interned to small integers at bind time, and every literal edge of the trie sits
  in one open-addressing table keyed by (parent node, word id), so following a word is an
  integer hash probe; a routing key word that no binding uses has no id and can only follow
  ``*`` and ``#``;
- the walk is an iterative depth-first search over states (node, position) with an explicit
  C stack, in the same order as the pure twin (see ``_topic_py``). Only ``#`` nodes can be
  reached twice at one position; they get a bitmap of visited positions in a per-match scratch
  area, stamped with the match's epoch instead of being cleared, so ``#.#.#...`` stays
  (nodes x words);
- each node's targets are a list in bind order (with their ids in a C array and a dict for
  membership); when some target has several bindings, a per-target stamp removes duplicates.

Nothing during the walk calls back into Python code that could change the trie under it (the
output list is made before the walk, which only reads dicts keyed by str and appends to it).
Binding and unbinding do call Python code (a target's ``__hash__`` and ``__eq__``, finalizers
run by the garbage collector), so they re-check node numbers against the arrays after it: a
trie changed meanwhile, even from another thread, may end up with odd bindings but never
reads or writes outside its arrays.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_Append, PyList_GET_ITEM
from cpython.long cimport PyLong_AsSsize_t
from cpython.ref cimport PyObject


cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset

from leveret.routing._common import split_key


cdef enum:
    LOOPS = 1  # the node is reached by a '#' edge: it may consume further words
    ROOT = 0
    NONE = -1


ctypedef struct Node:
    int32_t star
    int32_t hash
    int32_t literals  # number of literal children (for pruning)
    uint32_t stamp  # epoch of the match that last gave this node a memo
    Py_ssize_t memo  # offset of its visited-positions bitmap in the scratch area
    uint8_t flags


ctypedef struct Edge:
    uint64_t key  # (parent + 1) << 32 | word id; 0 is an empty slot
    int32_t child


ctypedef struct State:
    int32_t node
    Py_ssize_t pos


cdef inline uint64_t _edge_key(int32_t parent, int32_t word) noexcept:
    return ((<uint64_t>(parent + 1)) << 32) | <uint32_t>word


cdef void *_grow(void *ptr, size_t size) except NULL:
    cdef void *grown = realloc(ptr, size)
    if grown is NULL:
        raise MemoryError()
    return grown


cdef class _Targets:
    """The targets bound at one node: a list in bind order, their ids, and a membership index."""

    cdef dict index  # the same targets, for membership
    cdef list items  # targets, in bind order
    cdef int32_t *tids  # target ids, parallel to items
    cdef Py_ssize_t cap

    def __cinit__(self):
        self.index = {}
        self.items = []

    def __dealloc__(self):
        free(self.tids)

    cdef int add(self, target, Py_ssize_t tid) except -1:
        cdef Py_ssize_t n, cap
        self.index[target] = None  # (may run the target's __eq__: measure after)
        n = len(self.items)
        if n >= self.cap:
            cap = max(4, n + 1, self.cap * 2)
            self.tids = <int32_t *>_grow(self.tids, cap * sizeof(int32_t))
            self.cap = cap
        self.items.append(target)
        self.tids[n] = <int32_t>tid
        return 0

    cdef int remove(self, target, Py_ssize_t tid) except -1:
        cdef Py_ssize_t n, i, j
        del self.index[target]  # (may run the target's __eq__: read the length after)
        n = min(len(self.items), self.cap)
        for i in range(n):
            if self.tids[i] == tid:
                del self.items[i]
                for j in range(i + 1, n):
                    self.tids[j - 1] = self.tids[j]
                return 0
        return 0


cdef class TopicTrie:
    """Topic bindings: ``bind(key, target)``, ``unbind(key, target)``, ``match(routing_key)``.

    Targets are any hashable objects (queue names, queue objects); ``match`` returns every
    target with a matching binding exactly once.
    """

    # nodes
    cdef Node *_nodes
    cdef Py_ssize_t _nodes_used
    cdef Py_ssize_t _nodes_cap
    cdef list _free_nodes
    cdef list _targets_of  # node -> _Targets, or None
    # literal edges
    cdef Edge *_edges
    cdef Py_ssize_t _edges_mask  # capacity - 1 (capacity is a power of two)
    cdef Py_ssize_t _edges_used
    cdef int _edges_shift
    # words
    cdef dict _word_ids  # word -> id
    cdef list _words  # id -> word, or None
    cdef list _word_refs  # id -> number of edges with this word
    cdef list _free_words
    # targets
    cdef dict _target_ids  # target -> [id, number of its bindings]
    cdef list _free_targets
    cdef Py_ssize_t _targets_cap
    cdef uint32_t *_target_stamp
    cdef Py_ssize_t _shared  # targets with more than one binding: only then dedupe
    cdef Py_ssize_t _count
    # scratch of one match
    cdef uint32_t _epoch
    cdef State *_stack
    cdef Py_ssize_t _stack_cap
    cdef int32_t *_word_of  # word ids of the routing key, -1 for unknown words
    cdef Py_ssize_t _word_of_cap
    cdef uint64_t *_memo
    cdef Py_ssize_t _memo_cap
    cdef int32_t *_hits
    cdef Py_ssize_t _hits_cap

    def __cinit__(self):
        # The containers are made once and only ever changed in place: Python code run in
        # the middle of a call (a target's __eq__, a finalizer) may clear the trie, and an
        # attribute replaced then would be freed under the call still using it.
        self._free_nodes = []
        self._targets_of = []
        self._word_ids = {}
        self._words = []
        self._word_refs = []
        self._free_words = []
        self._target_ids = {}
        self._free_targets = []
        self._init()

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        free(self._nodes)
        free(self._edges)
        free(self._target_stamp)
        free(self._stack)
        free(self._word_of)
        free(self._memo)
        free(self._hits)
        self._nodes = NULL
        self._edges = NULL
        self._target_stamp = NULL
        self._stack = NULL
        self._word_of = NULL
        self._memo = NULL
        self._hits = NULL

    cdef int _init(self) except -1:
        self._nodes_used = 0
        self._nodes_cap = 0
        del self._free_nodes[:]
        del self._targets_of[:]
        self._edges_mask = -1
        self._edges_used = 0
        self._edges_shift = 64
        self._word_ids.clear()
        del self._words[:]
        del self._word_refs[:]
        del self._free_words[:]
        self._target_ids.clear()
        del self._free_targets[:]
        self._targets_cap = 0
        self._shared = 0
        self._count = 0
        self._epoch = 0
        self._stack_cap = 0
        self._word_of_cap = 0
        self._memo_cap = 0
        self._hits_cap = 0
        self._grow_edges(16)
        self._new_node(0)  # the root
        return 0

    def __len__(self):
        return self._count

    # ------------------------------------------------------------ nodes

    cdef int32_t _new_node(self, uint8_t flags) except -1:
        cdef Py_ssize_t node, cap
        if self._free_nodes:
            node = self._free_nodes.pop()
        else:
            if self._nodes_used == self._nodes_cap:
                cap = max(16, self._nodes_cap * 2)
                self._nodes = <Node *>_grow(self._nodes, cap * sizeof(Node))
                self._nodes_cap = cap
            node = self._nodes_used
            self._nodes_used += 1
            self._targets_of.append(None)
        if node > 0x7FFFFFFE:
            raise OverflowError("too many trie nodes")
        cdef Node *n = &self._nodes[node]
        n.star = NONE
        n.hash = NONE
        n.literals = 0
        n.stamp = 0
        n.memo = 0
        n.flags = flags
        return <int32_t>node

    cdef inline bint _empty(self, int32_t node) noexcept:
        cdef Node *n = &self._nodes[node]
        return (n.star == NONE and n.hash == NONE and n.literals == 0
                and <object>PyList_GET_ITEM(self._targets_of, node) is None)

    # ------------------------------------------------------------ literal edges

    cdef int _grow_edges(self, Py_ssize_t cap) except -1:
        """Rehash the edge table into ``cap`` slots (a power of two)."""
        cdef Edge *old = self._edges
        cdef Py_ssize_t old_cap = self._edges_mask + 1, i
        cdef int shift = 64
        cdef Py_ssize_t c = cap
        while c > 1:
            c >>= 1
            shift -= 1
        cdef Edge *table = <Edge *>_grow(NULL, cap * sizeof(Edge))
        memset(table, 0, cap * sizeof(Edge))
        self._edges = table
        self._edges_mask = cap - 1
        self._edges_shift = shift
        for i in range(old_cap):
            if old[i].key:
                self._edge_insert(old[i].key, old[i].child)
        free(old)
        return 0

    cdef inline Py_ssize_t _edge_home(self, uint64_t key) noexcept:
        # Fibonacci hashing: the high bits of key * 2^64/phi
        return <Py_ssize_t>((key * <uint64_t>0x9E3779B97F4A7C15) >> self._edges_shift)

    cdef inline int32_t _edge_get(self, int32_t parent, int32_t word) noexcept:
        cdef uint64_t key = _edge_key(parent, word)
        cdef Py_ssize_t i = self._edge_home(key)
        cdef Edge *table = self._edges
        while table[i].key:
            if table[i].key == key:
                return table[i].child
            i = (i + 1) & self._edges_mask
        return NONE

    cdef void _edge_insert(self, uint64_t key, int32_t child) noexcept:
        cdef Py_ssize_t i = self._edge_home(key)
        while self._edges[i].key:
            i = (i + 1) & self._edges_mask
        self._edges[i].key = key
        self._edges[i].child = child

    cdef int _edge_put(self, int32_t parent, int32_t word, int32_t child) except -1:
        if (self._edges_used + 1) * 2 > self._edges_mask + 1:
            self._grow_edges((self._edges_mask + 1) * 2)
        self._edge_insert(_edge_key(parent, word), child)
        self._edges_used += 1
        return 0

    cdef void _edge_delete(self, int32_t parent, int32_t word) noexcept:
        """Remove an edge by backward-shift deletion (no tombstones in linear probing)."""
        cdef uint64_t key = _edge_key(parent, word)
        cdef Py_ssize_t mask = self._edges_mask
        cdef Py_ssize_t i = self._edge_home(key), j, home
        cdef Edge *table = self._edges
        while table[i].key != key:
            if not table[i].key:
                return
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            if not table[j].key:
                break
            home = self._edge_home(table[j].key)
            # move table[j] back to the hole at i unless its home lies cyclically in (i, j]
            if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
                table[i] = table[j]
                i = j
        table[i].key = 0
        self._edges_used -= 1

    # ------------------------------------------------------------ words and targets

    cdef int32_t _word_ref(self, str word) except -1:
        cdef object wid = self._word_ids.get(word)
        cdef Py_ssize_t w
        if wid is not None:
            w = wid
            self._word_refs[w] += 1
            return <int32_t>w
        if self._free_words:
            w = self._free_words.pop()
            self._words[w] = word
            self._word_refs[w] = 1
        else:
            w = len(self._words)
            if w > 0x7FFFFFFE:
                raise OverflowError("too many distinct words")
            self._words.append(word)
            self._word_refs.append(1)
        self._word_ids[word] = w
        return <int32_t>w

    cdef int _word_unref(self, int32_t w) except -1:
        cdef Py_ssize_t refs = self._word_refs[w] - 1
        self._word_refs[w] = refs
        if refs == 0:
            del self._word_ids[self._words[w]]
            self._words[w] = None
            self._free_words.append(w)
        return 0

    cdef Py_ssize_t _target_ref(self, target) except -1:
        cdef list entry = self._target_ids.get(target)
        cdef Py_ssize_t tid, cap
        if entry is not None:
            entry[1] += 1
            if entry[1] == 2:
                self._shared += 1
            return entry[0]
        if self._free_targets:
            tid = self._free_targets.pop()
        else:
            tid = len(self._target_ids)
            if tid >= self._targets_cap:
                cap = max(16, self._targets_cap * 2)
                self._target_stamp = <uint32_t *>_grow(self._target_stamp,
                                                       cap * sizeof(uint32_t))
                memset(self._target_stamp + self._targets_cap, 0,
                       (cap - self._targets_cap) * sizeof(uint32_t))
                self._targets_cap = cap
        self._target_ids[target] = [tid, 1]
        return tid

    cdef int _target_unref(self, target) except -1:
        cdef list entry = self._target_ids[target]
        entry[1] -= 1
        if entry[1] == 1:
            self._shared -= 1
        elif entry[1] == 0:
            del self._target_ids[target]
            self._free_targets.append(entry[0])
        return 0

    # ------------------------------------------------------------ API

    def bind(self, str binding_key, target):
        """Add a binding; returns False if this (key, target) was already bound."""
        cdef int32_t node = ROOT, child
        cdef int32_t w
        cdef str word
        hash(target)  # an unhashable target fails before the trie grows
        for word in split_key(binding_key):
            if word == "*":
                child = self._nodes[node].star
                if child == NONE:
                    child = self._new_node(0)
                    self._nodes[node].star = child
            elif word == "#":
                child = self._nodes[node].hash
                if child == NONE:
                    child = self._new_node(LOOPS)
                    self._nodes[node].hash = child
            else:
                wid = self._word_ids.get(word)
                child = NONE if wid is None else self._edge_get(node, <int32_t>wid)
                if child == NONE:
                    child = self._new_node(0)
                    w = self._word_ref(word)
                    self._edge_put(node, w, child)
                    self._nodes[node].literals += 1
            node = child
        cdef _Targets targets = <object>PyList_GET_ITEM(self._targets_of, node)
        if targets is None:
            targets = _Targets()
            self._targets_of[node] = targets
        elif target in targets.index:
            return False
        targets.add(target, self._target_ref(target))
        self._count += 1
        return True

    def unbind(self, str binding_key, target):
        """Remove a binding; returns False if it did not exist."""
        cdef list words = split_key(binding_key)
        cdef Py_ssize_t depth = len(words), i
        cdef list path = [ROOT]
        cdef int32_t node = ROOT, child, parent, w
        cdef str word
        for word in words:
            if word == "*":
                child = self._nodes[node].star
            elif word == "#":
                child = self._nodes[node].hash
            else:
                wid = self._word_ids.get(word)
                child = NONE if wid is None else self._edge_get(node, <int32_t>wid)
            if child == NONE:
                return False
            path.append(child)
            node = child
        cdef _Targets targets = <object>PyList_GET_ITEM(self._targets_of, node)
        if targets is None or target not in targets.index:
            return False
        targets.remove(target, self._target_ids[target][0])
        if not targets.items:
            self._targets_of[node] = None
        self._target_unref(target)
        self._count -= 1
        # prune the nodes that no longer lead anywhere, bottom-up (the checks against
        # _nodes_used guard against a clear() run by the target's __eq__ above)
        for i in range(depth, 0, -1):
            node = path[i]
            parent = path[i - 1]
            if node >= self._nodes_used or parent >= self._nodes_used or not self._empty(node):
                break
            word = words[i - 1]
            if word == "*":
                self._nodes[parent].star = NONE
            elif word == "#":
                self._nodes[parent].hash = NONE
            else:
                w = self._word_ids[word]
                self._edge_delete(parent, w)
                self._word_unref(w)
                self._nodes[parent].literals -= 1
            self._free_nodes.append(node)
        return True

    def clear(self):
        """Remove every binding."""
        self._release()
        self._init()

    def bindings(self):
        """Every (binding key, target) pair."""
        cdef Py_ssize_t i
        cdef dict literals = {}  # parent -> [(word, child)]
        for i in range(self._edges_mask + 1):
            if i > self._edges_mask:  # the table shrank: cleared meanwhile (by a finalizer)
                break
            if self._edges[i].key:
                parent = <Py_ssize_t>(self._edges[i].key >> 32) - 1
                word = self._words[self._edges[i].key & 0xFFFFFFFF]
                literals.setdefault(parent, []).append((word, self._edges[i].child))
        cdef list out = []
        cdef list stack = [(ROOT, [])]
        cdef Node *n
        while stack:
            node, words = stack.pop()
            if node >= self._nodes_used:  # (the trie was cleared meanwhile)
                continue
            targets = self._targets_of[node]
            if targets is not None:
                key = ".".join(words)
                out.extend([(key, t) for t in (<_Targets>targets).items])
            for word, child in literals.get(node, ()):
                stack.append((child, words + [word]))
            n = &self._nodes[<Py_ssize_t>node]
            if n.star != NONE:
                stack.append((n.star, words + ["*"]))
            if n.hash != NONE:
                stack.append((n.hash, words + ["#"]))
        return iter(out)

    def match(self, str routing_key):
        """Every target bound with a key that matches ``routing_key``, each once."""
        cdef list words = split_key(routing_key)
        cdef list out = []
        cdef Py_ssize_t n = len(words), i
        cdef PyObject *found
        self._ensure_scratch(n)
        for i in range(n):
            found = PyDict_GetItem(self._word_ids, <object>PyList_GET_ITEM(words, i))
            self._word_of[i] = NONE if found is NULL else <int32_t>PyLong_AsSsize_t(<object>found)
        self._epoch += 1
        if self._epoch == 0:  # wrapped: old stamps could look current, so clear them
            for i in range(self._nodes_used):
                self._nodes[i].stamp = 0
            memset(self._target_stamp, 0, self._targets_cap * sizeof(uint32_t))
            self._epoch = 1
        cdef Py_ssize_t hits = self._walk(n)
        if hits:
            self._collect(hits, out)
        return out

    # ------------------------------------------------------------ the walk

    cdef int _ensure_scratch(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        if n > self._word_of_cap:
            cap = max(n, 16)
            self._word_of = <int32_t *>_grow(self._word_of, cap * sizeof(int32_t))
            self._word_of_cap = cap
        return 0

    cdef State *_grow_stack(self, Py_ssize_t need) except NULL:
        cdef Py_ssize_t cap = max(need, 64, self._stack_cap * 2)
        self._stack = <State *>_grow(self._stack, cap * sizeof(State))
        self._stack_cap = cap
        return self._stack

    cdef Py_ssize_t _walk(self, Py_ssize_t n) except -1:
        """Visit every reachable state; leave the matching nodes in ``_hits``."""
        cdef Py_ssize_t top, hits = 0, i, memo_used = 0, chunk, cap
        cdef Py_ssize_t words_per_memo = (n >> 6) + 1  # bits for positions 0..n
        cdef uint64_t bit
        cdef uint64_t *memo = self._memo
        cdef uint32_t epoch = self._epoch
        cdef int32_t node, child, w
        cdef Node *nodes = self._nodes
        cdef Node *nd
        cdef int32_t *word_of = self._word_of
        cdef PyObject **targets_of = <PyObject **>(<PyListObject *>self._targets_of).ob_item
        cdef PyObject *none = <PyObject *>None
        cdef State *stack = self._stack
        if self._stack_cap < 64:
            stack = self._grow_stack(64)
        stack[0].node = ROOT
        stack[0].pos = 0
        top = 1
        while top:
            if top + 4 > self._stack_cap:  # a state pushes at most four more
                stack = self._grow_stack(top + 4)
            top -= 1
            node = stack[top].node
            i = stack[top].pos
            nd = &nodes[node]
            if nd.flags & LOOPS:
                if nd.stamp != epoch:
                    chunk = memo_used + words_per_memo
                    if chunk > self._memo_cap:
                        cap = max(chunk, self._memo_cap * 2, 64)
                        self._memo = <uint64_t *>_grow(self._memo, cap * sizeof(uint64_t))
                        self._memo_cap = cap
                        memo = self._memo
                    memset(memo + memo_used, 0, words_per_memo * sizeof(uint64_t))
                    nd.stamp = epoch
                    nd.memo = memo_used
                    memo_used = chunk
                bit = (<uint64_t>1) << (i & 63)
                if memo[nd.memo + (i >> 6)] & bit:
                    continue
                memo[nd.memo + (i >> 6)] |= bit
            if i == n:
                if targets_of[node] != none:
                    if hits == self._hits_cap:
                        cap = max(16, self._hits_cap * 2)
                        self._hits = <int32_t *>_grow(self._hits, cap * sizeof(int32_t))
                        self._hits_cap = cap
                    self._hits[hits] = node
                    hits += 1
            else:
                # pushed in reverse: visited '#', literal, '*', then the self-loop
                if nd.flags & LOOPS:
                    stack[top].node = node
                    stack[top].pos = i + 1
                    top += 1
                if nd.star != NONE:
                    stack[top].node = nd.star
                    stack[top].pos = i + 1
                    top += 1
                w = word_of[i]
                if w != NONE and nd.literals:
                    child = self._edge_get(node, w)
                    if child != NONE:
                        stack[top].node = child
                        stack[top].pos = i + 1
                        top += 1
            if nd.hash != NONE:
                stack[top].node = nd.hash
                stack[top].pos = i
                top += 1
        return hits

    cdef int _collect(self, Py_ssize_t hits, list out) except -1:
        """Append the targets of the matching nodes to ``out``, each once."""
        cdef Py_ssize_t h, j, tid
        cdef uint32_t epoch = self._epoch
        cdef uint32_t *stamp = self._target_stamp
        cdef _Targets targets
        if self._shared == 0 or hits == 1:  # no target can come twice
            for h in range(hits):
                targets = <_Targets>PyList_GET_ITEM(self._targets_of, self._hits[h])
                out.extend(targets.items)
            return 0
        for h in range(hits):
            targets = <_Targets>PyList_GET_ITEM(self._targets_of, self._hits[h])
            for j in range(min(len(targets.items), targets.cap)):
                tid = targets.tids[j]
                if tid < self._targets_cap and stamp[tid] != epoch:
                    stamp[tid] = epoch
                    PyList_Append(out, <object>PyList_GET_ITEM(targets.items, j))
        return 0

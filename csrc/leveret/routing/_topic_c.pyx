# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled topic trie: the twin of ``leveret.routing._topic_py`` (same API, same results).

The walk is a recursive C function over typed nodes. ``#`` tries every remaining suffix; a
per-node bitmap of visited positions, reset by an epoch counter, keeps patterns such as
``#.#.#`` linear instead of exponential.
"""

from libc.stdint cimport uint64_t
from libc.string cimport memset

DEF SEEN_WORDS = 5  # 320 positions; longer keys fall back to a Python set


cdef class _Node:
    cdef dict children
    cdef _Node star
    cdef _Node hash
    cdef dict targets  # insertion-ordered set
    cdef unsigned int epoch
    cdef uint64_t seen[SEEN_WORDS]

    def __cinit__(self):
        self.children = {}
        self.targets = {}
        self.star = None
        self.hash = None
        self.epoch = 0

    cdef _Node child(self, str word):
        if word == "*":
            return self.star
        if word == "#":
            return self.hash
        return <_Node>self.children.get(word)

    cdef _Node add_child(self, str word):
        cdef _Node node = self.child(word)
        if node is None:
            node = _Node()
            if word == "*":
                self.star = node
            elif word == "#":
                self.hash = node
            else:
                self.children[word] = node
        return node

    cdef bint empty(self):
        return not self.children and self.star is None and self.hash is None \
            and not self.targets


cdef inline list _split(str key):
    return key.split(".") if key else []


cdef class _Walk:
    """State of one match: the words, the epoch, what was found."""
    cdef list words
    cdef Py_ssize_t n
    cdef unsigned int epoch
    cdef list hits  # target dicts of matching nodes
    cdef set big_seen  # only for keys longer than the bitmap


cdef bint _first_visit(_Node node, Py_ssize_t i, _Walk w):
    if w.big_seen is not None:
        key = (id(node), i)
        if key in w.big_seen:
            return False
        w.big_seen.add(key)
        return True
    if node.epoch != w.epoch:
        node.epoch = w.epoch
        memset(node.seen, 0, sizeof(node.seen))
    cdef uint64_t bit = (<uint64_t>1) << (i & 63)
    if node.seen[i >> 6] & bit:
        return False
    node.seen[i >> 6] |= bit
    return True


cdef int _visit(_Node node, Py_ssize_t i, _Walk w) except -1:
    cdef Py_ssize_t j
    cdef _Node child
    if not _first_visit(node, i, w):
        return 0
    if i == w.n and node.targets:
        w.hits.append(node.targets)
    if node.hash is not None:
        for j in range(i, w.n + 1):
            _visit(node.hash, j, w)
    if i < w.n:
        if node.children:
            child = <_Node>node.children.get(w.words[i])
            if child is not None:
                _visit(child, i + 1, w)
        if node.star is not None:
            _visit(node.star, i + 1, w)
    return 0


cdef class TopicTrie:
    """Topic bindings: ``bind(key, target)``, ``unbind(key, target)``, ``match(routing_key)``.

    Targets are any hashable objects; ``match`` returns each matching target once.
    """

    cdef _Node root
    cdef Py_ssize_t count
    cdef unsigned int epoch
    cdef dict per_target  # target -> number of its bindings
    cdef Py_ssize_t shared  # targets with more than one binding: only then dedupe

    def __cinit__(self):
        self.root = _Node()
        self.count = 0
        self.epoch = 0
        self.per_target = {}
        self.shared = 0

    def __len__(self):
        return self.count

    def bind(self, str binding_key, target):
        """Add a binding; returns False if this (key, target) was already bound."""
        cdef _Node node = self.root
        for word in _split(binding_key):
            node = node.add_child(word)
        if target in node.targets:
            return False
        node.targets[target] = None
        self.count += 1
        n = self.per_target.get(target, 0) + 1
        self.per_target[target] = n
        if n == 2:
            self.shared += 1
        return True

    def unbind(self, str binding_key, target):
        """Remove a binding; returns False if it did not exist."""
        cdef list words = _split(binding_key)
        cdef list path = [self.root]
        cdef _Node nxt, parent
        cdef _Node node = self.root
        for word in words:
            nxt = node.child(word)
            if nxt is None:
                return False
            path.append(nxt)
            node = nxt
        if target not in node.targets:
            return False
        del node.targets[target]
        self.count -= 1
        n = self.per_target[target] - 1
        if n:
            self.per_target[target] = n
            if n == 1:
                self.shared -= 1
        else:
            del self.per_target[target]
        cdef Py_ssize_t i
        for i in range(len(words), 0, -1):
            node = <_Node>path[i]
            parent = <_Node>path[i - 1]
            if not node.empty():
                break
            word = words[i - 1]
            if word == "*":
                parent.star = None
            elif word == "#":
                parent.hash = None
            else:
                del parent.children[word]
        return True

    def clear(self):
        self.root = _Node()
        self.count = 0
        self.per_target = {}
        self.shared = 0

    def bindings(self):
        """Every (binding key, target) pair."""
        stack = [(self.root, [])]
        cdef _Node node
        while stack:
            node_obj, words = stack.pop()
            node = <_Node>node_obj
            for target in node.targets:
                yield ".".join(words), target
            for word, child in node.children.items():
                stack.append((child, words + [word]))
            if node.star is not None:
                stack.append((node.star, words + ["*"]))
            if node.hash is not None:
                stack.append((node.hash, words + ["#"]))

    def match(self, str routing_key):
        """Every target bound with a key that matches ``routing_key``, each once."""
        cdef _Walk w = _Walk()
        w.words = _split(routing_key)
        w.n = len(w.words)
        w.hits = []
        w.big_seen = set() if w.n + 1 > SEEN_WORDS * 64 else None
        self.epoch += 1
        if self.epoch == 0:  # wrapped: every node's stamp is stale anyway, but be exact
            self.epoch = 1
            self._reset_epochs(self.root)
        w.epoch = self.epoch
        _visit(self.root, 0, w)
        if not w.hits:
            return []
        if len(w.hits) == 1:
            return list(<dict>w.hits[0])
        cdef list out
        if not self.shared:  # no target is bound twice: the hits are disjoint
            out = []
            for targets in w.hits:
                out.extend(<dict>targets)
            return out
        cdef dict found = {}
        for targets in w.hits:
            found.update(<dict>targets)
        return list(found)

    cdef void _reset_epochs(self, _Node node):
        node.epoch = 0
        for child in node.children.values():
            self._reset_epochs(<_Node>child)
        if node.star is not None:
            self._reset_epochs(node.star)
        if node.hash is not None:
            self._reset_epochs(node.hash)

"""Pure-Python topic trie: the twin of ``_topic_c.pyx`` (same API, same results, same order).

Routing keys and binding keys are lists of words split on ``.``; in a binding key ``*``
matches exactly one word and ``#`` zero or more (rabbitmq.com/docs/exchanges#topic). As in
RabbitMQ (``split_topic_key``), the empty key has no words at all, so ``#`` and the empty
binding key match it and ``*`` does not, while ``a..b`` has three words, the middle one
empty. ``a.#`` matches ``a``; ``#.#`` and ``*.#.*`` work as the words say.

Matching walks the trie as an automaton over states (node, position): a literal or ``*``
edge consumes one word, a ``#`` edge consumes none and a ``#`` node may consume one more word
and stay where it is. A state is visited once per match (only ``#`` nodes need a memo for
that), so ``#.#.#...`` costs (nodes x words), not an exponential number of paths. The walk is
depth-first with the children of a state taken in a fixed order (``#``, the literal word,
``*``, then the ``#`` self-loop), and targets come out in the order their nodes are reached,
each node's targets in bind order; the compiled twin walks in exactly the same order, so both
return identical lists.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

from ._common import split_key


class _Node:
    __slots__ = ("children", "star", "hash", "targets", "loops")

    def __init__(self, loops: bool = False) -> None:
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.targets: dict[Hashable, None] = {}  # insertion-ordered set
        self.loops = loops  # reached by a '#' edge: may consume further words

    def child(self, word: str) -> _Node | None:
        if word == "*":
            return self.star
        if word == "#":
            return self.hash
        return self.children.get(word)

    def add_child(self, word: str) -> _Node:
        node = self.child(word)
        if node is None:
            node = _Node(loops=word == "#")
            if word == "*":
                self.star = node
            elif word == "#":
                self.hash = node
            else:
                self.children[word] = node
        return node

    def empty(self) -> bool:
        return not (self.children or self.star or self.hash or self.targets)


class TopicTrie:
    """Topic bindings: ``bind(key, target)``, ``unbind(key, target)``, ``match(routing_key)``.

    Targets are any hashable objects (queue names, queue objects); ``match`` returns every
    target with a matching binding exactly once.
    """

    __slots__ = ("_root", "_count", "_per_target", "_shared")

    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0
        self._per_target: dict[Hashable, int] = {}  # target -> number of its bindings
        self._shared = 0  # targets bound more than once: only then must match() dedupe

    def __len__(self) -> int:
        return self._count

    def bind(self, binding_key: str, target: Hashable) -> bool:
        """Add a binding; returns False if this (key, target) was already bound."""
        hash(target)  # an unhashable target fails before the trie grows
        node = self._root
        for word in split_key(binding_key):
            node = node.add_child(word)
        if target in node.targets:
            return False
        node.targets[target] = None
        self._count += 1
        n = self._per_target.get(target, 0) + 1
        self._per_target[target] = n
        if n == 2:
            self._shared += 1
        return True

    def unbind(self, binding_key: str, target: Hashable) -> bool:
        """Remove a binding; returns False if it did not exist."""
        path = [self._root]
        words = split_key(binding_key)
        for word in words:
            nxt = path[-1].child(word)
            if nxt is None:
                return False
            path.append(nxt)
        if target not in path[-1].targets:
            return False
        del path[-1].targets[target]
        self._count -= 1
        n = self._per_target[target] - 1
        if n:
            self._per_target[target] = n
            if n == 1:
                self._shared -= 1
        else:
            del self._per_target[target]
        # prune the nodes that no longer lead anywhere, bottom-up
        for i in range(len(words), 0, -1):
            node, parent, word = path[i], path[i - 1], words[i - 1]
            if not node.empty():
                break
            if word == "*":
                parent.star = None
            elif word == "#":
                parent.hash = None
            else:
                del parent.children[word]
        return True

    def clear(self) -> None:
        """Remove every binding."""
        self._root = _Node()
        self._count = 0
        self._per_target.clear()
        self._shared = 0

    def bindings(self) -> Iterator[tuple[str, Hashable]]:
        """Every (binding key, target) pair."""
        stack: list[tuple[_Node, list[str]]] = [(self._root, [])]
        while stack:
            node, words = stack.pop()
            for target in list(node.targets):
                yield ".".join(words), target
            for word, child in list(node.children.items()):
                stack.append((child, words + [word]))
            if node.star is not None:
                stack.append((node.star, words + ["*"]))
            if node.hash is not None:
                stack.append((node.hash, words + ["#"]))

    def match(self, routing_key: str) -> list[Hashable]:
        """Every target bound with a key that matches ``routing_key``, each once."""
        words = split_key(routing_key)
        n = len(words)
        hits: list[dict[Hashable, None]] = []
        seen: set[tuple[int, int]] = set()  # (node id, position)
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        pop, push = stack.pop, stack.append
        while stack:
            node, i = pop()
            if node.loops:
                # a '#' node is reached from its parent and from itself (one word later), so
                # its states can recur; any other node has a single predecessor state, so
                # its states are unique once the '#' states are
                state = (id(node), i)
                if state in seen:
                    continue
                seen.add(state)
            if i == n:
                if node.targets:
                    hits.append(node.targets)
            else:
                # pushed in reverse: visited '#', literal, '*', then the self-loop
                if node.loops:
                    push((node, i + 1))
                if node.star is not None:
                    push((node.star, i + 1))
                if node.children:
                    child = node.children.get(words[i])
                    if child is not None:
                        push((child, i + 1))
            if node.hash is not None:
                push((node.hash, i))
        if not hits:
            return []
        if len(hits) == 1:
            return list(hits[0])
        if not self._shared:  # no target is bound twice: the hits are disjoint
            return [t for targets in hits for t in targets]
        found: dict[Hashable, None] = {}
        for targets in hits:
            found.update(targets)
        return list(found)

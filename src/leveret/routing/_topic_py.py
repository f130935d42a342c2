"""Pure-Python topic trie: the twin of ``_topic_c.pyx``.

Routing keys and binding keys are lists of words split on ``.``. In a binding key ``*``
matches exactly one word and ``#`` zero or more. As in RabbitMQ (rabbit_exchange_type_topic),
the empty routing key has no words at all, so ``#`` matches it and ``*`` does not, while
``a..b`` has three words, the middle one empty.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator


def split_key(key: str) -> list[str]:
    """Words of a routing or binding key; the empty key has none (RabbitMQ)."""
    return key.split(".") if key else []


class _Node:
    __slots__ = ("children", "star", "hash", "targets")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.targets: dict[Hashable, None] = {}  # insertion-ordered set

    def child(self, word: str) -> _Node | None:
        if word == "*":
            return self.star
        if word == "#":
            return self.hash
        return self.children.get(word)

    def add_child(self, word: str) -> _Node:
        node = self.child(word)
        if node is None:
            node = _Node()
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

    Targets are any hashable objects (queue names, queue objects); ``match`` returns each
    matching target once, in the order the bindings were first made where possible.
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
        # prune empty nodes bottom-up
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
        self._root = _Node()
        self._count = 0
        self._per_target.clear()
        self._shared = 0

    def bindings(self) -> Iterator[tuple[str, Hashable]]:
        """Every (binding key, target) pair."""
        stack: list[tuple[_Node, list[str]]] = [(self._root, [])]
        while stack:
            node, words = stack.pop()
            for target in node.targets:
                yield ".".join(words), target
            for word, child in node.children.items():
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
        seen: set[tuple[int, int]] = set()  # (node id, position): avoids blowup on #.#.#
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            key = (id(node), i)
            if key in seen:
                continue
            seen.add(key)
            if i == n and node.targets:
                hits.append(node.targets)
            h = node.hash
            if h is not None:
                # '#' eats zero or more words: try every remaining suffix
                for j in range(i, n + 1):
                    stack.append((h, j))
            if i < n:
                child = node.children.get(words[i])
                if child is not None:
                    stack.append((child, i + 1))
                if node.star is not None:
                    stack.append((node.star, i + 1))
        if len(hits) == 1:
            return list(hits[0])
        if not self._shared:  # no target is bound twice: the hits are disjoint
            return [t for targets in hits for t in targets]
        found: dict[Hashable, None] = {}
        for targets in hits:
            found.update(targets)
        return list(found)

"""Pure-Python headers matcher: the twin of ``_headers_c.pyx`` (same API, same results).

Semantics of RabbitMQ's headers exchange (rabbitmq.com/docs/exchanges#headers and
``rabbit_exchange_type_headers``):

- the binding argument ``x-match`` is ``all`` (the default), ``any``, ``all-with-x`` or
  ``any-with-x``; anything else is taken as ``all``;
- binding arguments whose name starts with ``x-`` take no part in matching, except in the
  ``-with-x`` kinds (``x-match`` itself never does);
- a binding argument with no value (AMQP void, ``None``) matches on the header's presence;
  otherwise the header must be present with an equal value, equality being RabbitMQ's
  (see ``_common``: ``1 == 1.0``, a boolean is never a number, a string equals a byte array);
- ``all`` with nothing left to compare matches every message, ``any`` matches none;
- a message without headers is matched as an empty table.

Matching does not test every binding. Each compared argument is indexed by header name and
canonical value; a message's headers look up the arguments they satisfy and count the hits
per binding. An ``any`` binding matches at its first hit, an ``all`` binding when every one of
its arguments is hit (a header name occurs once in a message and once in a binding, so each
argument is hit at most once). The work is proportional to the headers and the hits, not to
the number of bindings.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from ._common import binding_identity, binding_tests, header_value, x_match


class _Rule:
    """One binding: its arguments as given, target and how many hits make a match."""

    __slots__ = ("seq", "arguments", "target", "need", "tests")

    def __init__(self, seq: int, arguments: dict[str, Any], target: Hashable) -> None:
        match_all, with_x = x_match(arguments)
        self.seq = seq  # bind order: results come out first-bound first
        self.arguments = arguments
        self.target = target
        self.tests = binding_tests(arguments, with_x)
        # hits that make a match: all of them, or one; 0 matches always, -1 never
        self.need = len(self.tests) if match_all else (1 if self.tests else -1)


class _Name:
    """The bindings that compare one header name: on presence, or by canonical value."""

    __slots__ = ("present", "values")

    def __init__(self) -> None:
        self.present: list[_Rule] = []
        self.values: dict[Hashable, list[_Rule]] = {}


class HeadersMatcher:
    """Headers-exchange bindings: ``bind(arguments, target)``, ``unbind``, ``match(headers)``.

    A binding is identified by its arguments table and its target, as in RabbitMQ. Targets
    are any hashable objects; ``match`` returns each matching target once, first-bound first.
    """

    __slots__ = ("_rules", "_always", "_names", "_seq")

    def __init__(self) -> None:
        self._rules: dict[tuple[Hashable, Hashable], _Rule] = {}
        self._always: list[_Rule] = []  # 'all' with nothing to compare: every message
        self._names: dict[Any, _Name] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._rules)

    def bind(self, arguments: Mapping[str, Any] | None, target: Hashable) -> bool:
        """Add a binding; returns False if these arguments were already bound to ``target``."""
        args = dict(arguments or {})
        ident = (binding_identity(args), target)
        if ident in self._rules:
            return False
        self._seq += 1
        rule = _Rule(self._seq, args, target)
        self._rules[ident] = rule
        if not rule.tests:
            if rule.need == 0:
                self._always.append(rule)
            return True  # an 'any' binding with nothing to compare never matches
        for name, want in rule.tests:
            entry = self._names.get(name)
            if entry is None:
                entry = self._names[name] = _Name()
            if want is None:
                entry.present.append(rule)
            else:
                entry.values.setdefault(header_value(want), []).append(rule)
        return True

    def unbind(self, arguments: Mapping[str, Any] | None, target: Hashable) -> bool:
        """Remove a binding; returns False if it did not exist."""
        rule = self._rules.pop((binding_identity(dict(arguments or {})), target), None)
        if rule is None:
            return False
        if not rule.tests:
            if rule.need == 0:
                self._always.remove(rule)
            return True
        for name, want in rule.tests:
            entry = self._names[name]
            if want is None:
                entry.present.remove(rule)
            else:
                key = header_value(want)
                rules = entry.values[key]
                rules.remove(rule)
                if not rules:
                    del entry.values[key]
            if not entry.present and not entry.values:
                del self._names[name]
        return True

    def clear(self) -> None:
        """Remove every binding."""
        self._rules.clear()
        self._always.clear()
        self._names.clear()

    def bindings(self) -> Iterator[tuple[dict[str, Any], Hashable]]:
        """Every (arguments, target) pair, in bind order."""
        for rule in list(self._rules.values()):
            yield dict(rule.arguments), rule.target

    def match(self, headers: Mapping[str, Any] | None) -> list[Hashable]:
        """Every target whose binding matches ``headers``, each once, first-bound first."""
        matched: list[_Rule] = list(self._always)
        if headers:
            hits: dict[_Rule, int] = {}
            names = self._names
            for name, have in headers.items():
                entry = names.get(name)
                if entry is None:
                    continue
                found = entry.present
                if entry.values:
                    by_value = entry.values.get(header_value(have))
                    if by_value:
                        found = found + by_value if found else by_value
                for rule in found:
                    n = hits.get(rule, 0) + 1
                    hits[rule] = n
                    if n == rule.need:
                        matched.append(rule)
        if not matched:
            return []
        if len(matched) > 1:
            matched.sort(key=_seq)
        out: dict[Hashable, None] = {}
        for rule in matched:
            out[rule.target] = None
        return list(out)


def _seq(rule: _Rule) -> int:
    return rule.seq

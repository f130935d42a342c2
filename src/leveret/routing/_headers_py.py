"""Pure-Python headers matcher: the twin of ``_headers_c.pyx``.

Semantics of RabbitMQ's headers exchange (rabbitmq.com/docs/exchanges#headers and
rabbit_exchange_type_headers):

- the binding argument ``x-match`` is ``all`` (the default), ``any``, ``all-with-x`` or
  ``any-with-x``; any other value is treated as ``all``;
- binding arguments whose key starts with ``x-`` take no part in matching, except in the
  ``-with-x`` kinds (``x-match`` itself never does);
- a binding argument with no value (void, ``None``) matches on the header's presence;
  otherwise the header must be present with an equal value. Values compare as Erlang's ``==``
  does: ``1 == 1.0``, but a boolean never equals a number;
- ``all`` with nothing left to compare matches every message, ``any`` matches none;
- a message without headers is matched as an empty table.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Any

_MODES = {"all": (True, False), "any": (False, False),
          "all-with-x": (True, True), "any-with-x": (False, True)}
_MISSING = object()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return ("table", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(_freeze(v) for v in value))
    if isinstance(value, (bytearray, bytes)):
        return ("bytes", bytes(value))
    if isinstance(value, bool):
        return ("bool", value)
    return value


def values_equal(a: Any, b: Any) -> bool:
    """Equality as RabbitMQ's headers exchange applies it."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, (bytes, bytearray)) and isinstance(b, str):
        return bytes(a) == b.encode("utf-8")
    if isinstance(b, (bytes, bytearray)) and isinstance(a, str):
        return bytes(b) == a.encode("utf-8")
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - exotic values simply do not match
        return False


class _Rule:
    __slots__ = ("match_all", "tests", "key")

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        mode = arguments.get("x-match", "all")
        if isinstance(mode, (bytes, bytearray)):
            mode = bytes(mode).decode("utf-8", "replace")
        self.match_all, with_x = _MODES.get(mode, (True, False)) if isinstance(mode, str) \
            else (True, False)
        self.tests = tuple(
            (k, v) for k, v in arguments.items()
            if k != "x-match" and (with_x or not k.startswith("x-"))
        )
        self.key = _freeze(dict(arguments))

    def matches(self, headers: Mapping[str, Any]) -> bool:
        if self.match_all:
            for k, v in self.tests:
                have = headers.get(k, _MISSING)
                if have is _MISSING or (v is not None and not values_equal(v, have)):
                    return False
            return True
        for k, v in self.tests:
            have = headers.get(k, _MISSING)
            if have is not _MISSING and (v is None or values_equal(v, have)):
                return True
        return False


class HeadersMatcher:
    """Headers-exchange bindings: ``bind(arguments, target)``, ``unbind``, ``match(headers)``.

    A binding is identified by its arguments table and its target, as in RabbitMQ.
    """

    __slots__ = ("_bindings",)

    def __init__(self) -> None:
        self._bindings: dict[tuple[Any, Hashable], tuple[_Rule, Hashable]] = {}

    def __len__(self) -> int:
        return len(self._bindings)

    def bind(self, arguments: Mapping[str, Any] | None, target: Hashable) -> bool:
        rule = _Rule(arguments or {})
        ident = (rule.key, target)
        if ident in self._bindings:
            return False
        self._bindings[ident] = (rule, target)
        return True

    def unbind(self, arguments: Mapping[str, Any] | None, target: Hashable) -> bool:
        ident = (_freeze(dict(arguments or {})), target)
        return self._bindings.pop(ident, None) is not None

    def clear(self) -> None:
        self._bindings.clear()

    def bindings(self) -> Iterator[tuple[dict[str, Any], Hashable]]:
        for rule, target in self._bindings.values():
            yield dict(rule.tests), target

    def match(self, headers: Mapping[str, Any] | None) -> list[Hashable]:
        """Every target whose binding matches ``headers``, each once."""
        headers = headers or {}
        found: dict[Hashable, None] = {}
        for rule, target in self._bindings.values():
            if target not in found and rule.matches(headers):
                found[target] = None
        return list(found)

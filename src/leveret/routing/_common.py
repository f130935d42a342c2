"""Semantics shared by both twins of the router, defined once (the .pyx files import them).

Topic keys (RabbitMQ ``rabbit_exchange_type_topic`` / ``rabbit_db_topic_exchange``): a key is
split on ``.`` into words and the *empty* key has no words at all (``split_topic_key(<<>>)``
is ``[]``). So ``#`` and the empty binding key match the empty routing key and ``*`` does not,
while ``a..b`` has three words, the middle one empty, and ``.`` has two empty words. Checked
against RabbitMQ 3.10 (``tests/test_routing.py::test_topic_against_rabbitmq``).

Headers values (RabbitMQ ``rabbit_exchange_type_headers``): a binding argument equals a
header when their *values* are equal under Erlang's ``==``; the AMQP field types of the two
sides are not compared. In Python terms, as a RabbitMQ 3.10 broker behaves:

- ``1 == 1.0`` (numbers compare by value), but a boolean is an atom, never a number;
- a string equals a byte array with the same UTF-8 bytes (both are Erlang binaries);
- a timestamp is an integer of seconds, so it equals that number;
- a decimal is ``{scale, unscaled}``: ``Decimal("1.0")`` is not ``Decimal("1.00")`` nor ``1``;
- an empty table and an empty array are both Erlang's ``[]``, so they are equal;
- inside arrays and nested tables every element keeps its AMQP type tag, so there ``1`` is not
  ``1.0`` and a string is not a byte array; nested tables compare entry by entry *in order*
  (only the top level of the headers and of the binding arguments is sorted by key).

Python values do not carry the wire type of an integer (``b``/``s``/``I``/``l``), so nested
integers of equal value are taken as equal whatever width the client chose, where RabbitMQ
compares the tags too.

``header_value`` maps a value to a hashable canonical form such that two top-level values are
equal in RabbitMQ's sense exactly when their canonical forms are ``==``; the headers matchers
index binding values by it. ``typed_value`` is the stricter form used inside arrays and tables
and for the identity of a binding's arguments (RabbitMQ compares binding arguments with their
types).
"""

from __future__ import annotations

import calendar
import datetime
import decimal
import time
from collections.abc import Hashable, Mapping
from typing import Any

#: ``x-match`` values (rabbitmq.com/docs/exchanges#headers): kind -> (match all, compare x-).
X_MATCH_KINDS: dict[str, tuple[bool, bool]] = {
    "all": (True, False),
    "any": (False, False),
    "all-with-x": (True, True),
    "any-with-x": (False, True),
}

_VOID = ("void",)
_TRUE = ("bool", True)
_FALSE = ("bool", False)
_NAN = ("float", "nan")  # RabbitMQ cannot even decode a NaN; here it equals itself
_EMPTY = ("empty",)  # an empty table or array: both are [] to RabbitMQ


def split_key(key: str) -> list[str]:
    """Words of a routing or binding key; the empty key has none (RabbitMQ)."""
    return key.split(".") if key else []


def x_match(arguments: Mapping[str, Any]) -> tuple[bool, bool]:
    """(match all?, do ``x-`` arguments take part?) for a binding's arguments.

    Only a string ``x-match`` is understood; anything else (absent, unknown, a byte array) is
    ``all``, as ``parse_x_match`` in rabbit_exchange_type_headers does. (RabbitMQ refuses such
    a binding with 406 at bind time; that check belongs to the exchange, not the matcher.)
    """
    kind = arguments.get("x-match")
    if isinstance(kind, str):
        return X_MATCH_KINDS.get(str(kind), (True, False))
    return True, False


def binding_tests(arguments: Mapping[str, Any], with_x: bool) -> list[tuple[str, Any]]:
    """The (header name, wanted value) pairs a binding compares; ``None`` means presence.

    ``x-match`` itself never takes part; other ``x-`` arguments only in the ``-with-x`` kinds.
    """
    return [(k, v) for k, v in arguments.items()
            if k != "x-match" and (with_x or not (isinstance(k, str) and k.startswith("x-")))]


def _seconds(value: datetime.datetime | time.struct_time) -> int:
    # an AMQP timestamp is whole seconds since the epoch; naive datetimes are UTC (as pamqp)
    if isinstance(value, datetime.datetime):
        return calendar.timegm(value.utctimetuple())
    return calendar.timegm(value)


def _decimal(value: decimal.Decimal) -> tuple[Any, ...]:
    if not value.is_finite():
        return ("decimal", str(value))
    sign, digits, exponent = value.as_tuple()
    unscaled = int("".join(map(str, digits)) or "0")
    return ("decimal", -int(exponent), -unscaled if sign else unscaled)


def _bytes(value: bytes | bytearray | memoryview) -> Any:
    raw = bytes(value)
    try:
        return raw.decode("utf-8")  # equal to the string with these UTF-8 bytes
    except UnicodeDecodeError:
        return ("bytes", raw)


def header_value(value: Any) -> Hashable:
    """Canonical form of a top-level header or binding value (Erlang ``==``, types ignored)."""
    t = type(value)
    if t is str or t is int:
        return value  # type: ignore[no-any-return]
    if t is float:
        return value if value == value else _NAN  # type: ignore[no-any-return]
    if t is bool:
        return _TRUE if value else _FALSE
    if value is None:
        return _VOID
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if value == value else _NAN
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes(value)
    if isinstance(value, (datetime.datetime, time.struct_time)):
        return _seconds(value)  # a timestamp's value is its integer: it equals that number
    if isinstance(value, (Mapping, list, tuple)) and not value:
        return _EMPTY
    return typed_value(value)  # decimals, arrays, tables: as when nested


def typed_value(value: Any) -> Hashable:
    """Canonical form with the value's type: nested values, and binding identity."""
    if value is None:
        return _VOID
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        return ("float", float(value)) if value == value else _NAN
    if isinstance(value, str):
        return ("str", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(value))
    if isinstance(value, decimal.Decimal):
        return _decimal(value)
    if isinstance(value, (datetime.datetime, time.struct_time)):
        return ("timestamp", _seconds(value))
    if isinstance(value, Mapping):
        return ("table", tuple((k, typed_value(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(typed_value(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))  # unhashable and unknown: equal only to itself
    return ("object", value)


def values_equal(want: Any, have: Any) -> bool:
    """Whether a binding argument's value equals a header's value, as RabbitMQ decides."""
    return header_value(want) == header_value(have)


def binding_identity(arguments: Mapping[str, Any]) -> Hashable:
    """What makes two argument tables the same binding: every entry, with its type.

    RabbitMQ sorts the top level of a binding's arguments, so entry order does not matter
    there; nested tables keep their order (see the module notes).
    """
    return frozenset((k, typed_value(v)) for k, v in arguments.items())

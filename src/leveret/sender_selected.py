"""Sender-selected distribution (rabbitmq.com/docs/sender-selected): the ``CC`` and ``BCC``
headers name more routing keys for one published message.

What RabbitMQ 3.10 does, and so what this does (each point checked against it in
tests/test_differential.py):

* The exchange routes the message by its routing key and by every long-string member of the
  ``CC`` and ``BCC`` arrays, in that order; each queue gets the message once. Other members (a
  number, a byte array, a table) are ignored. The keys follow exchange-to-exchange bindings and
  alternate exchanges; fanout and headers exchanges ignore them as they ignore the routing key;
  the default exchange takes each key as a queue name.
* ``CC`` or ``BCC`` that is not an array refuses the publish: 406 ``invalid message:
  {unacceptable_type_in_header,"CC",longstr}`` (the value's type as RabbitMQ names it). ``CC``
  is checked first. An unknown exchange (404) is reported before either.
* ``BCC`` is removed from the headers before the message is stored or delivered; when it was
  the only header the consumer sees an empty table. ``CC`` stays. A consumer, ``basic.get`` and
  ``basic.return`` see the publish routing key.
* A message routed only by a ``CC`` or ``BCC`` key counts as routed: ``mandatory`` returns
  nothing.
* Dead letters without ``x-dead-letter-routing-key`` are routed by all the keys again, ``BCC``
  ones included (see deadletter.py; their ``x-death`` ``routing-keys`` lists the routing key and
  ``CC`` only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .deadletter import (
    join_properties,
    join_table,
    split_array,
    split_properties,
    split_table,
)
from .errors import PRECONDITION_FAILED, ChannelError

if TYPE_CHECKING:
    from .message import Message

# RabbitMQ's names of the field types (rabbit_binary_parser), for its error text
_TYPE_NAMES = {
    b"t": "bool", b"b": "byte", b"B": "unsignedbyte", b"s": "short", b"u": "unsignedshort",
    b"I": "signedint", b"i": "unsignedint", b"l": "long", b"L": "long", b"f": "float",
    b"d": "double", b"D": "decimal", b"T": "timestamp", b"V": "void", b"x": "binary",
    b"F": "table", b"S": "longstr", b"A": "array",
}


def apply(message: Message) -> None:
    """Read ``CC`` and ``BCC`` of a just-published message into ``extra_routing_keys`` and take
    ``BCC`` out of its properties. Raises ChannelError(406) as RabbitMQ does for a non-array.

    The publish path calls this only when the headers flag is set and "CC" occurs in the
    property bytes, so a message without these headers pays for no decoding.

    The properties are re-encoded only when ``BCC`` is present, and then only the header table
    is rebuilt, from its other entries' wire bytes, so every value keeps its wire type except
    where RabbitMQ's own re-encoding changes it (``_reencoded``).
    """
    props = split_properties(message.raw_props)
    headers = split_table(props[2])
    cc = headers.get(b"CC")
    bcc = headers.get(b"BCC")
    if cc is None and bcc is None:
        return
    keys = _longstr_members("CC", cc) + _longstr_members("BCC", bcc)
    if bcc is not None:
        del headers[b"BCC"]
        props[2] = join_table((k, _reencoded(v)) for k, v in headers.items())
        message.replace_raw_props(join_properties(props))
    message.extra_routing_keys = tuple(keys)


def _longstr_members(name: str, value: bytes | None) -> list[str]:
    if value is None:
        return []
    kind = value[:1]
    if kind != b"A":
        raise ChannelError(
            PRECONDITION_FAILED,
            f'invalid message: {{unacceptable_type_in_header,"{name}",'
            f'{_TYPE_NAMES.get(kind, "void")}}}',
        )
    return [member[5:].decode("utf-8", "surrogateescape")
            for member in split_array(value[5:]) if member[:1] == b"S"]


def _reencoded(value: bytes) -> bytes:
    """A header value as RabbitMQ 3.10 encodes it again after taking ``BCC`` out: the same bytes
    but that it reads an ``L`` (unsigned 64-bit) as a long and writes it as ``l``, at any depth.
    """
    if b"L" not in value:
        return value
    kind = value[:1]
    if kind == b"L":
        return b"l" + value[1:]
    if kind == b"A":
        return _array_of(b"".join(_reencoded(v) for v in split_array(value[5:])))
    if kind == b"F":
        return b"F" + join_table((k, _reencoded(v)) for k, v in split_table(value[1:]).items())
    return value


def _array_of(members: bytes) -> bytes:
    return b"A" + len(members).to_bytes(4, "big") + members

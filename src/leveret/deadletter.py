"""Dead-lettering (rabbitmq.com/docs/dlx): republish a message that was rejected, expired or
pushed out by a length limit to its queue's dead-letter exchange, as a new message carrying the
death history RabbitMQ writes.

What RabbitMQ does, and so what this does (rabbit_dead_letter / mc in rabbitmq-server):

* ``x-death`` is an array of tables, one per (queue, reason), most recent first. A new death
  gets ``count`` (a 64-bit long), ``reason``, ``queue``, ``time`` (a timestamp, seconds),
  ``exchange``, ``routing-keys`` (the publish routing key plus any ``CC`` keys) and, when the
  message had a per-message TTL, ``original-expiration``. A death for a (queue, reason) already
  listed increments that entry's ``count`` and moves it to the front; its ``time`` stays the
  time of the first such death.
* ``x-first-death-reason/-queue/-exchange`` are set by the first death only;
  ``x-last-death-reason/-queue/-exchange`` by every death (RabbitMQ 3.13 and later).
* The ``expiration`` property is removed (it is in ``original-expiration``), so the dead letter
  does not expire again in the queues it reaches.
* With ``x-dead-letter-routing-key`` the dead letter is routed by that key alone and its
  ``CC`` header is dropped; otherwise by the original routing key and the ``CC`` and ``BCC``
  keys of the publish (sender_selected.py), though ``routing-keys`` lists no ``BCC`` key.
* Cycles: a dead letter is not delivered to a queue it already died in unless a rejection
  happened somewhere since (rejections come from clients, so such a loop is not automatic).
* The dead-letter exchange missing means the message is dropped.

The client's own headers keep their wire types (a 64-bit long stays a long, a byte a byte):
the header table is spliced at its top level, never decoded and re-encoded.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .message import Message

if TYPE_CHECKING:
    from .queue import Queue

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")

# payload sizes of the fixed-size field types; S, A, F and x carry a 4-byte length
_FIXED = {b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"l": 8, b"L": 8,
          b"f": 4, b"d": 8, b"D": 5, b"T": 8, b"V": 0, b"\x00": 0}
_INT_FORMATS = {b"b": ">b", b"B": ">B", b"s": ">h", b"u": ">H", b"I": ">i", b"i": ">I",
                b"l": ">q", b"L": ">q"}
_HEADERS_BIT = 1 << 13  # property flag of ``headers`` (third property)
_EXPIRATION_BIT = 1 << 8  # property flag of ``expiration`` (eighth property)
_DEATH_HEADERS = (b"x-first-death-reason", b"x-first-death-queue", b"x-first-death-exchange")

RawValue = bytes  # a field value on the wire: type byte + payload
RawTable = dict[bytes, RawValue]  # key -> raw value, in wire order
Deaths = list[tuple[str | None, str | None]]  # (queue, reason), most recent first


def dead_letter(queue: Queue, message: Message, reason: str) -> None:
    """Send ``message``, which just left ``queue``, to the queue's dead-letter exchange.

    ``reason`` is ``rejected``, ``expired`` or ``maxlen``. Without a dead-letter exchange, or
    when it does not exist, the message is dropped.
    """
    opts = queue.options
    vhost = queue.vhost
    dlx = opts.dead_letter_exchange
    exchange = vhost.exchanges.get(dlx) if dlx is not None else None
    # counted as RabbitMQ's rabbit_global_counters:messages_dead_lettered does: with the
    # strategy "disabled" when there is no exchange to send it to
    key = (reason, "disabled" if exchange is None else "at_most_once")
    counts = vhost.stat_dead_lettered
    counts[key] = counts.get(key, 0) + 1
    if exchange is None:
        return
    dead, deaths = _dead_message(queue.name, message, reason, exchange.name,
                                 opts.dead_letter_routing_key)
    for target in vhost.route(exchange, dead):
        if not _is_cycle(target.name, deaths):
            target.push(dead)


def _dead_message(queue_name: str, message: Message, reason: str, dlx: str,
                  dl_routing_key: str | None) -> tuple[Message, Deaths]:
    """The dead letter, and its deaths as (queue, reason), most recent first."""
    props = split_properties(message.raw_props)
    headers = split_table(props[2]) if 2 in props else {}
    expiration = props.pop(7, None)
    queue_b, reason_b = queue_name.encode(), reason.encode()
    old = headers.get(b"x-death")
    entries = split_array(old[5:]) if old is not None and old[:1] == b"A" else []
    records = [_death_key(e) for e in entries]
    for i, (q, r) in enumerate(records):
        if q == queue_name and r == reason:
            entries.insert(0, _increment_count(entries.pop(i)))
            records.insert(0, records.pop(i))
            break
    else:
        routing_keys = [message.routing_key.encode()] + _cc_keys(headers.get(b"CC"))
        entries.insert(0, _death_entry(reason_b, queue_b, message.exchange.encode(),
                                       routing_keys, expiration[1:] if expiration else None))
        records.insert(0, (queue_name, reason))
    if old is None:
        exchange_b = message.exchange.encode()
        for key, value in zip(_DEATH_HEADERS, (reason_b, queue_b, exchange_b)):
            headers[key] = _longstr(value)
    headers[b"x-death"] = _array(entries)
    headers[b"x-last-death-reason"] = _longstr(reason_b)
    headers[b"x-last-death-queue"] = _longstr(queue_b)
    headers[b"x-last-death-exchange"] = _longstr(message.exchange.encode())
    if dl_routing_key is not None:
        headers.pop(b"CC", None)
    # RabbitMQ keeps header tables sorted by key
    props[2] = join_table(sorted(headers.items()))
    raw = join_properties(props)
    routing_key = message.routing_key if dl_routing_key is None else dl_routing_key
    dead = Message(dlx, routing_key, raw, message.body, message.delivery_mode, message.priority,
                   None)
    if dl_routing_key is None:
        # routed by every key it was published with, BCC ones included (RabbitMQ 3.10 keeps
        # them with the message, and so does the store); the CC header is the fallback
        dead.extra_routing_keys = message.extra_routing_keys or tuple(
            k.decode("utf-8", "surrogateescape") for k in _cc_keys(headers.get(b"CC")))
    return dead, records


def _is_cycle(target: str, deaths: Deaths) -> bool:
    """RabbitMQ's cycle rule: the target queue appears in the history and no death from the
    most recent back to (and including) that appearance was a rejection."""
    for queue, reason in deaths:
        if reason is None or reason == "rejected":
            return False  # a rejection (or a client's entry) breaks the cycle
        if queue == target:
            return True
    return False


# ---------------------------------------------------------------- x-death entries


def _death_key(entry: RawValue) -> tuple[str | None, str | None]:
    """(queue, reason) of an x-death entry; reason None marks an entry that is not a table,
    which RabbitMQ takes as put there by a client, so never part of an automatic cycle."""
    if entry[:1] != b"F":
        return None, None
    table = split_table(entry[1:])
    return _text(table.get(b"queue")), _text(table.get(b"reason")) or ""


def _increment_count(entry: RawValue) -> RawValue:
    table = split_table(entry[1:])
    count = _integer(table.get(b"count"))
    if count is None:
        items = [(b"count", _long(1))] + list(table.items())
    else:
        table[b"count"] = _long(count + 1)
        items = list(table.items())
    return b"F" + join_table(items)


def _death_entry(reason: bytes, queue: bytes, exchange: bytes, routing_keys: list[bytes],
                 original_expiration: bytes | None) -> RawValue:
    items: list[tuple[bytes, RawValue]] = []
    if original_expiration is not None:
        items.append((b"original-expiration", _longstr(original_expiration)))
    items += [
        (b"count", _long(1)),
        (b"reason", _longstr(reason)),
        (b"queue", _longstr(queue)),
        (b"time", b"T" + _U64.pack(int(time.time()))),
        (b"exchange", _longstr(exchange)),
        (b"routing-keys", _array([_longstr(k) for k in routing_keys])),
    ]
    return b"F" + join_table(items)


def _cc_keys(value: RawValue | None) -> list[bytes]:
    """The long-string members of a ``CC`` array (RabbitMQ ignores anything else)."""
    if value is None or value[:1] != b"A":
        return []
    return [v[5:] for v in split_array(value[5:]) if v[:1] == b"S"]


# ---------------------------------------------------------------- wire splicing


def split_properties(raw: bytes) -> dict[int, bytes]:
    """Basic properties in wire form -> {property index: raw bytes of its value}.

    ``raw`` was validated by the frame parser, so it is well formed.
    """
    pos = 2
    flags = raw[0] << 8 | raw[1]
    word = flags
    while word & 1:  # continuation words carry no basic property; skip them
        word = raw[pos] << 8 | raw[pos + 1]
        pos += 2
    out: dict[int, bytes] = {}
    for i in range(14):
        if not flags & (1 << (15 - i)):
            continue
        if i == 2:
            end = pos + 4 + _U32.unpack_from(raw, pos)[0]
        elif i in (3, 4):
            end = pos + 1
        elif i == 9:
            end = pos + 8
        else:
            end = pos + 1 + raw[pos]
        out[i] = bytes(raw[pos:end])
        pos = end
    return out


def join_properties(props: dict[int, bytes]) -> bytes:
    """The inverse of ``split_properties``."""
    flags = 0
    for i in props:
        flags |= 1 << (15 - i)
    return struct.pack(">H", flags) + b"".join(props[i] for i in sorted(props))


def _value_end(data: bytes, pos: int) -> int:
    """End of the field value (type byte included) that starts at ``pos``."""
    kind = data[pos : pos + 1]
    size = _FIXED.get(kind)
    if size is not None:
        return pos + 1 + size
    return pos + 5 + _U32.unpack_from(data, pos + 1)[0]  # S, A, F, x


def split_table(data: bytes) -> RawTable:
    """A field table (4-byte size + entries) -> {key: raw value}, top level only."""
    end = 4 + _U32.unpack_from(data, 0)[0]
    pos = 4
    out: RawTable = {}
    while pos < end:
        key_end = pos + 1 + data[pos]
        value_end = _value_end(data, key_end)
        out[bytes(data[pos + 1 : key_end])] = bytes(data[key_end:value_end])
        pos = value_end
    return out


def split_array(data: bytes) -> list[RawValue]:
    """The members of a field array's payload (without the 'A' and its length)."""
    out: list[RawValue] = []
    pos = 0
    while pos < len(data):
        end = _value_end(data, pos)
        out.append(bytes(data[pos:end]))
        pos = end
    return out


def join_table(items: Iterable[tuple[bytes, RawValue]]) -> bytes:
    """The inverse of ``split_table``: entries (key, raw value) -> a field table."""
    body = b"".join(bytes((len(k),)) + k + v for k, v in items)
    return _U32.pack(len(body)) + body


def _array(values: list[RawValue]) -> RawValue:
    body = b"".join(values)
    return b"A" + _U32.pack(len(body)) + body


def _longstr(value: bytes) -> RawValue:
    return b"S" + _U32.pack(len(value)) + value


def _long(value: int) -> RawValue:
    return b"l" + _I64.pack(value)


def _text(value: RawValue | None) -> str | None:
    if value is None or value[:1] not in (b"S", b"x"):
        return None
    return value[5:].decode("utf-8", "replace")


def _integer(value: RawValue | None) -> int | None:
    if value is None:
        return None
    fmt = _INT_FORMATS.get(value[:1])
    if fmt is None:
        return None
    return int(struct.unpack_from(fmt, value, 1)[0])

"""Rare methods: their arguments decoded with the frame codec's bounded reader, and the one
reply pamqp would refuse to encode.

pamqp describes every method (its class, its arguments' names and AMQP types); the decoding
is Leveret's own, for two reasons:

- Field tables go through the codec's reader (``_frames_py._Reader``), which refuses nesting
  deeper than ``MAX_DEPTH`` (64) as a malformed frame, 501 FRAME_ERROR, the same rule as for
  message headers. pamqp recursed until RecursionError: a table a few hundred levels deep in
  connection.start-ok's client properties (before authentication) or in declare arguments
  cost a 541 and a 200 KB traceback per frame. RabbitMQ 3.10 accepts any depth; a bound keeps
  everything that later walks a table (comparisons, JSON, logs) safe, and a frame is bounded
  in size anyway (4096 bytes before connection.tune-ok, frame_max after).
- Arguments must fill the frame: bytes after the last one are "501 FRAME_ERROR - cannot
  decode", as RabbitMQ's exact binary match answers them.

pamqp validates queue and exchange names against ``[a-zA-Z0-9-_.:@#,/+ ]*`` when it builds a
method; RabbitMQ takes any UTF-8 name of up to 255 bytes. Decoding here never validates, and
queue.declare-ok, the only reply that names a queue and goes through pamqp, is encoded here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, cast

from pamqp import base as _pamqp_base
from pamqp import commands as _commands

from ._frames_common import COMMAND_INVALID, FRAME_END, FRAME_ERROR, FRAME_METHOD, FrameError
from ._frames_py import _Reader

# pamqp's table of method classes by index is not annotated (mypy sees dict[int, type])
_METHODS = cast("dict[int, type[_pamqp_base.Frame]]", _commands.INDEX_MAPPING)

_READERS: dict[str, Callable[[_Reader], Any]] = {
    "octet": _Reader.u8,
    "short": _Reader.u16,
    "long": _Reader.u32,
    "longlong": _Reader.u64,
    "shortstr": _Reader.shortstr,
    "longstr": _Reader.longstr,
    "table": _Reader.table,
    "timestamp": _Reader.timestamp,
}

# (argument name, AMQP type) of each method class, in wire order
_ARGUMENTS: dict[type, tuple[tuple[str, str], ...]] = {}


def _arguments(cls: type[_pamqp_base.Frame]) -> tuple[tuple[str, str], ...]:
    args = _ARGUMENTS.get(cls)
    if args is None:
        args = _ARGUMENTS[cls] = tuple((name, cls.amqp_type(name)) for name in cls.__slots__)
    return args


def decode_method(index: int, payload: bytes) -> _pamqp_base.Frame:
    """The pamqp command for method ``index`` (class_id << 16 | method_id) with its arguments
    decoded from ``payload`` (the bytes after the method id).

    An unknown method is 503 COMMAND_INVALID; arguments that do not decode, or do not fill
    the payload exactly, are 501 FRAME_ERROR ("cannot decode", as RabbitMQ answers them).
    """
    cls = _METHODS.get(index)
    if cls is None:
        raise FrameError(COMMAND_INVALID, f"unknown method {index >> 16}.{index & 0xFFFF}")
    method = cls.__new__(cls)  # no __init__: pamqp's name validation is not RabbitMQ's
    r = _Reader(payload)
    bits = bit = -1  # the octet bits are packed into, and the next bit's place in it
    try:
        for name, kind in _arguments(cls):
            if kind == "bit":
                if bit < 0 or bit == 8:
                    bits, bit = r.u8(), 0
                value: Any = bool(bits >> bit & 1)
                bit += 1
            else:
                bit = -1
                value = _READERS[kind](r)
            setattr(method, name, value)
    except FrameError as exc:
        raise FrameError(FRAME_ERROR, f"cannot decode {cls.name}: {exc.text}") from None
    if r.pos != r.end:
        raise FrameError(FRAME_ERROR, f"cannot decode {cls.name}: {r.end - r.pos} bytes after "
                                      "its arguments")
    return method


def decode_table_entries(raw: bytes) -> dict[str, Any]:
    """A field table's entries without its 4-byte size (AMQPLAIN's response), bounded as
    every other table; a FrameError if they do not decode."""
    return _Reader(struct.pack(">I", len(raw)) + raw).table()


_DECLARE_OK_HEAD = struct.Struct(">BHII")
_QUEUE_DECLARE_OK = (50 << 16) | 11


def encode_queue_declare_ok(out: bytearray, channel: int, queue: str, message_count: int,
                            consumer_count: int) -> None:
    """Append queue.declare-ok to ``out`` (any UTF-8 queue name up to 255 bytes)."""
    name = queue.encode("utf-8")
    args = bytes((len(name),)) + name + struct.pack(">II", message_count, consumer_count)
    out += _DECLARE_OK_HEAD.pack(FRAME_METHOD, channel, 4 + len(args), _QUEUE_DECLARE_OK)
    out += args
    out.append(FRAME_END)

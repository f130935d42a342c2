"""Stream arguments: what ``queue.declare`` and ``basic.consume`` accept for a stream, with
RabbitMQ's error texts (rabbitmq.com/docs/streams, "Using Streams with AMQP 0-9-1").

Checked against RabbitMQ 3.10.8, in the order it checks them:

* declare: the values of the arguments a stream supports (``x-max-length-bytes``,
  ``x-max-age``, ``x-stream-max-segment-size-bytes``, ``x-initial-cluster-size``,
  ``x-queue-leader-locator``), then the first argument of another queue type in the table's
  order (``... of queue type rabbit_stream_queue``), then the properties (auto-delete,
  exclusive, non-durable), then the segment size limit. Unknown ``x-`` arguments are kept.
* consume: ``x-stream-offset``, then a consumer argument streams refuse (``x-priority``), then
  the prefetch (basic.qos, per consumer), manual acknowledgement and no global qos.

Where 3.10 closes the connection with 541 (a ``x-max-age`` or ``x-stream-offset`` interval with
no digits, such as ``bad`` or ``-1h``; an ``x-stream-offset`` of a type it cannot use), Leveret
answers the 406 the same argument gets for other bad values.
"""

from __future__ import annotations

import datetime
import decimal
import re
import time
from dataclasses import dataclass
from typing import Any

from .errors import NOT_IMPLEMENTED, PRECONDITION_FAILED, ChannelError, ConnectionError_
from .queue_args import amqp_type_name

# RabbitMQ's defaults (rabbit_stream_queue, osiris)
DEFAULT_SEGMENT_BYTES = 500_000_000
MAX_SEGMENT_BYTES = 3_000_000_000  # ?MAX_STREAM_MAX_SEGMENT_SIZE
LEADER_LOCATORS = ("client-local", "balanced", "least-leaders", "random")

# queue arguments RabbitMQ knows for other queue types: a stream refuses them by name
# (rabbit_amqqueue:declare_args/0 minus rabbit_stream_queue:capabilities() queue_arguments)
FOREIGN_ARGS = frozenset((
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-max-priority",
    "x-overflow", "x-queue-mode", "x-queue-version", "x-single-active-consumer",
    "x-quorum-initial-group-size", "x-delivery-limit", "x-dead-letter-strategy",
    "x-queue-master-locator",
))
# what a redeclare compares for a stream (its own arguments only; RabbitMQ ignores the rest)
COMPARED_ARGS = ("x-queue-type", "x-max-length-bytes", "x-max-age",
                 "x-stream-max-segment-size-bytes", "x-initial-cluster-size",
                 "x-queue-leader-locator")
# consumer arguments of other queue types (rabbit_amqqueue:consume_args/0)
FOREIGN_CONSUMER_ARGS = frozenset(("x-priority", "x-cancel-on-ha-failover"))

_UNIT_MS = {"Y": 365 * 86_400_000, "M": 30 * 86_400_000, "D": 86_400_000, "h": 3_600_000,
            "m": 60_000, "s": 1000}
_AGE = re.compile(r"([0-9]*)(.*)", re.S)


@dataclass(frozen=True)
class StreamOptions:
    """A stream's retention and layout, parsed once at declare."""

    max_length_bytes: int | None = None
    max_age_ms: int | None = None
    max_segment_bytes: int = DEFAULT_SEGMENT_BYTES


def is_stream(arguments: dict[str, Any]) -> bool:
    """Does this declare ask for a stream (``x-queue-type: stream``)?"""
    return arguments.get("x-queue-type") == "stream"


def parse_max_age(text: str) -> int | None:
    """An interval such as ``7D`` or ``1h`` in ms (units Y, M, D, h, m, s as RabbitMQ's
    check_max_age); None when it is not one (no digits, zero, another unit)."""
    match = _AGE.fullmatch(text)
    assert match is not None  # the pattern matches every string
    digits, unit = match.groups()
    if not digits or int(digits) == 0 or unit not in _UNIT_MS:
        return None
    return int(digits) * _UNIT_MS[unit]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_stream_declare(arguments: dict[str, Any], queue: str, vhost: str, durable: bool,
                         exclusive: bool, auto_delete: bool) -> StreamOptions:
    """Validate a new stream's declare; raises ChannelError(406) with RabbitMQ's text."""
    where = f"queue '{queue}' in vhost '{vhost}'"

    def fail(key: str, reason: str) -> ChannelError:
        return ChannelError(PRECONDITION_FAILED, f"invalid arg '{key}' for {where}: {reason}")

    def non_negative(key: str) -> int | None:
        if key not in arguments:
            return None
        value = arguments[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(key, f'"expected integer, got {amqp_type_name(value)}"')
        if value < 0:
            raise fail(key, f"{{value_negative,{value}}}")
        return value

    max_bytes = non_negative("x-max-length-bytes")
    max_age = None
    if "x-max-age" in arguments:
        value = arguments["x-max-age"]
        if not isinstance(value, (str, bytes)):
            raise fail("x-max-age", f"{{unacceptable_type,{amqp_type_name(value)}}}")
        max_age = parse_max_age(_text(value))
        if max_age is None:
            raise fail("x-max-age", "invalid_max_age")
    segment = non_negative("x-stream-max-segment-size-bytes")
    if non_negative("x-initial-cluster-size") == 0:
        raise fail("x-initial-cluster-size", "{value_zero,0}")
    if "x-queue-leader-locator" in arguments:
        value = arguments["x-queue-leader-locator"]
        if not isinstance(value, (str, bytes)):
            raise fail("x-queue-leader-locator",
                       f"{{unacceptable_type,{amqp_type_name(value)}}}")
        if _text(value) not in LEADER_LOCATORS:
            raise fail("x-queue-leader-locator", "invalid_queue_locator_arg")
    for key in arguments:
        if key in FOREIGN_ARGS:
            raise ChannelError(PRECONDITION_FAILED, f"invalid arg '{key}' for {where} of queue "
                                                    "type rabbit_stream_queue")
    for refused, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                          (not durable, "non-durable")):
        if refused:
            raise ChannelError(PRECONDITION_FAILED, f"invalid property '{prop}' for {where}")
    if segment is not None and segment > MAX_SEGMENT_BYTES:
        raise ChannelError(PRECONDITION_FAILED,
                           "Exceeded max value for x-stream-max-segment-size-bytes")
    filter_size = arguments.get("x-stream-filter-size-bytes")
    if filter_size is not None and not (isinstance(filter_size, int)
                                        and not isinstance(filter_size, bool)
                                        and 16 <= filter_size <= 255):
        # RabbitMQ 3.11+ checks it (3.10 does not know the argument); the two spaces are its
        raise ChannelError(PRECONDITION_FAILED, "Invalid value for  x-stream-filter-size-bytes")
    return StreamOptions(max_bytes, max_age,
                         DEFAULT_SEGMENT_BYTES if segment is None else segment)


# ---------------------------------------------------------------- consumers

# where a consumer starts: ("first"|"last"|"next", 0), ("offset", n) or ("timestamp", ms)
OffsetSpec = tuple[str, int]


def _erlang_term(value: Any) -> str:
    """A decoded field value as RabbitMQ prints it with ~p in its error texts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, bytes, bytearray)):
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if all(32 <= b < 127 for b in raw):
            return '<<"' + raw.decode().replace("\\", "\\\\").replace('"', '\\"') + '">>'
        return "<<" + ",".join(str(b) for b in raw) + ">>"
    if isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        number = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        return f"{{{-int(exponent)},{number}}}"
    if value is None:
        return "undefined"
    if isinstance(value, datetime.datetime):
        return str(int(value.timestamp()))
    return str(value)


def parse_offset_spec(arguments: dict[str, Any], queue: str, vhost: str) -> OffsetSpec:
    """Where a consumer with these arguments starts (RabbitMQ's parse_offset_arg); raises
    ChannelError(406) for a value it refuses. The default is ``next``."""
    if "x-stream-offset" not in arguments:
        return ("next", 0)
    value = arguments["x-stream-offset"]
    if isinstance(value, (str, bytes, bytearray)):
        text = bytes(value).decode("utf-8", "replace") if not isinstance(value, str) else value
        if text in ("first", "last", "next"):
            return (text, 0)
        if isinstance(value, str):
            interval = parse_max_age(text)
            if interval is not None:
                return ("timestamp", int(time.time() * 1000) - interval)
    elif isinstance(value, datetime.datetime):
        # an AMQP timestamp counts seconds; RabbitMQ takes it as V * 1000 ms
        return ("timestamp", int(value.timestamp()) * 1000)
    elif isinstance(value, int) and not isinstance(value, bool):
        return ("offset", value)
    raise ChannelError(
        PRECONDITION_FAILED,
        f"invalid arg 'x-stream-offset' for queue '{queue}' in vhost '{vhost}': "
        f"{{invalid_stream_offset_arg,{{{amqp_type_name(value)},{_erlang_term(value)}}}}}")


def check_stream_consume(arguments: dict[str, Any], queue: str, vhost: str, prefetch: int,
                         no_ack: bool, channel_prefetch: int) -> OffsetSpec:
    """Everything RabbitMQ checks before a consumer attaches to a stream, in its order."""
    spec = parse_offset_spec(arguments, queue, vhost)
    where = f"queue '{queue}' in vhost '{vhost}'"
    for key in arguments:
        if key in FOREIGN_CONSUMER_ARGS:
            raise ChannelError(PRECONDITION_FAILED,
                               f"invalid arg '{key}' for {where} of queue type "
                               "rabbit_stream_queue")
    if prefetch == 0:
        # RabbitMQ 3.11+'s text; 3.10 printed "for 'queue 'q' in vhost 'v''"
        raise ChannelError(PRECONDITION_FAILED,
                           f"consumer prefetch count is not set for stream {where}")
    if no_ack:
        raise ConnectionError_(NOT_IMPLEMENTED,
                               f"automatic acknowledgement not supported by stream queues {where}")
    if channel_prefetch:
        raise ConnectionError_(NOT_IMPLEMENTED, f"{where} does not support global qos")
    return spec

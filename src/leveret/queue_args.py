"""Queue arguments (``x-...``): validated at declare time with RabbitMQ's error texts, parsed
once into ``QueueOptions`` so the per-message path never looks at the arguments table.

Reference: rabbitmq.com/docs/queues#optional-arguments, /docs/ttl, /docs/dlx,
/docs/maxlength, /docs/priority, /docs/consumers#single-active-consumer. The error texts are
those RabbitMQ 3.10 sends (checked against a running one).
"""

from __future__ import annotations

import datetime
import decimal
from dataclasses import dataclass
from typing import Any

from .errors import PRECONDITION_FAILED, ChannelError

OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
DEAD_LETTER_STRATEGIES = ("at-most-once", "at-least-once")
LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders")

# The arguments each queue type takes (RabbitMQ 3.10's rabbit_*_queue:capabilities/0). An
# argument another type takes is refused: "invalid arg ... of queue type rabbit_quorum_queue".
# Arguments no type lists (x-foo, x-consumer-timeout) are accepted by all.
QUEUE_TYPE_ARGUMENT_LISTS: dict[str, tuple[str, ...]] = {
    "classic": (
        "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
        "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
        "x-queue-version", "x-single-active-consumer", "x-queue-type",
        "x-queue-master-locator"),
    "quorum": (
        "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy",
        "x-expires", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
        "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
        "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
        "x-queue-leader-locator"),
    "stream": (
        "x-max-length-bytes", "x-queue-type", "x-max-age", "x-stream-max-segment-size-bytes",
        "x-initial-cluster-size", "x-queue-leader-locator"),
}
QUEUE_TYPE_ARGUMENTS = {t: frozenset(args) for t, args in QUEUE_TYPE_ARGUMENT_LISTS.items()}
_TYPED_ARGUMENTS = frozenset().union(*QUEUE_TYPE_ARGUMENTS.values())
MAX_PRIORITY = 255
# RabbitMQ's ?MAX_EXPIRY_TIMER: TTLs and x-expires above ten years are refused (value_too_large)
MAX_EXPIRY = 315_360_000_000


@dataclass(frozen=True)
class QueueOptions:
    message_ttl: int | None = None  # ms
    expires: int | None = None  # ms
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = "drop-head"
    max_priority: int | None = None
    single_active_consumer: bool = False
    consumer_timeout: int | None = None  # ms, x-consumer-timeout (RabbitMQ 3.12+)
    queue_type: str = "classic"  # x-queue-type
    delivery_limit: int | None = None  # quorum: x-delivery-limit

    @property
    def plain(self) -> bool:
        """No feature that needs work per message."""
        return (self.message_ttl is None and self.max_length is None
                and self.max_length_bytes is None and self.max_priority is None)


def amqp_type_name(value: Any) -> str:
    """The field-table type name RabbitMQ would report for a decoded value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, (str, bytes)):
        return "longstr"
    if isinstance(value, bytearray):
        return "binary"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    return "void"


def queue_type(arguments: dict[str, Any]) -> str:
    """The x-queue-type a declare asks for (unchecked; absent: classic)."""
    qtype = arguments.get("x-queue-type") or "classic"
    if isinstance(qtype, bytes):
        qtype = qtype.decode("utf-8", "replace")
    return qtype if isinstance(qtype, str) else "classic"


def parse_queue_arguments(arguments: dict[str, Any], queue: str, vhost: str) -> QueueOptions:
    """Validate and parse; raises ChannelError(406) with RabbitMQ's text on a bad value.

    RabbitMQ's order (rabbit_amqqueue:check_declare_arguments): x-queue-type, then the values
    of the arguments the queue type takes, then arguments that belong to another type.
    """

    def fail(key: str, reason: str) -> ChannelError:
        return ChannelError(PRECONDITION_FAILED,
                            f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {reason}")

    given = arguments
    if "x-queue-type" in given:
        qtype = given["x-queue-type"]
        if isinstance(qtype, bytes):
            qtype = qtype.decode("utf-8", "replace")
        if not isinstance(qtype, str):
            raise fail("x-queue-type", f"{{unacceptable_type,{amqp_type_name(qtype)}}}")
        if qtype not in QUEUE_TYPE_ARGUMENTS:
            raise fail("x-queue-type", f"\"unsupported queue type '{qtype}'\"")
    else:
        qtype = "classic"
    takes = QUEUE_TYPE_ARGUMENTS[qtype]
    # only the type's own arguments are checked for their values
    arguments = {k: v for k, v in given.items() if k in takes or k not in _TYPED_ARGUMENTS}

    def integer(key: str, minimum: int, maximum: int | None = None,
                too_large: int | None = None) -> int | None:
        if key not in arguments:
            return None
        v = arguments[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise fail(key, f'"expected integer, got {amqp_type_name(v)}"')
        if v < 0 and minimum >= 0:
            raise fail(key, f"{{value_negative,{v}}}")
        if v < minimum:
            raise fail(key, f"{{value_zero,{v}}}")
        if maximum is not None and v > maximum:
            raise fail(key, f"{{max_value_exceeded,{v}}}")
        if too_large is not None and v > too_large:
            raise fail(key, f"{{value_too_large,{v}}}")
        return v

    def string(key: str) -> str | None:
        if key not in arguments:
            return None
        v = arguments[key]
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if not isinstance(v, str):
            raise ChannelError(
                PRECONDITION_FAILED,
                f"invalid type '{amqp_type_name(v)}' for arg '{key}' in queue '{queue}' in "
                f"vhost '{vhost}'")
        return v

    ttl = integer("x-message-ttl", 0, too_large=MAX_EXPIRY)
    expires = integer("x-expires", 1, too_large=MAX_EXPIRY)
    max_length = integer("x-max-length", 0)
    max_bytes = integer("x-max-length-bytes", 0)
    max_priority = integer("x-max-priority", 0, MAX_PRIORITY)
    dlx = string("x-dead-letter-exchange")
    dlrk = string("x-dead-letter-routing-key")
    if dlrk is not None and dlx is None:
        raise fail("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
    overflow = arguments.get("x-overflow", "drop-head")
    if isinstance(overflow, bytes):
        overflow = overflow.decode("utf-8", "replace")
    if not isinstance(overflow, str):
        raise fail("x-overflow", f"{{unacceptable_type,{amqp_type_name(overflow)}}}")
    if overflow not in OVERFLOW_MODES:
        raise fail("x-overflow", "invalid_overflow")
    sac = arguments.get("x-single-active-consumer", False)
    if not isinstance(sac, bool):
        raise fail("x-single-active-consumer", f"{{unacceptable_type,{amqp_type_name(sac)}}}")
    mode = string("x-queue-mode")
    if mode is not None and mode not in ("default", "lazy"):
        raise fail("x-queue-mode", f"\"unsupported queue mode '{mode}'\"")
    strategy = string("x-dead-letter-strategy")
    if strategy is not None and strategy not in DEAD_LETTER_STRATEGIES:
        raise fail("x-dead-letter-strategy", "invalid_dlx_strategy")
    integer("x-max-in-memory-length", 0)
    integer("x-max-in-memory-bytes", 0)
    integer("x-quorum-initial-group-size", 1)
    integer("x-initial-cluster-size", 1)
    locator = string("x-queue-leader-locator")
    if locator is not None and locator not in LEADER_LOCATORS:
        raise fail("x-queue-leader-locator", "invalid_queue_locator_arg")
    for key in given:
        if key in _TYPED_ARGUMENTS and key not in takes:
            raise ChannelError(PRECONDITION_FAILED, f"invalid arg '{key}' for queue '{queue}' in "
                               f"vhost '{vhost}' of queue type rabbit_{qtype}_queue")
    delivery_limit = None
    if qtype == "quorum":
        # x-delivery-limit is not validated by RabbitMQ: a non-integer limits nothing
        limit = arguments.get("x-delivery-limit")
        if isinstance(limit, int) and not isinstance(limit, bool):
            delivery_limit = limit
        if overflow == "reject-publish-dlx":
            # a quorum queue takes it and falls back to drop-head (rabbit_quorum_queue:overflow)
            overflow = "drop-head"
    # x-consumer-timeout (RabbitMQ 3.12+) is not validated there: a value that is not an
    # integer is ignored (rabbit_channel only applies integer timeouts)
    consumer_timeout = arguments.get("x-consumer-timeout")
    if isinstance(consumer_timeout, bool) or not isinstance(consumer_timeout, int):
        consumer_timeout = None
    return QueueOptions(ttl, expires, dlx, dlrk, max_length, max_bytes, overflow, max_priority,
                        sac, consumer_timeout=consumer_timeout, queue_type=qtype,
                        delivery_limit=delivery_limit)


def parse_expiration(value: str) -> int:
    """The per-message ``expiration`` property in ms; 406 with RabbitMQ's text when invalid.

    RabbitMQ parses it with Erlang's ``string:to_integer``: an optional sign, then digits.
    """
    def fail(reason: str) -> ChannelError:
        return ChannelError(PRECONDITION_FAILED, f"invalid expiration '{value}': {reason}")

    digits = value[1:] if value[:1] in ("-", "+") else value
    n = 0
    while n < len(digits) and digits[n].isascii() and digits[n].isdigit():
        n += 1
    if n == 0:
        raise fail("no_integer")
    if n < len(digits):
        raise fail(f'{{leftover_string,"{digits[n:]}"}}')
    ms = int(value)
    if ms < 0:
        raise fail(f"{{value_negative,{ms}}}")
    if ms > MAX_EXPIRY:
        raise fail(f"{{value_too_large,{ms}}}")
    return ms

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


def parse_queue_arguments(arguments: dict[str, Any], queue: str, vhost: str) -> QueueOptions:
    """Validate and parse; raises ChannelError(406) with RabbitMQ's text on a bad value."""

    def fail(key: str, reason: str) -> ChannelError:
        return ChannelError(PRECONDITION_FAILED,
                            f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {reason}")

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
    qtype = string("x-queue-type")
    # quorum and stream queues are accepted and behave as classic queues: enough for development
    if qtype is not None and qtype not in ("classic", "quorum", "stream"):
        raise fail("x-queue-type", f"\"unsupported queue type '{qtype}'\"")
    # x-consumer-timeout (RabbitMQ 3.12+) is not validated there: a value that is not an
    # integer is ignored (rabbit_channel only applies integer timeouts)
    consumer_timeout = arguments.get("x-consumer-timeout")
    if isinstance(consumer_timeout, bool) or not isinstance(consumer_timeout, int):
        consumer_timeout = None
    return QueueOptions(ttl, expires, dlx, dlrk, max_length, max_bytes, overflow, max_priority,
                        sac, consumer_timeout=consumer_timeout)


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

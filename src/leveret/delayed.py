"""The ``x-delayed-message`` exchange type of RabbitMQ's rabbitmq_delayed_message_exchange plugin
(github.com/rabbitmq/rabbitmq-delayed-message-exchange; RabbitMQ does not ship it, MassTransit,
NServiceBus and many job libraries need it).

What the plugin does, and so what this does (tests/test_delayed.py):

* Declared with ``x-delayed-type``, the exchange type whose routing it uses (direct, fanout,
  topic, headers here). Missing or not a string: 406 "Invalid argument, 'x-delayed-type' must be
  an existing exchange type"; ``x-delayed-message`` itself: 406 "Invalid argument,
  'x-delayed-message' can't be used for 'x-delayed-type'"; an unknown type: 503 "unknown exchange
  type" (a connection error, as RabbitMQ's check_type). A redeclare compares only what any
  exchange compares (type, flags, alternate-exchange), not ``x-delayed-type``.
* A message with an ``x-delay`` header of more than 0 and at most 2^32-1 ms waits that long,
  then is routed by the delayed type's rules through the bindings as they are then, with
  ``x-delay`` replaced by minus the delay (a signed int), so it is not delayed again on its
  way through exchange-to-exchange bindings. Integer types are taken as they are, floats and
  decimals truncated, strings of digits converted; other types, a missing header, 0 or a
  negative delay, or more than 2^32-1: routed at once. (A string that is not a number crashed
  the plugin's channel; here it is routed at once too.)
* At publish time a delayed message routes nowhere: with ``mandatory`` it comes back at once as
  NO_ROUTE (plugin issue #7), an alternate exchange receives it at once (issue #36), and a
  publisher confirm is sent at once. When it is routed later nobody hears of it.
* The plugin keeps every delayed message on disk; Leveret keeps persistent ones (delivery_mode
  2) on durable delayed exchanges (``store/delayed.py``); after a restart they are routed when
  due, at once if the time passed while the broker was down.
* One timer per exchange, for its soonest message; the messages wait in a heap.
* Deleting the exchange drops its delayed messages (the plugin would route them, when due,
  through whatever bindings an exchange of the same name then has).
"""

from __future__ import annotations

import asyncio
import decimal
import heapq
import itertools
import re
import struct
import time
from typing import TYPE_CHECKING, Any

from .deadletter import join_properties, join_table, split_properties, split_table
from .errors import COMMAND_INVALID, PRECONDITION_FAILED, ChannelError, ConnectionError_
from .exchange import EXCHANGE_TYPES, KINDS, Binding, Exchange
from .message import Message

if TYPE_CHECKING:
    from .exchange import Destination
    from .store.delayed import DelayedLog
    from .vhost import VirtualHost

DELAYED_TYPE = "x-delayed-message"
MAX_DELAY = 4_294_967_295  # ?ERL_MAX_T: the longest Erlang timer, in ms
_INTEGER = re.compile(r"[+-]?[0-9]+")
_HEADERS_FLAG = 0x20  # first property byte: the headers flag
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_order = itertools.count()


def delay_of(message: Message) -> int:
    """The ``x-delay`` (ms) of a message, as the plugin reads it; 0 when it is not delayed."""
    raw = message.raw_props
    if not raw or not raw[0] & _HEADERS_FLAG or b"x-delay" not in raw:
        return 0
    value = (message.headers or {}).get("x-delay")
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        delay = value
    elif isinstance(value, (float, decimal.Decimal)):
        delay = int(value)
    elif isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if not _INTEGER.fullmatch(text):
            # the plugin's channel crashed here (binary_to_integer); routing at once is what
            # it does for every other value it cannot use, and this runs for dead letters too
            return 0
        delay = int(text)
    else:
        return 0
    return delay if 0 < delay <= MAX_DELAY else 0


def _swapped(message: Message, delay: int) -> Message:
    """The message as the plugin routes it when due: ``x-delay`` is minus the delay."""
    props = split_properties(message.raw_props)
    table = split_table(props[2])
    table[b"x-delay"] = (b"I" + _I32.pack(-delay) if delay <= 2**31
                         else b"l" + _I64.pack(-delay))
    props[2] = join_table(table.items())
    out = Message(message.exchange, message.routing_key, join_properties(props), message.body,
                  message.delivery_mode, message.priority, message.expiration)
    out.ttl = message.ttl
    out.extra_routing_keys = message.extra_routing_keys
    return out


class DelayedMessageExchange(Exchange):
    """An ``x-delayed-message`` exchange: routes as its ``x-delayed-type`` once a message's
    ``x-delay`` has passed."""

    kind = DELAYED_TYPE

    def __init__(self, vhost: VirtualHost, name: str, durable: bool = False,
                 auto_delete: bool = False, internal: bool = False,
                 arguments: dict[str, Any] | None = None) -> None:
        arguments = dict(arguments or {})
        delayed_type = arguments.get("x-delayed-type")
        if isinstance(delayed_type, bytes):
            delayed_type = delayed_type.decode("utf-8", "replace")
        if not isinstance(delayed_type, str):
            raise ChannelError(PRECONDITION_FAILED, "Invalid argument, 'x-delayed-type' must be "
                                                    "an existing exchange type")
        if delayed_type == DELAYED_TYPE:
            raise ChannelError(PRECONDITION_FAILED, "Invalid argument, 'x-delayed-message' "
                                                    "can't be used for 'x-delayed-type'")
        if delayed_type not in EXCHANGE_TYPES:
            raise ConnectionError_(COMMAND_INVALID, f"unknown exchange type '{delayed_type}'")
        super().__init__(name, durable, auto_delete, internal, arguments)
        self.vhost = vhost
        # the delayed type routes; both share one bindings table
        self.inner = KINDS[delayed_type](name, durable, auto_delete, internal, arguments)
        self.inner.bindings = self.bindings
        self._heap: list[tuple[float, int, Message, int, int]] = []  # due, order, msg, delay, id
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._log: DelayedLog | None = None
        if durable and vhost.store is not None:
            from .store.delayed import delayed_log

            self._log = delayed_log(vhost.store)
            now_ms = time.time() * 1000
            for stored in self._log.claim(vhost.name, name):
                self._push(stored.message, stored.delay,
                           max(0.0, stored.due_ms - now_ms) / 1000.0, stored.id)

    @property
    def messages_delayed(self) -> int:
        """Messages waiting for their delay (the plugin's ``messages_delayed``)."""
        return len(self._heap)

    # ------------------------------------------------------------------ bindings and routing

    def _bind(self, binding: Binding) -> None:
        self.inner._bind(binding)
        self.inner._cache.clear()

    def _unbind(self, binding: Binding) -> None:
        self.inner._unbind(binding)
        self.inner._cache.clear()

    def _route(self, routing_key: str) -> list[Destination]:
        return self.inner._route(routing_key)

    def route(self, message: Message) -> list[Destination]:
        delay = delay_of(message)
        if delay:
            self._delay(message, delay)
            return []
        return self.inner.route(message)

    def route_all(self, message: Message) -> list[Destination]:
        delay = delay_of(message)
        if delay:
            self._delay(message, delay)
            return []
        return self.inner.route_all(message)

    # ------------------------------------------------------------------ waiting

    def _delay(self, message: Message, delay: int) -> None:
        record_id = 0
        if self._log is not None and message.delivery_mode == 2:
            record_id = self._log.add(int(time.time() * 1000) + delay, delay, self.vhost.name,
                                      message)
        self._push(message, delay, delay / 1000.0, record_id)

    def _push(self, message: Message, delay: int, wait: float, record_id: int) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + wait
        heapq.heappush(self._heap, (due, next(_order), message, delay, record_id))
        if self._timer is None or due < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = due
            self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, message, delay, record_id = heapq.heappop(heap)
            if record_id and self._log is not None:
                self._log.done(record_id)
            due = _swapped(message, delay)
            for queue in self.vhost.route(self, due):
                queue.push(due)
        if heap:
            self._timer_at = heap[0][0]
            self._timer = loop.call_at(self._timer_at, self._fire)

    def removed(self) -> None:
        """The exchange was deleted: its delayed messages go with it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._log is not None:
            for _, _, _, _, record_id in self._heap:
                if record_id:
                    self._log.done(record_id)
        self._heap.clear()

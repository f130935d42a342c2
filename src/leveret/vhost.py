"""The exchanges, queues and bindings of one virtual host, with RabbitMQ's rules for each."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .delayed import DELAYED_TYPE, DelayedMessageExchange
from .errors import (
    ACCESS_REFUSED,
    COMMAND_INVALID,
    NOT_FOUND,
    PRECONDITION_FAILED,
    RESOURCE_LOCKED,
    ChannelError,
    ConnectionError_,
)
from .exchange import EXCHANGE_TYPES, KINDS, Binding, Exchange
from .memory import MemoryMonitor
from .permissions import CONFIGURE, READ, WRITE
from .queue import Queue
from .queue_args import amqp_type_name, queue_type
from .stream_args import is_stream

if TYPE_CHECKING:
    from .direct_reply import ReplyConsumer
    from .message import Message
    from .permissions import Authorizer
    from .store import Store

# rabbitmq.com/docs/exchanges: these exist in every virtual host
PREDECLARED = (
    ("", "direct"),
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
    ("amq.rabbitmq.trace", "topic"),
)
# internal (clients cannot publish to it): RabbitMQ's firehose tracer publishes there when
# tracing is on (rabbitmq.com/docs/firehose); Leveret has no tracer, so it stays silent
INTERNAL_PREDECLARED = ("amq.rabbitmq.trace",)

# Queue arguments RabbitMQ compares on redeclare (rabbit_amqqueue:declare_args/0); any other
# argument is kept but not compared, as RabbitMQ does.
COMPARED_QUEUE_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class VirtualHost:
    """A namespace of exchanges and queues (rabbitmq.com/docs/vhosts)."""

    def __init__(self, name: str, store: Store | None = None,
                 memory: MemoryMonitor | None = None) -> None:
        self.name = name
        self.store = store
        self.memory = memory if memory is not None else MemoryMonitor()
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        # imported here, not at the top: queue_types imports the queue types (quorum, stream),
        # which import queue, which (compiled) imports this module's type as it loads
        from .queue_types import new_queue

        self.queue_factory: Callable[..., Queue] = new_queue
        # direct reply-to: each channel's reply consumer by its address (direct_reply.py)
        self.reply_consumers: dict[str, ReplyConsumer] = {}
        # queue churn (RabbitMQ's overview churn_rates)
        self.stat_queue_declared = 0
        self.stat_queue_created = 0
        self.stat_queue_deleted = 0
        # messages dead-lettered, by (reason, RabbitMQ's dead_letter_strategy: "at_most_once"
        # with a dead-letter exchange, "disabled" without: dropped)
        self.stat_dead_lettered: dict[tuple[str, str], int] = {}
        for ename, kind in PREDECLARED:
            self.exchanges[ename] = KINDS[kind](ename, durable=True,
                                                internal=ename in INTERNAL_PREDECLARED)
        self.default_exchange = self.exchanges[""]

    def __repr__(self) -> str:
        return f"<VirtualHost {self.name!r}>"

    def _where(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.name}'"

    # ------------------------------------------------------------------ exchanges

    def get_exchange(self, name: str) -> Exchange:
        ex = self.exchanges.get(name)
        if ex is None:
            raise ChannelError(NOT_FOUND, f"no {self._where('exchange', name)}")
        return ex

    def declare_exchange(
        self,
        name: str,
        kind: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
        authz: Authorizer | None = None,
    ) -> Exchange:
        """Declare (or with ``passive`` look up) an exchange, in rabbit_channel's order: the
        type, the default exchange, the configure permission (``authz``: the user's, None for
        the broker itself), then for a new exchange the reserved prefix and the alternate
        exchange's permissions (read here, write there), else equivalence."""
        arguments = arguments or {}
        if passive:
            if name == "":
                raise ChannelError(ACCESS_REFUSED,
                                   "operation not permitted on the default exchange")
            return self.get_exchange(name)
        if kind not in EXCHANGE_TYPES and kind != DELAYED_TYPE:
            # RabbitMQ treats an unknown exchange type as a hard error (503)
            raise ConnectionError_(COMMAND_INVALID, f"unknown exchange type '{kind}'")
        if name == "":
            raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        if authz is not None:
            authz.check(CONFIGURE, "exchange", name)
        existing = self.exchanges.get(name)
        if existing is None:
            # the prefix is reserved for creation only: amq.direct may be redeclared as it is
            if name.startswith("amq."):
                raise ChannelError(
                    ACCESS_REFUSED, f"exchange name '{name}' contains reserved prefix 'amq.*'"
                )
            alternate = arguments.get("alternate-exchange")
            if authz is not None and isinstance(alternate, (str, bytes)):
                authz.check(READ, "exchange", name)
                authz.check(WRITE, "exchange", _text(alternate))
        else:
            if existing.kind != kind:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"inequivalent arg 'type' for {self._where('exchange', name)}: "
                    f"received '{kind}' but current is '{existing.kind}'",
                )
            for attr, value in (("durable", durable), ("auto_delete", auto_delete),
                                ("internal", internal)):
                if getattr(existing, attr) != value:
                    raise ChannelError(
                        PRECONDITION_FAILED,
                        f"inequivalent arg '{attr}' for {self._where('exchange', name)}: "
                        f"received '{_bool(value)}' but current is "
                        f"'{_bool(getattr(existing, attr))}'",
                    )
            ae_new, ae_old = arguments.get("alternate-exchange"), existing.arguments.get(
                "alternate-exchange")
            if ae_new != ae_old:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"inequivalent arg 'alternate-exchange' for {self._where('exchange', name)}: "
                    f"received {ae_new!r} but current is {ae_old!r}",
                )
            return existing
        ex: Exchange
        if kind == DELAYED_TYPE:  # the delayed message plugin's type (delayed.py)
            ex = DelayedMessageExchange(self, name, durable, auto_delete, internal, arguments)
        else:
            ex = KINDS[kind](name, durable, auto_delete, internal, arguments)
        self.exchanges[name] = ex
        if durable and self.store is not None:
            self.store.save_exchange(self, ex)
        return ex

    def delete_exchange(self, name: str, if_unused: bool = False,
                        authz: Authorizer | None = None) -> None:
        if name == "":
            raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        if name.startswith("amq."):
            raise ChannelError(ACCESS_REFUSED, f"deletion of system exchange '{name}' in vhost "
                                               f"'{self.name}' not allowed")
        if authz is not None:
            authz.check(CONFIGURE, "exchange", name)
        ex = self.exchanges.get(name)
        if ex is None:
            # RabbitMQ 3.x: deleting a missing exchange is not an error
            return
        if if_unused and (ex.bindings or self._bindings_into(ex)):
            raise ChannelError(PRECONDITION_FAILED, f"{self._where('exchange', name)} in use")
        self._remove_exchange(ex)

    def _bindings_into(self, destination: object) -> list[tuple[Exchange, Binding]]:
        return [(src, b) for src in self.exchanges.values() for b in src.bindings_to(destination)]

    def _remove_exchange(self, ex: Exchange) -> None:
        ex.deleted = True
        ex.removed()
        self.exchanges.pop(ex.name, None)
        for b in list(ex.bindings):
            ex.remove_binding(b)
            if self.store is not None and ex.durable:
                self.store.delete_binding(self, ex, b)
            dest = b.destination
            if isinstance(dest, Exchange):
                self._maybe_auto_delete(dest)
        for src, b in self._bindings_into(ex):
            src.remove_binding(b)
            self._maybe_auto_delete(src)
        if ex.durable and self.store is not None:
            self.store.delete_exchange(self, ex)

    def _maybe_auto_delete(self, ex: Exchange) -> None:
        # auto-delete exchanges go when their last binding (as a source) goes
        if ex.auto_delete and not ex.bindings and not ex.deleted:
            self._remove_exchange(ex)

    # ------------------------------------------------------------------ queues

    def get_queue(self, name: str, owner: object | None = None) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise ChannelError(NOT_FOUND, f"no {self._where('queue', name)}")
        if q.exclusive_owner is not None and q.exclusive_owner is not owner:
            raise ChannelError(
                RESOURCE_LOCKED,
                f"cannot obtain exclusive access to locked {self._where('queue', name)}. It could "
                "be originally declared on another connection or the exclusive property value does "
                "not match that of the original declaration.",
            )
        return q

    def declare_queue(
        self,
        name: str,
        owner: object,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        authz: Authorizer | None = None,
        any_name: bool = False,
    ) -> tuple[Queue, bool]:
        """Declare (or with ``passive`` look up) a queue; returns (queue, created). In
        rabbit_channel's order: the name (server-named, or not ``amq.*``), the configure
        permission on it (``authz``: the user's, None for the broker itself), then equivalence
        with an existing queue, or for a new one read on it and write on its dead-letter
        exchange, then its arguments. ``any_name``: the broker itself restores the queue
        (a definitions import: rabbit_amqqueue:declare knows no reserved prefix, so a
        server-named ``amq.gen-*`` queue comes back under its name)."""
        arguments = arguments or {}
        self.stat_queue_declared += 1
        if passive:
            q = self.get_queue(name, owner)
            q.touch()
            return q, False
        if not name:
            if is_stream(arguments) or queue_type(arguments) == "quorum":
                kind = "stream" if is_stream(arguments) else "quorum"
                raise ChannelError(PRECONDITION_FAILED,
                                   "Cannot declare a server-named queue for type "
                                   f"rabbit_{kind}_queue")
            name = "amq.gen-" + secrets.token_urlsafe(16)
        elif name.startswith("amq.") and not any_name:
            raise ChannelError(
                ACCESS_REFUSED, f"queue name '{name}' contains reserved prefix 'amq.*'"
            )
        if authz is not None:
            authz.check(CONFIGURE, "queue", name)
        existing = self.queues.get(name)
        if existing is not None:
            self.get_queue(name, owner)  # exclusivity check (405)
            # the exclusive flag must match even on the owning connection (RabbitMQ 3.x)
            if (existing.exclusive_owner is None) == exclusive:
                raise ChannelError(
                    RESOURCE_LOCKED,
                    f"cannot obtain exclusive access to locked {self._where('queue', name)}. It "
                    "could be originally declared on another connection or the exclusive property "
                    "value does not match that of the original declaration.",
                )
            for attr, value in (("durable", durable), ("auto_delete", auto_delete)):
                if getattr(existing, attr) != value:
                    raise ChannelError(
                        PRECONDITION_FAILED,
                        f"inequivalent arg '{attr}' for {self._where('queue', name)}: received "
                        f"'{_bool(value)}' but current is '{_bool(getattr(existing, attr))}'",
                    )
            # a queue type compares its own arguments (a stream ignores a classic queue's)
            compared = existing.compared_arguments
            for key in compared or COMPARED_QUEUE_ARGS:
                new, old = arguments.get(key), existing.arguments.get(key)
                if key == "x-queue-type" and compared is None:  # absent means classic
                    new, old = new or "classic", old or "classic"
                if not _equivalent(new, old):
                    if new is None or old is None:
                        what = f"received {_describe(new)} but current is {_describe(old)}"
                    else:
                        what = f"received '{_erlang(new)}' but current is '{_erlang(old)}'"
                    raise ChannelError(
                        PRECONDITION_FAILED,
                        f"inequivalent arg '{key}' for {self._where('queue', name)}: {what}",
                    )
            existing.touch()
            return existing, False
        dlx = arguments.get("x-dead-letter-exchange")
        if authz is not None and isinstance(dlx, (str, bytes)):
            authz.check(READ, "queue", name)
            authz.check(WRITE, "exchange", _text(dlx))
        from .queue_types import parse_declare  # see __init__

        options = parse_declare(arguments, name, self.name, durable, exclusive, auto_delete)
        q = self.queue_factory(
            self, name, durable, owner if exclusive else None, auto_delete, arguments, options
        )
        self.queues[name] = q
        self.stat_queue_created += 1
        # every queue is bound to the default exchange by its own name (not listed as a binding)
        if durable and self.store is not None and not exclusive:
            self.store.save_queue(self, q)
        return q, True

    def delete_queue(self, queue: Queue, if_unused: bool = False, if_empty: bool = False) -> int:
        count = queue.check_delete(if_unused, if_empty)
        if queue.deleted:
            return 0
        queue.deleted = True
        self.stat_queue_deleted += 1
        self.queues.pop(queue.name, None)
        for src, b in self._bindings_into(queue):
            src.remove_binding(b)
            if self.store is not None and src.durable and queue.durable:
                self.store.delete_binding(self, src, b)
            self._maybe_auto_delete(src)
        for consumer in list(queue.consumers):
            consumer.channel.consumer_cancelled_by_server(consumer)
        queue.consumers.clear()
        queue.purge()
        queue.closed()
        if queue.durable and self.store is not None:
            self.store.delete_queue(self, queue)
        for hook in queue.on_delete:
            hook(queue)
        return count

    # ------------------------------------------------------------------ bindings

    def bind(self, source: Exchange, destination: Queue | Exchange, routing_key: str,
             arguments: dict[str, Any] | None) -> None:
        if source.name == "":
            raise ChannelError(
                ACCESS_REFUSED,
                "operation not permitted on the default exchange",
            )
        if isinstance(destination, Exchange) and destination.name == "":
            raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        source.validate_binding(arguments or {})
        binding = Binding(destination, routing_key, dict(arguments or {}))
        if source.add_binding(binding) and self.store is not None:
            if source.durable and getattr(destination, "durable", False):
                self.store.save_binding(self, source, binding)

    def unbind(self, source: Exchange, destination: Queue | Exchange, routing_key: str,
               arguments: dict[str, Any] | None) -> None:
        if source.name == "":
            raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        binding = Binding(destination, routing_key, dict(arguments or {}))
        if source.remove_binding(binding):
            if self.store is not None and source.durable:
                self.store.delete_binding(self, source, binding)
            self._maybe_auto_delete(source)

    # ------------------------------------------------------------------ routing

    def route(self, exchange: Exchange, message: Message) -> list[Queue | ReplyConsumer]:
        """The queues a message published to ``exchange`` reaches, each once.

        Follows exchange-to-exchange bindings (each exchange visited once, so binding loops
        terminate) and alternate exchanges when an exchange routes nowhere. A message with
        ``CC``/``BCC`` keys is routed by each of them too (rabbitmq.com/docs/sender-selected).
        """
        if message.extra_routing_keys:
            return self._route_all_keys(exchange, message)
        if exchange is self.default_exchange:
            q = self.queues.get(message.routing_key)
            if q is None and self.reply_consumers:  # a direct reply-to address
                reply = self.reply_consumers.get(message.routing_key)
                return [reply] if reply is not None else []
            return [q] if q is not None else []
        dests = exchange.route(message)
        if len(dests) == 1 and isinstance(dests[0], Queue):
            return dests  # type: ignore[return-value]
        if not dests and exchange.alternate_exchange is None:
            return []
        queues: dict[int, Queue] = {}
        self._collect(exchange, message, queues, {id(exchange)}, dests)
        return list(queues.values())

    def _default_route(self, key: str) -> Queue | ReplyConsumer | None:
        """The default exchange: the queue named ``key``, or a direct reply-to address (a
        reply goes straight to its requester's consumer, as RabbitMQ's route does)."""
        q = self.queues.get(key)
        if q is None and self.reply_consumers:
            return self.reply_consumers.get(key)
        return q

    def _route_all_keys(self, exchange: Exchange,
                        message: Message) -> list[Queue | ReplyConsumer]:
        if exchange is self.default_exchange:
            # every key names a queue (RabbitMQ's default exchange takes them all)
            found: dict[int, Queue | ReplyConsumer] = {}
            for key in (message.routing_key, *message.extra_routing_keys):
                q = self._default_route(key)
                if q is not None:
                    found.setdefault(id(q), q)
            return list(found.values())
        queues: dict[int, Queue] = {}
        self._collect(exchange, message, queues, {id(exchange)})
        return list(queues.values())

    def _collect(self, exchange: Exchange, message: Message, queues: dict[int, Queue],
                 visited: set[int], dests: list | None = None) -> None:
        if dests is None:
            dests = exchange.route_all(message)
        if not dests:
            # the alternate exchange takes a message the exchange's own bindings select nothing
            # for; one sent on to an exchange that routes nowhere is not re-routed (RabbitMQ's
            # rabbit_exchange:route1 looks only at the exchange's own result; checked with 3.10)
            ae_name = exchange.alternate_exchange
            if ae_name is not None:
                ae = self.exchanges.get(ae_name)
                if ae is not None and id(ae) not in visited:
                    visited.add(id(ae))
                    self._collect(ae, message, queues, visited)
            return
        for d in dests:
            if isinstance(d, Queue):
                queues.setdefault(id(d), d)
            elif id(d) not in visited:
                visited.add(id(d))
                self._collect(d, message, queues, visited)

    # ------------------------------------------------------------------ connections

    def connection_closed(self, owner: object) -> None:
        """Exclusive queues are deleted when their owning connection closes."""
        for q in [q for q in self.queues.values() if q.exclusive_owner is owner]:
            self.delete_queue(q)


def _equivalent(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a is None and b is None)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (bytes, bytearray)):
        a = bytes(a).decode("utf-8", "replace")
    if isinstance(b, (bytes, bytearray)):
        b = bytes(b).decode("utf-8", "replace")
    return bool(a == b)


def _describe(value: Any) -> str:
    """RabbitMQ's words for an argument when the other side lacks it."""
    if value is None:
        return "none"
    return f"the value '{_erlang(value)}' of type '{amqp_type_name(value)}'"


def _erlang(value: Any) -> str:
    """A value as RabbitMQ prints it in these texts (true/false, not True/False)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)

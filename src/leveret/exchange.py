"""Exchange kinds over the routing module: direct, fanout, topic, headers (and the default).

``route(message)`` returns the destinations an exchange's own bindings select: queues and,
for exchange-to-exchange bindings, other exchanges; the virtual host follows those and the
alternate exchange (rabbitmq.com/docs/e2e, /docs/ae).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from .errors import PRECONDITION_FAILED, ChannelError
from .queue_args import amqp_type_name
from .routing import HeadersMatcher, TopicTrie

if TYPE_CHECKING:
    from .message import Message
    from .queue import Queue

    Destination = Union["Queue", "Exchange"]  # noqa: UP007 (a runtime alias of forward refs)

EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
_CACHE_LIMIT = 4096


class Binding:
    """(source exchange, destination, routing key, arguments) — its identity, as in RabbitMQ."""

    __slots__ = ("destination", "routing_key", "arguments", "_key")

    def __init__(
        self, destination: Destination, routing_key: str, arguments: dict[str, Any]
    ) -> None:
        self.destination = destination
        self.routing_key = routing_key
        self.arguments = arguments
        self._key = (id(destination), routing_key, _freeze(arguments))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Binding) and self._key == other._key


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, bool):
        return ("bool", value)
    return value


class Exchange:
    """Base of every kind: bindings, attributes and a per-routing-key route cache."""

    kind = ""

    def __init__(
        self,
        name: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = dict(arguments or {})
        self.bindings: dict[Binding, Binding] = {}
        self.deleted = False
        self._cache: dict[str, list[Destination]] = {}
        # publishes in and routed on (RabbitMQ's exchange message_stats publish_in/publish_out)
        self.stat_publish_in = 0
        self.stat_publish_out = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def alternate_exchange(self) -> str | None:
        ae = self.arguments.get("alternate-exchange")
        return ae if isinstance(ae, str) else None

    def validate_binding(self, arguments: dict[str, Any]) -> None:
        """Refuse binding arguments this kind of exchange cannot use (406)."""

    def add_binding(self, binding: Binding) -> bool:
        if binding in self.bindings:
            return False
        self.bindings[binding] = binding
        self._bind(binding)
        self._cache.clear()
        return True

    def remove_binding(self, binding: Binding) -> bool:
        existing = self.bindings.pop(binding, None)
        if existing is None:
            return False
        self._unbind(existing)
        self._cache.clear()
        return True

    def bindings_to(self, destination: object) -> list[Binding]:
        return [b for b in self.bindings if b.destination is destination]

    def route(self, message: Message) -> list[Destination]:
        # route_key inlined: this runs for every publish
        key = message.routing_key
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._route(key)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    def route_key(self, key: str) -> list[Destination]:
        """The destinations of one routing key (cached)."""
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._route(key)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    def route_all(self, message: Message) -> list[Destination]:
        """``route`` by the routing key and by the message's ``CC``/``BCC`` keys
        (rabbitmq.com/docs/sender-selected): the union, each destination once."""
        dests = self.route(message)
        extra = message.extra_routing_keys
        if not extra:
            return dests
        seen = {id(d): d for d in dests}
        for key in extra:
            for d in self.route_key(key):
                seen.setdefault(id(d), d)
        return list(seen.values())

    def removed(self) -> None:
        """The exchange was deleted (a delayed exchange drops what it holds)."""

    # kinds override these
    def _bind(self, binding: Binding) -> None:
        pass

    def _unbind(self, binding: Binding) -> None:
        pass

    def _route(self, routing_key: str) -> list[Destination]:
        raise NotImplementedError


class DirectExchange(Exchange):
    kind = "direct"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._table: dict[str, dict[int, Destination]] = {}

    def _bind(self, binding: Binding) -> None:
        dests = self._table.setdefault(binding.routing_key, {})
        dests[id(binding.destination)] = binding.destination

    def _unbind(self, binding: Binding) -> None:
        if any(b.destination is binding.destination and b.routing_key == binding.routing_key
               for b in self.bindings):
            return  # still bound with other arguments
        dests = self._table.get(binding.routing_key)
        if dests is not None:
            dests.pop(id(binding.destination), None)
            if not dests:
                del self._table[binding.routing_key]

    def _route(self, routing_key: str) -> list[Destination]:
        dests = self._table.get(routing_key)
        return list(dests.values()) if dests else []


class FanoutExchange(Exchange):
    kind = "fanout"

    def _route(self, routing_key: str) -> list[Destination]:
        seen: dict[int, Destination] = {}
        for b in self.bindings:
            seen.setdefault(id(b.destination), b.destination)
        return list(seen.values())

    def route(self, message: Message) -> list[Destination]:
        hit = self._cache.get("")
        if hit is None:
            hit = self._cache[""] = self._route("")
        return hit

    def route_all(self, message: Message) -> list[Destination]:
        return self.route(message)  # a fanout exchange ignores every routing key


class TopicExchange(Exchange):
    kind = "topic"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trie = TopicTrie()

    def _bind(self, binding: Binding) -> None:
        self._trie.bind(binding.routing_key, binding.destination)

    def _unbind(self, binding: Binding) -> None:
        if any(b.destination is binding.destination and b.routing_key == binding.routing_key
               for b in self.bindings):
            return
        self._trie.unbind(binding.routing_key, binding.destination)

    def _route(self, routing_key: str) -> list[Destination]:
        return list(self._trie.match(routing_key))


class HeadersExchange(Exchange):
    kind = "headers"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._matcher = HeadersMatcher()

    def validate_binding(self, arguments: dict[str, Any]) -> None:
        # RabbitMQ's rabbit_exchange_type_headers:validate_binding, with its texts
        if "x-match" not in arguments:
            return
        value = arguments["x-match"]
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "surrogateescape")
        if isinstance(value, str):
            if value in X_MATCH_VALUES:
                return
            raise ChannelError(PRECONDITION_FAILED, f"Invalid x-match field value "
                               f"{_erlang_binary(value)}; expected all, any, all-with-x, or "
                               "any-with-x")
        raise ChannelError(PRECONDITION_FAILED, f"Invalid x-match field type "
                           f"{amqp_type_name(value)} (value {_erlang_term(value)}); expected "
                           "longstr")

    def _bind(self, binding: Binding) -> None:
        self._matcher.bind(binding.arguments, binding.destination)

    def _unbind(self, binding: Binding) -> None:
        # the matcher knows (arguments, destination); the same pair may still be bound with
        # another routing key, which RabbitMQ counts as a separate binding
        if any(b.destination is binding.destination and b._key[2] == binding._key[2]
               for b in self.bindings):
            return
        self._matcher.unbind(binding.arguments, binding.destination)

    def route(self, message: Message) -> list[Destination]:
        if not self.bindings:
            return []
        return list(self._matcher.match(message.headers))

    def route_all(self, message: Message) -> list[Destination]:
        return self.route(message)  # a headers exchange ignores every routing key


KINDS: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}


X_MATCH_VALUES = ("all", "any", "all-with-x", "any-with-x")


def _erlang_binary(text: str) -> str:
    """A binary as Erlang's ``~p`` prints it: ``<<"all">>``, or its bytes when not printable."""
    raw = text.encode("utf-8", "surrogateescape")
    if all(0x20 <= b < 0x7F for b in raw):
        return '<<"' + raw.decode().replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return "<<" + ",".join(str(b) for b in raw) + ">>"


def _erlang_term(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "undefined"
    return str(value)

"""A published message and its place in a queue.

A message is shared by every queue it is routed to; a ``QueueEntry`` is its place in one
queue. Properties stay in their wire form (``raw_props``) and are forwarded verbatim; they are
decoded only when something needs more than the fields the frame parser already extracted.
"""

from __future__ import annotations

from typing import Any

from . import frames


class Message:
    """A published message (body copied once, from the socket buffer); not changed once routed."""

    __slots__ = (
        "exchange",
        "routing_key",
        "raw_props",
        "body",
        "delivery_mode",
        "priority",
        "expiration",
        "_props",
        "persisted",
        "ttl",
        "extra_routing_keys",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        raw_props: bytes,
        body: bytes,
        delivery_mode: int = 0,
        priority: int = 0,
        expiration: str | None = None,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.raw_props = raw_props
        self.body = body
        self.delivery_mode = delivery_mode
        self.priority = priority
        self.expiration = expiration
        self._props: dict[str, Any] | None = None
        self.persisted = False
        self.ttl: int | None = None  # per-message TTL in ms (the expiration property)
        # the CC then BCC routing keys (sender_selected.py); the exchange routes by these too
        self.extra_routing_keys: tuple[str, ...] = ()

    def replace_raw_props(self, raw_props: bytes) -> None:
        """Set new wire properties (before the message is routed) and drop decoded ones."""
        self.raw_props = raw_props
        self._props = None

    @property
    def properties(self) -> dict[str, Any]:
        """The basic properties as a dict (decoded on first use)."""
        if self._props is None:
            self._props = frames.decode_properties(self.raw_props)
        return self._props

    @property
    def headers(self) -> dict[str, Any] | None:
        return self.properties.get("headers")

    @property
    def persistent(self) -> bool:
        return self.delivery_mode == 2

    @property
    def size(self) -> int:
        return len(self.body)


class QueueEntry:
    """One message's place in one queue: ``seq`` orders it, so a requeue finds its old spot."""

    __slots__ = ("seq", "message", "redelivered", "deadline", "store_id")

    def __init__(self, seq: int, message: Message, deadline: float = 0.0) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = False
        self.deadline = deadline  # monotonic time after which the entry expires, 0 = never
        self.store_id = 0

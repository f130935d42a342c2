"""A published message and its place in a queue.

A message is shared by every queue it is routed to. Its place in a queue (sequence number,
redelivered flag, deadline, store id) is a ``QueueEntry``, except in the first plain queue it
enters (no TTL, no length limit, not durable, as most are): there the message is its own entry
(``Message.claim``), so a queued message is one object and its body, not three. Properties stay
in their wire form (``raw_props``) and are forwarded verbatim; they are decoded only when
something needs more than the fields the frame parser already extracted.

Compiled in Cython's pure-Python mode (``message.pxd``): both classes are C structs that the
cycle collector does not track (their fields are strings, bytes, numbers and ``_Extra``, which
never points back at a message), so a queued 16-byte message costs about 150 bytes.
"""

from __future__ import annotations

from typing import Any

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

from . import frames


class _Extra:
    """What few messages have, kept out of ``Message`` so that most messages stay small."""

    __slots__ = ("expiration", "ttl", "props", "extra_routing_keys", "deadline", "store_id")

    def __init__(self) -> None:
        self.expiration: str | None = None
        self.ttl: int | None = None  # per-message TTL in ms (the expiration property)
        self.props: dict[str, Any] | None = None  # raw_props decoded, on first use
        # the CC then BCC routing keys (sender_selected.py); the exchange routes by these too
        self.extra_routing_keys: tuple[str, ...] = ()
        self.deadline = 0.0  # as an entry: monotonic time after which it expires, 0 = never
        self.store_id = 0  # as an entry: its record in the message store


@cython.no_gc
@cython.cclass
class Message:
    """A published message (body copied once, from the socket buffer); not changed once routed,
    but for its entry fields (``seq``, ``redelivered``, ``deadline``, ``store_id``) while it
    is its own entry in a queue."""

    __slots__ = ("exchange", "routing_key", "raw_props", "body", "_extra", "seq",
                 "delivery_mode", "priority", "persisted", "redelivered", "claimed")

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
        self.persisted = False
        self.redelivered = False
        self.claimed = False
        self.seq = 0
        self._extra: _Extra | None = None
        if expiration is not None:
            _more(self).expiration = expiration

    @property
    def message(self) -> Message:
        """As an entry: the message (itself)."""
        return self

    @property
    def expiration(self) -> str | None:
        extra = self._extra
        return None if extra is None else extra.expiration

    @property
    def ttl(self) -> int | None:
        """Per-message TTL in ms (the expiration property, parsed at publish)."""
        extra = self._extra
        return None if extra is None else extra.ttl

    @ttl.setter
    def ttl(self, value: int | None) -> None:
        if value is not None or self._extra is not None:
            _more(self).ttl = value

    @property
    def extra_routing_keys(self) -> tuple[str, ...]:
        """The CC then BCC routing keys (sender_selected.py)."""
        extra = self._extra
        return () if extra is None else extra.extra_routing_keys

    @extra_routing_keys.setter
    def extra_routing_keys(self, keys: tuple[str, ...]) -> None:
        if keys or self._extra is not None:
            _more(self).extra_routing_keys = keys

    @property
    def deadline(self) -> float:
        """As an entry: monotonic time after which it expires, 0 = never."""
        extra = self._extra
        return 0.0 if extra is None else extra.deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        if value or self._extra is not None:
            _more(self).deadline = value

    @property
    def store_id(self) -> int:
        """As an entry: its record in the message store, 0 = none."""
        extra = self._extra
        return 0 if extra is None else extra.store_id

    @store_id.setter
    def store_id(self, value: int) -> None:
        if value or self._extra is not None:
            _more(self).store_id = value

    def replace_raw_props(self, raw_props: bytes) -> None:
        """Set new wire properties (before the message is routed) and drop decoded ones."""
        self.raw_props = raw_props
        if self._extra is not None:
            self._extra.props = None

    @property
    def properties(self) -> dict[str, Any]:
        """The basic properties as a dict (decoded on first use)."""
        extra = _more(self)
        if extra.props is None:
            extra.props = frames.decode_properties(self.raw_props)
        return extra.props

    @property
    def headers(self) -> dict[str, Any] | None:
        return self.properties.get("headers")

    @property
    def persistent(self) -> bool:
        return self.delivery_mode == 2

    @property
    def size(self) -> int:
        return len(self.body)


def _more(message: Message) -> _Extra:
    """The message's ``_Extra``, made on first use."""
    extra = message._extra
    if extra is None:
        extra = message._extra = _Extra()
    return extra


def claim(message: Message, seq: int) -> Message | QueueEntry:
    """``message``'s entry in a queue, numbered ``seq``: the message itself the first time,
    a ``QueueEntry`` after that (another queue already uses its entry fields)."""
    if message.claimed:
        return QueueEntry(seq, message)
    message.claimed = True
    message.seq = seq
    return message


@cython.no_gc
@cython.cclass
class QueueEntry:
    """One message's place in one queue: ``seq`` orders it, so a requeue finds its old spot."""

    __slots__ = ("seq", "message", "redelivered", "deadline", "store_id")

    def __init__(self, seq: int, message: Message, deadline: float = 0.0) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = False
        self.deadline = deadline  # monotonic time after which the entry expires, 0 = never
        self.store_id = 0


# what a queue holds: a message in its first queue (``claim``), a QueueEntry elsewhere
Entry = Message | QueueEntry


def message_of(entry: Entry) -> Message:
    """The message of an entry (``entry.message``, without a Python attribute lookup when
    compiled)."""
    if isinstance(entry, Message):
        return entry
    return cython.cast(QueueEntry, entry).message


def ttl_of(message: Message) -> int | None:
    """``message.ttl``, without a Python attribute lookup when compiled."""
    extra = message._extra
    return None if extra is None else extra.ttl


def redelivered_of(entry: Entry) -> bool:
    """``entry.redelivered``, without a Python attribute lookup when compiled."""
    if isinstance(entry, Message):
        return entry.redelivered
    return cython.cast(QueueEntry, entry).redelivered

"""Pure-Python delivery-tag bookkeeping: the twin of ``_acks_c.pyx``.

A channel numbers its deliveries 1, 2, 3, ... Each one that awaits an acknowledgement is held
here with the item it stands for, in tag order, so that ``basic.ack(multiple)`` releases a
whole range from the front and a single ack releases one tag wherever it is.

Tags are ints; anything else (``1.0`` included) is an unknown tag, as in the compiled twin.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class UnknownDeliveryTag(KeyError):
    """The tag was never delivered on this channel, or is already settled."""


class DeliveryTags:
    """Outstanding delivery tags of one channel, in tag order."""

    __slots__ = ("_items", "_last")

    def __init__(self) -> None:
        self._items: OrderedDict[int, Any] = OrderedDict()
        self._last = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, int) and tag in self._items

    @property
    def last_tag(self) -> int:
        """The most recently issued tag (0 before the first)."""
        return self._last

    def next_tag(self) -> int:
        """Issue a tag that needs no acknowledgement (no-ack delivery)."""
        self._last += 1
        return self._last

    def push(self, item: Any) -> int:
        """Issue the next tag and hold ``item`` until it is settled; returns the tag."""
        self._last += 1
        self._items[self._last] = item
        return self._last

    def pop(self, tag: int) -> Any:
        """Settle one tag; raises UnknownDeliveryTag if it is not outstanding."""
        if isinstance(tag, int):
            try:
                return self._items.pop(tag)
            except KeyError:
                pass
        raise UnknownDeliveryTag(tag)

    def pop_upto(self, tag: int) -> list[Any]:
        """Settle every outstanding tag <= ``tag`` (0 means all), oldest first.

        Raises UnknownDeliveryTag when ``tag`` is non-zero and not outstanding, as RabbitMQ
        answers ``multiple=true`` with an unknown tag by closing the channel (406).
        """
        if tag == 0:
            return self.pop_all()
        items = self._items
        if not isinstance(tag, int) or tag not in items:
            raise UnknownDeliveryTag(tag)
        if tag == next(reversed(items)):
            return self.pop_all()  # the usual multiple ack: everything delivered so far
        count = 0
        for key in items:
            if key > tag:
                break
            count += 1
        popitem = items.popitem
        return [popitem(False)[1] for _ in range(count)]

    def pop_all(self) -> list[Any]:
        """Settle everything outstanding, oldest first."""
        out = list(self._items.values())
        self._items.clear()
        return out

    def items(self) -> list[tuple[int, Any]]:
        """Outstanding (tag, item) pairs, oldest first."""
        return list(self._items.items())

"""Pure-Python delivery-tag bookkeeping: the twin of ``_acks_c.pyx``.

A channel numbers its deliveries 1, 2, 3, ... Each one that awaits an acknowledgement is held
here with the item it stands for, in tag order, so that ``basic.ack(multiple)`` releases a
whole range from the front and a single ack releases one tag wherever it is.
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
        return tag in self._items

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
        try:
            return self._items.pop(tag)
        except KeyError:
            raise UnknownDeliveryTag(tag) from None

    def pop_upto(self, tag: int) -> list[Any]:
        """Settle every outstanding tag <= ``tag`` (0 means all), oldest first.

        Raises UnknownDeliveryTag when ``tag`` is non-zero and not outstanding, as RabbitMQ
        answers ``multiple=true`` with an unknown tag by closing the channel (406).
        """
        if tag == 0:
            return self.pop_all()
        if tag not in self._items:
            raise UnknownDeliveryTag(tag)
        out = []
        items = self._items
        while items:
            first = next(iter(items))
            if first > tag:
                break
            out.append(items.popitem(last=False)[1])
        return out

    def pop_all(self) -> list[Any]:
        """Settle everything outstanding, oldest first."""
        out = list(self._items.values())
        self._items.clear()
        return out

    def items(self) -> list[tuple[int, Any]]:
        """Outstanding (tag, item) pairs, oldest first."""
        return list(self._items.items())

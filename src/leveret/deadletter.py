"""Dead-lettering (rabbitmq.com/docs/dlx): republish a message that was rejected, expired or
pushed out by a length limit to the queue's dead-letter exchange, with the ``x-death`` header
RabbitMQ builds.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from ._frames_common import LongInt

if TYPE_CHECKING:
    from .message import Message
    from .queue import Queue


def dead_letter(queue: Queue, message: Message, reason: str) -> None:
    """Send ``message`` from ``queue`` to its dead-letter exchange (dropped if there is none).

    ``reason`` is ``rejected``, ``expired`` or ``maxlen``.
    """
    opts = queue.options
    if opts.dead_letter_exchange is None:
        return
    vhost = queue.vhost
    exchange = vhost.exchanges.get(opts.dead_letter_exchange)
    if exchange is None:
        return  # RabbitMQ drops the message when the DLX does not exist
    props = dict(message.properties)
    headers: dict[str, Any] = dict(props.get("headers") or {})
    deaths = [dict(d) for d in headers.get("x-death") or [] if isinstance(d, dict)]
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    original_expiration = props.pop("expiration", None)
    for i, d in enumerate(deaths):
        if d.get("queue") == queue.name and d.get("reason") == reason:
            d["count"] = LongInt(int(d.get("count", 0)) + 1)
            d["time"] = now
            deaths.insert(0, deaths.pop(i))
            break
    else:
        death: dict[str, Any] = {
            "count": LongInt(1),
            "reason": reason,
            "queue": queue.name,
            "time": now,
            "exchange": message.exchange,
            "routing-keys": [message.routing_key] + _cc(headers),
        }
        if original_expiration is not None:
            death["original-expiration"] = original_expiration
        deaths.insert(0, death)
    for d in deaths[1:]:
        d["count"] = LongInt(int(d.get("count", 1)))
    headers["x-death"] = deaths
    if "x-first-death-reason" not in headers:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue.name
        headers["x-first-death-exchange"] = message.exchange
    props["headers"] = headers
    routing_key = opts.dead_letter_routing_key or message.routing_key
    dead = message.with_properties(exchange.name, routing_key, props)
    for target in vhost.route(exchange, dead):
        if _is_cycle(target.name, deaths, reason):
            continue
        target.push(dead)


def _cc(headers: dict[str, Any]) -> list[str]:
    cc = headers.get("CC")
    return [str(k) for k in cc] if isinstance(cc, list) else []


def _is_cycle(target: str, deaths: list[dict[str, Any]], reason: str) -> bool:
    """RabbitMQ drops a dead-lettered message that would return to a queue it already died in,
    unless a rejection happened somewhere in that cycle."""
    if not any(d.get("queue") == target for d in deaths):
        return False
    return all(d.get("reason") != "rejected" for d in deaths)

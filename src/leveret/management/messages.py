"""``POST /api/exchanges/{vhost}/{x}/publish`` and ``POST /api/queues/{vhost}/{q}/get``:
messages in and out over HTTP, for humans and scripts (RabbitMQ's own caveat applies: not a
way to move messages in bulk)."""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import TYPE_CHECKING, Any

from .. import frames
from ..errors import AMQPError
from ..message import Message
from ..queue_args import parse_expiration
from ..sender_selected import apply as apply_sender_selected
from .app import Context
from .exchanges import exchange_name
from .format import jsonable, keys_missing, parse_int
from .http import HTTPError

if TYPE_CHECKING:
    from ..message import Entry
    from ..queue import Queue
    from ..vhost import VirtualHost

# JSON property names (RabbitMQ's, "type" for message_type) -> the codec's
_PROPERTY_NAMES = {
    "content_type": "content_type", "content_encoding": "content_encoding",
    "headers": "headers", "delivery_mode": "delivery_mode", "priority": "priority",
    "correlation_id": "correlation_id", "reply_to": "reply_to", "expiration": "expiration",
    "message_id": "message_id", "timestamp": "timestamp", "type": "message_type",
    "user_id": "user_id", "app_id": "app_id", "cluster_id": "cluster_id",
}
_INT_PROPERTIES = ("delivery_mode", "priority", "timestamp")
ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true",
            "reject_requeue_false")


def _bad(reason: str) -> HTTPError:
    return HTTPError(400, "bad_request", reason)


def _properties(raw: Any) -> dict[str, Any]:
    """The message properties of a publish body, checked as RabbitMQ's
    rabbit_mgmt_format:to_basic_properties checks them: delivery_mode, priority and timestamp
    are JSON integers, the others strings, headers an object; other keys are ignored."""
    if raw in (None, [], ""):
        return {}
    if not isinstance(raw, dict):
        raise _bad("properties must be an object")
    props: dict[str, Any] = {}
    for key, value in raw.items():
        name = _PROPERTY_NAMES.get(key)
        if name is None or value is None:
            continue  # RabbitMQ picks the properties it knows and ignores the rest
        if key in _INT_PROPERTIES:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(f"{key} must be an integer (not_int)")
            if key in ("delivery_mode", "priority") and not 0 <= value <= 255:
                raise _bad(f"{key} out of range: {value}")
        elif key == "headers":
            if not isinstance(value, dict):
                raise _bad("headers must be an object")
            value = _table(value)
        elif not isinstance(value, str):
            raise _bad(f"{key} must be a string (not_string)")
        props[name] = value
    return props


def _channel_vhost(ctx: Context) -> VirtualHost:
    """The vhost a publish or get works in: RabbitMQ opens a channel there as the caller, and
    a vhost that does not exist refuses that connection: 401 "Access refused."."""
    if ctx.params["vhost"] not in ctx.server.vhosts:
        raise HTTPError(401, "not_authorised", "Access refused.")
    return ctx.vhost()


def _table(value: dict[str, Any]) -> dict[str, Any]:
    """JSON header values as AMQP field values (numbers stay numbers, lists arrays)."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, dict):
            out[k] = _table(v)
        elif isinstance(v, list):
            out[k] = [_table(x) if isinstance(x, dict) else x for x in v]
        else:
            out[k] = v
    return out


def publish(ctx: Context) -> Any:
    body = ctx.body()
    keys_missing(body, ("routing_key", "properties", "payload", "payload_encoding"))
    vhost = _channel_vhost(ctx)
    name = exchange_name(ctx.params["name"])
    routing_key = body["routing_key"]
    payload = body["payload"]
    encoding = body["payload_encoding"]
    if not isinstance(payload, str):
        raise _bad("payload_not_string")
    if not isinstance(routing_key, str):
        raise _bad("routing_key must be a string")
    props = _properties(body["properties"])
    if encoding == "string":
        data = payload.encode("utf-8")
    elif encoding == "base64":
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("payload is not base64") from None
    else:
        raise _bad(f"payload_encoding must be string or base64, not {encoding!r}")
    # the publish's channel errors come back as 400 "CODE TEXT" (rabbit_mgmt_wm_exchange_publish
    # sees its channel die after the cast): write permission first, then the exchange
    if not ctx.allowed("write", "exchange", name):
        raise _bad("403 " + ctx.refusal("exchange", name))
    exchange = vhost.exchanges.get(name)
    if exchange is None:
        raise _bad(f"404 NOT_FOUND - no exchange '{name}' in vhost '{vhost.name}'")
    if exchange.internal:
        raise HTTPError(400, "bad_request", f"cannot publish to internal exchange '{name}' "
                                            f"in vhost '{vhost.name}'")
    try:
        raw = frames.encode_properties(props)
        message = Message(name, routing_key, raw, data, props.get("delivery_mode") or 0,
                          props.get("priority") or 0, props.get("expiration"))
        if message.expiration is not None:
            message.ttl = parse_expiration(message.expiration)
        headers = props.get("headers")
        if headers and ("CC" in headers or "BCC" in headers):
            apply_sender_selected(message)
    except AMQPError as exc:
        raise _bad(exc.text) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise _bad(f"unacceptable message properties: {exc}") from None
    queues = vhost.route(exchange, message)
    exchange.stat_publish_in += 1
    if queues:
        exchange.stat_publish_out += 1
    for q in queues:
        q.push(message)
    return {"routed": bool(queues)}


def _payload(body: bytes, encoding: str, truncate: int | None) -> tuple[str, str]:
    if truncate is not None:
        body = body[:truncate]
    if encoding == "auto":
        try:
            return body.decode("utf-8"), "string"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), "base64"


def _props_json(raw: bytes) -> Any:
    props = frames.decode_properties(raw)
    out: dict[str, Any] = {}
    for json_name, name in _PROPERTY_NAMES.items():
        value = props.get(name)
        if value is None:
            continue
        if isinstance(value, datetime.datetime):
            value = int(value.replace(tzinfo=value.tzinfo or datetime.timezone.utc).timestamp())
        out[json_name] = jsonable(value)
    # RabbitMQ 3.10 encodes an empty property list as [] (an empty Erlang proplist)
    return out or []


def get_messages(ctx: Context) -> Any:
    body = ctx.body()
    keys_missing(body, ("ackmode", "count", "encoding"))
    vhost = _channel_vhost(ctx)
    q: Queue | None = vhost.queues.get(ctx.params["name"])
    if q is None:  # basic.get's channel error, as RabbitMQ's with_channel answers it
        raise HTTPError(404, "not_found",
                        f"NOT_FOUND - no queue '{ctx.params['name']}' in vhost '{vhost.name}'")
    count = parse_int(body["count"], "count")
    ackmode = body["ackmode"]
    encoding = body["encoding"]
    if ackmode not in ACKMODES:
        raise _bad(f"Invalid ackmode: {ackmode}")
    if encoding not in ("auto", "base64"):
        raise _bad("Unsupported encoding. Please use auto or base64.")
    truncate = body.get("truncate")
    limit = None if truncate in (None, "") else parse_int(truncate, "truncate")
    if not ctx.allowed("read", "queue", q.name):
        raise HTTPError(401, "not_authorised", ctx.refusal("queue", q.name))
    if q.exclusive_owner is not None:
        raise HTTPError(400, "bad_request", f"cannot obtain exclusive access to locked queue "
                                            f"'{q.name}' in vhost '{vhost.name}'")
    taken: list[Entry] = []
    out = []
    # RabbitMQ gets until ``count`` reaches 0 or the queue is empty, so a negative count
    # takes every message (each once: they are settled after the loop)
    while count != len(taken):
        try:
            entry = q.get()
        except AMQPError as exc:  # a stream refuses basic.get ("540 basic.get not ...")
            raise _bad(f"{exc.code} {exc.text}") from None
        if entry is None:
            break
        q.stat_get += 1
        if entry.redelivered:
            q.stat_redeliver += 1
        taken.append(entry)
        msg = entry.message
        payload, payload_encoding = _payload(msg.body, encoding, limit)
        out.append({
            "payload_bytes": len(msg.body),
            "redelivered": entry.redelivered,
            "exchange": msg.exchange,
            "routing_key": msg.routing_key,
            "message_count": len(q.ready),
            "properties": _props_json(msg.raw_props),
            "payload": payload,
            "payload_encoding": payload_encoding,
        })
    if not taken:
        return out
    if ackmode == "ack_requeue_false":
        for entry in taken:
            q.stat_ack += 1
            q.settled(entry)
        return out
    # as if delivered and then requeued or rejected
    for entry in taken:
        q.took_unacked(entry)
    if ackmode.endswith("requeue_true"):
        q.requeue(taken, [None] * len(taken))
    else:
        for entry in taken:
            q.discard(entry, None, "rejected")
    return out

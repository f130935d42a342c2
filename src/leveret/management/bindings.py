"""``/api/bindings``: list, create (POST, answering with a ``Location``), show and delete by
properties key (``/api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}``)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote

from ..errors import AMQPError
from ..queue import Queue
from .app import Context, not_found
from .exchanges import exchange_name
from .format import jsonable, reply_list
from .http import HTTPError, Response

if TYPE_CHECKING:
    from ..exchange import Binding, Exchange
    from ..vhost import VirtualHost


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """RabbitMQ's ``properties_key`` (rabbit_mgmt_format:pack_binding_props): the quoted routing
    key, ``~`` alone for an empty one, and ``~`` + a hash of the arguments when there are any.
    The hash is Leveret's own (RabbitMQ hashes the Erlang term): clients only send back keys
    the API gave them."""
    key = quote_plus(routing_key).replace("~", "%7E")
    if not arguments:
        return key or "~"
    canonical = json.dumps(jsonable(arguments), sort_keys=True).encode()
    digest = base64.urlsafe_b64encode(hashlib.sha1(canonical).digest()[:4]).decode().rstrip("=")
    return f"{key}~{digest}"


def binding_json(vhost: VirtualHost, source: Exchange, b: Binding) -> dict[str, Any]:
    dest = b.destination
    return {
        "source": source.name,
        "vhost": vhost.name,
        "destination": dest.name,
        "destination_type": "queue" if isinstance(dest, Queue) else "exchange",
        "routing_key": b.routing_key,
        "arguments": jsonable(b.arguments),
        "properties_key": properties_key(b.routing_key, b.arguments),
    }


def default_binding(q: Queue) -> dict[str, Any]:
    """Every queue is bound to the default exchange by its name (listed, not stored)."""
    return {
        "source": "",
        "vhost": q.vhost.name,
        "destination": q.name,
        "destination_type": "queue",
        "routing_key": q.name,
        "arguments": {},
        "properties_key": properties_key(q.name, {}),
    }


def list_bindings(ctx: Context) -> Any:
    items: list[dict[str, Any]] = []
    for vh in ctx.visible_vhosts():
        items.extend(default_binding(q) for q in vh.queues.values())
        for ex in vh.exchanges.values():
            items.extend(binding_json(vh, ex, b) for b in ex.bindings)
    return reply_list(ctx.req, items, default_sort=())


def _ends(ctx: Context) -> tuple[VirtualHost, Exchange, Queue | Exchange]:
    vhost = ctx.vhost()
    if ctx.params["dtype"] not in ("q", "e"):
        raise not_found()
    source = vhost.exchanges.get(exchange_name(ctx.params["source"]))
    dest_name = ctx.params["destination"]
    dest: Queue | Exchange | None
    if ctx.params["dtype"] == "q":
        dest = vhost.queues.get(dest_name)
    else:
        dest = vhost.exchanges.get(exchange_name(dest_name))
    if source is None or dest is None:
        raise not_found()
    return vhost, source, dest


def _between(source: Exchange, dest: Queue | Exchange) -> list[Binding]:
    return [b for b in source.bindings if b.destination is dest]


def list_between(ctx: Context) -> Any:
    try:
        vhost, source, dest = _ends(ctx)
    except HTTPError as exc:
        if exc.status != 404 or ctx.params["dtype"] not in ("q", "e"):
            raise
        # RabbitMQ lists what binds the two, and nothing binds a missing end (or vhost)
        return reply_list(ctx.req, [], default_sort=())
    items = [binding_json(vhost, source, b) for b in _between(source, dest)]
    if source.name == "" and isinstance(dest, Queue):
        items.insert(0, default_binding(dest))
    return reply_list(ctx.req, items, default_sort=())


def create_binding(ctx: Context) -> Response:
    vhost = ctx.existing_vhost()
    # RabbitMQ 3.10 answers a missing end here with the AMQP error, not its usual 404 body
    for kind, name in (("exchange", ctx.params["source"]),
                       ("queue" if ctx.params["dtype"] == "q" else "exchange",
                        ctx.params["destination"])):
        table: Any = vhost.queues if kind == "queue" else vhost.exchanges
        if ctx.params["dtype"] in ("q", "e") and exchange_name(name) not in table:
            raise HTTPError(404, "not_found", f"no {kind} '{name}' in vhost '{vhost.name}'")
    vhost, source, dest = _ends(ctx)
    _need_bind(ctx, source, dest)
    body = ctx.body()
    routing_key = body.get("routing_key", "")
    arguments = body.get("arguments") or {}
    if not isinstance(routing_key, str) or not isinstance(arguments, dict):
        raise HTTPError(400, "bad_request", "routing_key must be a string, arguments an object")
    try:
        vhost.bind(source, dest, routing_key, arguments)
    except AMQPError as exc:
        raise HTTPError(403 if exc.code == 403 else 400,
                        "access_refused" if exc.code == 403 else "bad_request", exc.text) from None
    # RabbitMQ answers with the new binding's path relative to the request's
    location = quote(dest.name, safe="") + "/" + properties_key(routing_key, arguments)
    return Response(201, b"", [("location", location)])


def _find(ctx: Context) -> tuple[VirtualHost, Exchange, Binding]:
    vhost, source, dest = _ends(ctx)
    key = ctx.params["props"]
    for b in _between(source, dest):
        packed = properties_key(b.routing_key, b.arguments)
        if key in (packed, unquote(packed)):  # the segment arrives percent-decoded
            return vhost, source, b
    raise not_found()


def show_binding(ctx: Context) -> Any:
    vhost, source, b = _find(ctx)
    return binding_json(vhost, source, b)


def _need_bind(ctx: Context, source: Exchange, dest: Queue | Exchange) -> None:
    # queue.bind / exchange.bind: write on the destination, read on the source
    ctx.need("write", "queue" if isinstance(dest, Queue) else "exchange", dest.name)
    ctx.need("read", "exchange", source.name)


def delete_binding(ctx: Context) -> Response:
    vhost, source, b = _find(ctx)
    _need_bind(ctx, source, b.destination)
    try:
        vhost.unbind(source, b.destination, b.routing_key, b.arguments)
    except AMQPError as exc:
        raise HTTPError(400, "bad_request", exc.text) from None
    return Response(204)

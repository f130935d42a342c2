"""``/api/exchanges``: list, show, declare (PUT), delete (``if-unused``), and
``.../bindings/source|destination``. The default exchange is ``amq.default`` in paths and ``""``
in bodies, as in RabbitMQ."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import AMQPError
from .app import Context, not_found
from .format import details, jsonable, parse_bool, reply_list
from .http import HTTPError, Response

if TYPE_CHECKING:
    from ..exchange import Exchange
    from .stats import Sampler


def exchange_name(path_name: str) -> str:
    return "" if path_name == "amq.default" else path_name


def exchange_json(vhost_name: str, ex: Exchange, sampler: Sampler) -> dict[str, Any]:
    rates = sampler.exchange_rates(ex)
    out: dict[str, Any] = {
        "arguments": jsonable(ex.arguments),
        "auto_delete": ex.auto_delete,
        "durable": ex.durable,
        "internal": ex.internal,
        "name": ex.name,
        "type": ex.kind,
        "user_who_performed_action": "rmq-internal",
        "vhost": vhost_name,
    }
    if ex.stat_publish_in or ex.stat_publish_out:
        # RabbitMQ shows message_stats once the exchange has seen a message
        out["message_stats"] = {
            "publish_in": ex.stat_publish_in,
            "publish_in_details": details(rates["publish_in"]),
            "publish_out": ex.stat_publish_out,
            "publish_out_details": details(rates["publish_out"]),
        }
    return out


def list_exchanges(ctx: Context) -> Any:
    sampler = ctx.api.sampler
    items = [exchange_json(vh.name, ex, sampler) for vh in ctx.visible_vhosts()
             for ex in vh.exchanges.values()]
    return reply_list(ctx.req, items)


def _exchange(ctx: Context) -> Exchange:
    ex = ctx.vhost().exchanges.get(exchange_name(ctx.params["name"]))
    if ex is None:
        raise not_found()
    return ex


def show_exchange(ctx: Context) -> Any:
    ex = _exchange(ctx)
    out = exchange_json(ctx.params["vhost"], ex, ctx.api.sampler)
    out["incoming"] = []
    out["outgoing"] = []
    return out


def put_exchange(ctx: Context) -> Response:
    vhost = ctx.existing_vhost()
    body = ctx.body()
    name = exchange_name(ctx.params["name"])
    kind = body.get("type") or "direct"
    arguments = body.get("arguments") or {}
    if not isinstance(kind, str) or not isinstance(arguments, dict):
        raise HTTPError(400, "bad_request", "type must be a string, arguments an object")
    existed = name in vhost.exchanges
    ctx.need("configure", "exchange", name)
    try:
        vhost.declare_exchange(name, kind, False, parse_bool(body.get("durable"), False),
                               parse_bool(body.get("auto_delete"), False),
                               parse_bool(body.get("internal"), False), arguments)
    except AMQPError as exc:
        raise HTTPError(400, "bad_request", exc.text) from None
    return Response(204 if existed else 201)


def delete_exchange(ctx: Context) -> Response:
    vhost = ctx.vhost()
    name = exchange_name(ctx.params["name"])
    if name not in vhost.exchanges:
        raise not_found()
    ctx.need("configure", "exchange", name)
    try:
        vhost.delete_exchange(name, if_unused=ctx.req.query.get("if-unused") == "true")
    except AMQPError as exc:
        raise HTTPError(400, "bad_request", exc.text) from None
    return Response(204)


def exchange_bindings_source(ctx: Context) -> Any:
    from .bindings import binding_json

    ex = _exchange(ctx)
    vhost = ctx.vhost()
    return reply_list(ctx.req, [binding_json(vhost, ex, b) for b in ex.bindings],
                      default_sort=())


def exchange_bindings_destination(ctx: Context) -> Any:
    from .bindings import binding_json

    ex = _exchange(ctx)
    vhost = ctx.vhost()
    items = [binding_json(vhost, src, b) for src in vhost.exchanges.values()
             for b in src.bindings_to(ex)]
    return reply_list(ctx.req, items, default_sort=())

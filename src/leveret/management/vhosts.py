"""``/api/vhosts``: list, show, create (PUT), delete (with their queues and connections)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .app import Context, not_found
from .format import details, node_name, reply_list
from .http import HTTPError, Response

if TYPE_CHECKING:
    from ..vhost import VirtualHost


def vhost_json(ctx: Context, vhost: VirtualHost) -> dict[str, Any]:
    access = getattr(ctx.server, "access", None)
    info = access.vhost(vhost.name) if access is not None else None
    description = info.description if info is not None else (
        "Default virtual host" if vhost.name == "/" else "")
    tags = list(info.tags) if info is not None else []
    queue_type = (info.default_queue_type if info is not None else None) or "undefined"
    sampler = ctx.api.sampler
    ready = unacked = 0
    rates = {"messages": 0.0, "messages_ready": 0.0, "messages_unacknowledged": 0.0}
    for q in vhost.queues.values():
        ready += len(q.ready)
        unacked += q.unacked
        qr = sampler.queue_rates(q)
        for key in rates:
            rates[key] += qr[key]
    recv = send = 0
    for conn in ctx.server.connections:
        if conn.vhost is vhost:
            recv += conn.recv_oct
            send += conn.send_oct
    return {
        "cluster_state": {node_name(): "running"},
        "default_queue_type": queue_type,
        "description": description,
        "messages": ready + unacked,
        "messages_details": details(round(rates["messages"], 1)),
        "messages_ready": ready,
        "messages_ready_details": details(round(rates["messages_ready"], 1)),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": details(round(rates["messages_unacknowledged"], 1)),
        "metadata": {"description": description, "tags": tags},
        "name": vhost.name,
        "recv_oct": recv,
        "send_oct": send,
        "tags": tags,
        "tracing": bool(info.tracing) if info is not None else False,
    }


def list_vhosts(ctx: Context) -> Any:
    items = [vhost_json(ctx, vh) for vh in ctx.visible_vhosts()]
    return reply_list(ctx.req, items, default_sort=("name",))


def show_vhost(ctx: Context) -> Any:
    return vhost_json(ctx, ctx.vhost())


def put_vhost(ctx: Context) -> Response:
    name = ctx.params["vhost"]
    body = ctx.body()
    description = body.get("description", "")
    tags = body.get("tags", "")
    if not isinstance(description, str) or not isinstance(tags, (str, list)):
        raise HTTPError(400, "bad_request", "description must be a string, tags a list")
    server = ctx.server
    existed = name in server.vhosts
    access = getattr(server, "access", None)
    if access is not None:
        if existed:
            access.update_vhost(name, description=description, tags=tags)
        else:
            access.add_vhost(name, description=description, tags=tags,
                             default_queue_type=body.get("default_queue_type"),
                             grant_to=ctx.user.name)
    else:
        server.add_vhost(name)
        if name not in server.settings.vhosts:
            server.settings.vhosts.append(name)
    return Response(204 if existed else 201)


def delete_vhost(ctx: Context) -> Response:
    name = ctx.params["vhost"]
    server = ctx.server
    if name not in server.vhosts:
        raise not_found()
    access = getattr(server, "access", None)
    if access is not None:
        access.delete_vhost(name)
    else:
        server.delete_vhost(name)
        if name in server.settings.vhosts:
            server.settings.vhosts.remove(name)
    from .parameters import Parameters

    Parameters.of(server).drop_vhost(name)
    return Response(204)

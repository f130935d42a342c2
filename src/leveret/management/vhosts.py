"""``/api/vhosts``: list, show, create (PUT), delete (with their queues and connections)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..auth import AccessError
from .app import Context, not_found
from .format import details, node_name, reply_list
from .http import HTTPError, Response

if TYPE_CHECKING:
    from ..vhost import VirtualHost


def vhost_json(ctx: Context, vhost: VirtualHost) -> dict[str, Any]:
    info = ctx.server.access.vhost(vhost.name)
    description = info.description if info is not None else ""
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
    recv_rate = send_rate = 0.0
    for conn in ctx.server.connections:
        if conn.vhost is vhost:
            recv += conn.recv_oct
            send += conn.send_oct
            conn_rates = sampler.connection_rates(conn)
            recv_rate += conn_rates["recv_oct"]
            send_rate += conn_rates["send_oct"]
    # what the vhost's queues counted, and its live channels' publish-side figures
    counts = {"ack": 0, "confirm": 0, "deliver": 0, "deliver_get": 0, "deliver_no_ack": 0,
              "drop_unroutable": 0, "get": 0, "get_empty": 0, "get_no_ack": 0, "publish": 0,
              "redeliver": 0, "return_unroutable": 0}
    msg_rates = dict.fromkeys(counts, 0.0)
    from_queues = ("ack", "deliver", "deliver_no_ack", "get", "get_empty", "get_no_ack",
                   "publish", "redeliver")
    for q in vhost.queues.values():
        qr = sampler.queue_rates(q)
        for name in from_queues:
            counts[name] += getattr(q, "stat_" + name)
            msg_rates[name] += qr[name]
    for conn in ctx.server.connections:
        if conn.vhost is vhost:
            for ch in conn.channels.values():
                cr = sampler.channel_rates(ch)
                counts["confirm"] += ch.confirms.confirmed if ch.confirms is not None else 0
                counts["drop_unroutable"] += ch.stat_drop_unroutable
                counts["return_unroutable"] += ch.stat_return_unroutable
                for name in ("confirm", "drop_unroutable", "return_unroutable"):
                    msg_rates[name] += cr[name]
    counts["deliver_get"] = (counts["deliver"] + counts["deliver_no_ack"] + counts["get"]
                             + counts["get_no_ack"])
    msg_rates["deliver_get"] = (msg_rates["deliver"] + msg_rates["deliver_no_ack"]
                                + msg_rates["get"] + msg_rates["get_no_ack"])
    message_stats: dict[str, Any] = {}
    for name, value in counts.items():
        message_stats[name] = value
        message_stats[name + "_details"] = details(round(msg_rates[name], 1))
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
        "message_stats": message_stats,
        "metadata": {"description": description, "tags": tags},
        "name": vhost.name,
        "recv_oct": recv,
        "recv_oct_details": details(round(recv_rate, 1)),
        "send_oct": send,
        "send_oct_details": details(round(send_rate, 1)),
        "tags": tags,
        "tracing": bool(info.tracing) if info is not None else False,
    }


def list_vhosts(ctx: Context) -> Any:
    items = [vhost_json(ctx, vh) for vh in ctx.shown_vhosts()]  # monitoring users: all
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
    access = server.access
    try:
        if existed:
            access.update_vhost(name, description=description, tags=tags)
        else:
            # the user who creates a vhost gets full permissions there, as in RabbitMQ
            access.add_vhost(name, description=description, tags=tags,
                             default_queue_type=body.get("default_queue_type"),
                             grant_to=ctx.user.name)
    except (AccessError, ValueError) as exc:
        raise HTTPError(400, "bad_request", getattr(exc, "reason", str(exc))) from None
    return Response(204 if existed else 201)


def delete_vhost(ctx: Context) -> Response:
    name = ctx.params["vhost"]
    server = ctx.server
    if name not in server.vhosts:
        raise not_found()
    server.access.delete_vhost(name)
    from .parameters import Parameters

    Parameters.of(server).drop_vhost(name)
    return Response(204)


def list_limits(ctx: Context) -> Any:
    """``/api/vhost-limits[/{vhost}]``: Leveret sets no vhost limits (max-connections,
    max-queues), so every vhost's list is empty; an unknown vhost is 404, as RabbitMQ."""
    name = ctx.params.get("vhost")
    if name is not None and (name not in ctx.server.vhosts
                             or not ctx.api.auth.may_see_vhost(ctx.user, name)):
        raise not_found()
    return []

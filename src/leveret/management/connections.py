"""``/api/connections`` (``DELETE`` closes one with 320 and the ``X-Reason`` header's text, as
RabbitMQ), ``/api/channels``, ``/api/consumers``, ``/api/vhosts/{vhost}/connections|channels``.

A connection is named ``"PEER -> LOCAL"`` and a channel ``"PEER -> LOCAL (N)"``, RabbitMQ's names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .. import tls
from ..addresses import host_text
from .app import Context, not_found
from .format import details, jsonable, millis, node_name, reply_list, timestamp
from .http import HTTPError, Response

if TYPE_CHECKING:
    from ..channel import Channel
    from ..connection import AMQPConnection as Connection


def _split(address: Any) -> tuple[str, int]:
    if isinstance(address, tuple) and len(address) >= 2:
        return host_text(str(address[0])), int(address[1])
    return "", 0


def _ends(conn: Connection) -> tuple[tuple[str, int], tuple[str, int]]:
    transport = conn.transport
    if transport is None:
        return ("", 0), ("", 0)
    return (_split(transport.get_extra_info("peername")),
            _split(transport.get_extra_info("sockname")))


def connection_name(conn: Connection) -> str:
    return conn.name  # the ends as the connection wrote them when it was made (addresses.py)


def connection_json(conn: Connection, api: Any) -> dict[str, Any]:
    rates = api.sampler.connection_rates(conn)
    (phost, pport), (host, port) = _ends(conn)
    props = jsonable(conn.client_properties)
    out = {
        "auth_mechanism": conn.auth_mechanism,
        "channel_max": conn.channel_max,
        "channels": len(conn.channels),
        "client_properties": props,
        "connected_at": millis(conn.connected_at),
        "frame_max": conn.frame_max,
        "garbage_collection": {"fullsweep_after": 0, "max_heap_size": 0,
                               "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
        "host": host,
        "name": connection_name(conn),
        "node": node_name(),
        "peer_host": phost,
        "peer_port": pport,
        "port": port,
        "protocol": "AMQP 0-9-1",
        "recv_cnt": conn.recv_cnt,
        "recv_oct": conn.recv_oct,
        "recv_oct_details": details(rates["recv_oct"]),
        "reductions": 0,
        "reductions_details": details(0.0),
        "send_cnt": conn.send_cnt,
        "send_oct": conn.send_oct,
        "send_oct_details": details(rates["send_oct"]),
        "send_pend": 0,
        "state": "blocked" if conn.blocked else "running",
        "timeout": conn.heartbeat,
        "type": "network",
        "user": conn.user,
        "user_who_performed_action": conn.user,
        "vhost": conn.vhost.name if conn.vhost is not None else "",
    }
    out.update(tls.connection_info(conn))  # ssl, ssl_*, peer_cert_*
    name = props.get("connection_name") if isinstance(props, dict) else None
    if isinstance(name, str):
        out["user_provided_name"] = name
    return out


def channel_details(ch: Channel) -> dict[str, Any]:
    """The short form a consumer shows of its channel."""
    (phost, pport), _ = _ends(ch.conn)
    return {
        "connection_name": connection_name(ch.conn),
        "name": f"{connection_name(ch.conn)} ({ch.id})",
        "node": node_name(),
        "number": ch.id,
        "peer_host": phost,
        "peer_port": pport,
        "user": ch.conn.user,
    }


def channel_json(ch: Channel, api: Any) -> dict[str, Any]:
    rates = api.sampler.channel_rates(ch)
    (phost, pport), _ = _ends(ch.conn)
    confirms = ch.confirms
    counts = {
        "ack": ch.stat_ack,
        "confirm": confirms.confirmed if confirms is not None else 0,
        "deliver": ch.stat_deliver,
        "deliver_get": ch.stat_deliver + ch.stat_deliver_no_ack + ch.stat_get
        + ch.stat_get_no_ack,
        "deliver_no_ack": ch.stat_deliver_no_ack,
        "drop_unroutable": ch.stat_drop_unroutable,
        "get": ch.stat_get,
        "get_empty": ch.stat_get_empty,
        "get_no_ack": ch.stat_get_no_ack,
        "publish": ch.stat_publish,
        "redeliver": ch.stat_redeliver,
        "return_unroutable": ch.stat_return_unroutable,
    }
    rates["deliver_get"] = round(rates["deliver"] + rates["deliver_no_ack"] + rates["get"]
                                 + rates["get_no_ack"], 1)
    message_stats: dict[str, Any] = {}
    for name, value in counts.items():
        message_stats[name] = value
        message_stats[name + "_details"] = details(rates.get(name, 0.0))
    conn = ch.conn
    pending_confirms = 0
    if confirms is not None:
        pending_confirms = confirms.next_seq - confirms.sent_upto
    out = {
        "acks_uncommitted": sum(1 for op in ch.tx or () if op[0] != "publish"),
        "confirm": confirms is not None,
        "connection_details": {"name": connection_name(conn), "peer_host": phost,
                               "peer_port": pport},
        "consumer_count": len(ch.consumers),
        "garbage_collection": {"fullsweep_after": 0, "max_heap_size": 0,
                               "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
        "global_prefetch_count": ch.prefetch_channel,
        "message_stats": message_stats,
        "messages_unacknowledged": len(ch.tags),
        "messages_uncommitted": sum(1 for op in ch.tx or () if op[0] == "publish"),
        "messages_unconfirmed": pending_confirms,
        "name": f"{connection_name(conn)} ({ch.id})",
        "node": node_name(),
        "number": ch.id,
        "pending_raft_commands": 0,
        "prefetch_count": ch.prefetch_consumer,
        "reductions": 0,
        "reductions_details": details(0.0),
        "state": "running" if ch.open else "closing",
        "transactional": ch.tx is not None,
        "user": conn.user,
        "user_who_performed_action": conn.user,
        "vhost": ch.vhost.name,
    }
    since = api.sampler.channel_idle_since(ch)
    if since is not None:
        out["idle_since"] = timestamp(since)
    return out


# ---------------------------------------------------------------------- handlers

def _visible_connections(ctx: Context) -> list[Connection]:
    """The connections listed to the user: its own, or all for monitoring users (RabbitMQ's
    filter_user; no vhost filter but the path's)."""
    vhost = ctx.vhost().name if "vhost" in ctx.params else None
    auth = ctx.api.auth
    return [c for c in ctx.server.connections if c.vhost is not None
            and (vhost is None or c.vhost.name == vhost) and auth.may_see_owner(ctx.user, c.user)]


def _authorised_for(ctx: Context, owner: str) -> None:
    """One connection or channel: its owner, monitoring users (to look) and administrators
    (to close) may (rabbit_mgmt_util:is_authorized_user)."""
    user = ctx.user
    if owner == user.name or (user.is_admin if ctx.req.method == "DELETE" else user.is_monitor):
        return
    raise HTTPError(401, "not_authorised", "User not authorised to access object")


def list_connections(ctx: Context) -> Any:
    return reply_list(ctx.req, [connection_json(c, ctx.api) for c in _visible_connections(ctx)],
                      default_sort=("name",))


def _connection(ctx: Context) -> Connection:
    name = ctx.params["name"]
    for conn in ctx.server.connections:
        if conn.vhost is not None and connection_name(conn) == name:
            _authorised_for(ctx, conn.user)
            return conn
    raise not_found()


def show_connection(ctx: Context) -> Any:
    return connection_json(_connection(ctx), ctx.api)


def delete_connection(ctx: Context) -> Response:
    conn = _connection(ctx)
    reason = ctx.req.headers.get("x-reason")
    # RabbitMQ: 320 CONNECTION_FORCED with the X-Reason header's text, or this one
    conn.force_close(unquote(reason) if reason else "Closed via management plugin")
    return Response(204)


def connection_channels(ctx: Context) -> Any:
    conn = _connection(ctx)
    return reply_list(ctx.req, [channel_json(ch, ctx.api) for ch in conn.channels.values()],
                      default_sort=("name",))


def _visible_channels(ctx: Context) -> list[Channel]:
    return [ch for conn in _visible_connections(ctx) for ch in conn.channels.values()]


def list_channels(ctx: Context) -> Any:
    return reply_list(ctx.req, [channel_json(ch, ctx.api) for ch in _visible_channels(ctx)],
                      default_sort=("name",))


def show_channel(ctx: Context) -> Any:
    name = ctx.params["name"]
    for ch in (ch for conn in ctx.server.connections if conn.vhost is not None
               for ch in conn.channels.values()):
        if f"{connection_name(ch.conn)} ({ch.id})" == name:
            _authorised_for(ctx, ch.conn.user)
            from .queues import consumer_json

            out = channel_json(ch, ctx.api)
            out["consumer_details"] = [consumer_json(c) for c in ch.consumers.values()]
            out["deliveries"] = []
            out["publishes"] = []
            return out
    raise not_found()


def list_consumers(ctx: Context) -> Any:
    from .queues import consumer_json

    # every vhost's, or the path's; a user's own only unless it is a monitoring user
    # (rabbit_mgmt_wm_consumers: is_authorized, filter_user)
    if "vhost" in ctx.params:
        vhosts = [ctx.server.vhosts[ctx.params["vhost"]]] if ctx.params["vhost"] in \
            ctx.server.vhosts else []
        if not vhosts:
            raise not_found()
    else:
        vhosts = list(ctx.server.vhosts.values())
    items = [consumer_json(c) for vh in vhosts for q in vh.queues.values()
             for c in q.consumers if ctx.api.auth.may_see_owner(ctx.user, c.channel.conn.user)]
    return reply_list(ctx.req, items, default_sort=())

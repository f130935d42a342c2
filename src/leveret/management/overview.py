"""``/api/overview``, ``/api/nodes``, ``/api/extensions``, ``/api/whoami``,
``/api/cluster-name``, the health checks and ``/api/aliveness-test/{vhost}``."""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any

from .. import __version__
from ..counters import channel_sums
from ..message import Message
from .app import Context, not_found
from .format import details, node_name, resource_figures
from .http import HTTPError, Response

# the RabbitMQ release whose API this one follows: tools check these to pick features
RABBITMQ_VERSION = "3.10.8"
EXCHANGE_TYPES = [
    {"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification",
     "enabled": True},
    {"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification",
     "enabled": True},
    {"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification",
     "enabled": True},
    {"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification",
     "enabled": True},
]
_MESSAGE_STATS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver",
                  "deliver_no_ack", "get", "get_no_ack", "get_empty", "redeliver", "ack")
_CHURN = ("channel_closed", "channel_created", "connection_closed", "connection_created",
          "queue_created", "queue_declared", "queue_deleted")


_ERLANG_NODE_STATS = (
    "context_switches", "gc_bytes_reclaimed", "gc_num", "io_read_avg_time", "io_read_bytes",
    "io_read_count", "io_reopen_count", "io_seek_avg_time", "io_seek_count", "io_sync_avg_time",
    "io_sync_count", "io_write_avg_time", "io_write_bytes", "io_write_count",
    "mnesia_disk_tx_count", "mnesia_ram_tx_count", "msg_store_read_count",
    "msg_store_write_count", "queue_index_read_count", "queue_index_write_count")


def _python() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def listeners(ctx: Context) -> list[dict[str, Any]]:
    """Every socket the broker listens on (AMQP, this API, the metrics), as RabbitMQ's
    ``rabbit_networking:active_listeners`` lists them, sorted by protocol and port."""
    node = node_name()
    out = []
    for listener in ctx.server.listeners:
        entry: dict[str, Any] = {"node": node, "protocol": listener.protocol,
                                 "ip_address": listener.host, "port": listener.port}
        if listener.protocol.startswith("amqp"):
            entry["socket_opts"] = {"backlog": 1024, "nodelay": True}
            tls = ctx.server.settings.tls
            if listener.protocol == "amqp/ssl" and tls is not None:
                # RabbitMQ lists the ssl_options with the socket options (file names only)
                entry["socket_opts"].update({
                    "certfile": tls.certfile, "keyfile": tls.keyfile,
                    "cacertfile": tls.cacertfile, "verify": tls.verify,
                    "fail_if_no_peer_cert": tls.fail_if_no_peer_cert,
                    "versions": ["tlsv1.3", "tlsv1.2"]})
        else:
            entry["socket_opts"] = {"port": listener.port}
            if listener.protocol != "http":
                entry["socket_opts"]["protocol"] = listener.protocol
        out.append(entry)
    return sorted(out, key=lambda e: (e["protocol"], e["port"]))


def _contexts(ctx: Context) -> list[dict[str, Any]]:
    out = []
    for listener in ctx.server.listeners:
        if listener.protocol.startswith("amqp"):
            continue
        entry: dict[str, Any] = {
            "ssl_opts": [], "node": node_name(), "path": "/", "port": str(listener.port),
            "description": ("RabbitMQ Management" if listener.protocol == "http"
                            else "RabbitMQ Prometheus")}
        if listener.protocol != "http":
            entry["protocol"] = f"'{listener.protocol}'"
        out.append(entry)
    return out


def _totals(ctx: Context) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """message_stats, churn_rates and queue_totals over what the user may see."""
    server = ctx.server
    rates = ctx.api.sampler.overview_rates()
    channels = [ch for conn in server.connections for ch in conn.channels.values()]
    sums = channel_sums(server.counters, channels)
    counts = {name: sums["confirmed" if name == "confirm" else name] for name in _MESSAGE_STATS}
    counts["deliver_get"] = (counts["deliver"] + counts["deliver_no_ack"] + counts["get"]
                             + counts["get_no_ack"])
    counts["disk_reads"] = counts["disk_writes"] = 0  # RabbitMQ's message store; not counted
    rates["deliver_get"] = round(rates["deliver"] + rates["deliver_no_ack"] + rates["get"]
                                 + rates["get_no_ack"], 1)
    message_stats: dict[str, Any] = {}
    for name, value in sorted(counts.items()):
        message_stats[name] = value
        message_stats[name + "_details"] = details(rates.get(name, 0.0))
    c = server.counters
    churn_counts = {
        "channel_closed": c.channel_closed, "channel_created": c.channel_created,
        "connection_closed": c.connection_closed, "connection_created": c.connection_created,
        "queue_created": sum(vh.stat_queue_created for vh in server.vhosts.values()),
        "queue_declared": sum(vh.stat_queue_declared for vh in server.vhosts.values()),
        "queue_deleted": sum(vh.stat_queue_deleted for vh in server.vhosts.values()),
    }
    churn: dict[str, Any] = {}
    for name in _CHURN:
        churn[name] = churn_counts[name]
        churn[name + "_details"] = details(rates.get(name, 0.0))
    ready = unacked = 0
    for vh in ctx.shown_vhosts():
        for q in vh.queues.values():
            ready += len(q.ready)
            unacked += q.unacked
    queue_totals = {
        "messages": ready + unacked,
        "messages_details": details(rates["messages"]),
        "messages_ready": ready,
        "messages_ready_details": details(rates["messages_ready"]),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": details(rates["messages_unacknowledged"]),
    }
    return message_stats, churn, queue_totals


def overview(ctx: Context) -> Any:
    message_stats, churn, queue_totals = _totals(ctx)
    vhosts = ctx.shown_vhosts()
    connections = [c for c in ctx.server.connections if c.vhost is not None
                   and ctx.api.auth.may_see_owner(ctx.user, c.user)]
    channels = sum(len(c.channels) for c in connections)
    out = {
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400],
                                      "basic": [600, 3600], "detailed": [600]},
        "exchange_types": EXCHANGE_TYPES,
        "product_version": __version__,
        "product_name": "Leveret",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": ctx.server.settings.cluster_name,
        "erlang_version": platform.python_version(),
        "erlang_full_version": _python(),
        "release_series_support_status": "supported",
        "disable_stats": False,
        "enable_queue_totals": False,
        "message_stats": message_stats,
        "churn_rates": churn,
        "queue_totals": queue_totals,
        "object_totals": {
            "channels": channels,
            "connections": len(connections),
            "consumers": sum(len(q.consumers) for vh in vhosts for q in vh.queues.values()),
            "exchanges": sum(len(vh.exchanges) for vh in vhosts),
            "queues": sum(len(vh.queues) for vh in vhosts),
        },
        "statistics_db_event_queue": 0,
    }
    if ctx.user.is_monitor:
        # RabbitMQ shows the node, its listeners and web contexts to monitoring users
        # only, and counts consumers for them only (rabbit_mgmt_wm_overview)
        out.update(node=node_name(), listeners=listeners(ctx), contexts=_contexts(ctx))
    else:
        del out["object_totals"]["consumers"]  # type: ignore[attr-defined]
    return out


def node_json(ctx: Context) -> dict[str, Any]:
    server = ctx.server
    figures = resource_figures(server)
    try:
        fd_used = len(os.listdir("/proc/self/fd"))
    except OSError:
        fd_used = 0
    fd_total = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    out: dict[str, Any] = {
        "name": node_name(),
        "type": "disc",
        "running": True,
        "os_pid": str(os.getpid()),
        "uptime": int((time.time() - server.started_at) * 1000),
        "processors": os.cpu_count() or 1,
        "rates_mode": "basic",
        "mem_used": figures["mem_used"],
        "mem_used_details": details(0.0),
        "mem_limit": figures["mem_limit"],
        "mem_alarm": figures["mem_alarm"],
        "mem_calculation_strategy": server.memory.strategy,
        "disk_free": figures["disk_free"],
        "disk_free_details": details(0.0),
        "disk_free_limit": figures["disk_free_limit"],
        "disk_free_alarm": figures["disk_free_alarm"],
        "fd_used": fd_used,
        "fd_used_details": details(0.0),
        "fd_total": fd_total,
        "sockets_used": len(server.connections),
        "sockets_used_details": details(0.0),
        "sockets_total": fd_total,
        "proc_used": 1,
        "proc_used_details": details(0.0),
        "proc_total": 1,
        "run_queue": 0,
        "net_ticktime": 60,
        "partitions": [],
        "cluster_links": [],
        "applications": [{"name": "leveret", "description": "Leveret", "version": __version__}],
        "auth_mechanisms": [{"name": "PLAIN", "description": "SASL PLAIN authentication "
                             "mechanism", "enabled": True},
                            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism",
                             "enabled": True}],
        "exchange_types": EXCHANGE_TYPES,
        # the plugins whose work is on: what a RabbitMQ with them enabled lists
        "enabled_plugins": ["rabbitmq_management"] + (
            ["rabbitmq_prometheus"] if any(lst.protocol == "http/prometheus"
                                           for lst in server.listeners) else []),
        # RabbitMQ 3.13+ (rabbitmqadmin 2 requires it): a single node is never drained
        "being_drained": False,
        "contexts": _contexts(ctx),
        "config_files": list(server.settings.config_files),
        "log_files": ["<stdout>"],  # RabbitMQ's name for its console log
        "db_dir": server.settings.data_dir or "",
    }
    for name in _ERLANG_NODE_STATS:  # the Erlang VM's own figures: none here
        out[name] = 0
        out[name + "_details"] = details(0.0)
    out["metrics_gc_queue_length"] = dict.fromkeys((
        "channel_closed", "channel_consumer_deleted", "connection_closed", "consumer_deleted",
        "exchange_deleted", "node_node_deleted", "queue_deleted", "vhost_deleted"), 0)
    _, churn, _ = _totals(ctx)
    out.update(churn)
    return out


def nodes(ctx: Context) -> Any:
    return [node_json(ctx)]


def node(ctx: Context) -> Any:
    if ctx.params["node"] != node_name():
        raise not_found()
    return node_json(ctx)


def extensions(ctx: Context) -> Any:
    return []


def whoami(ctx: Context) -> Any:
    return {"name": ctx.user.name, "tags": list(ctx.user.tags)}


def cluster_name(ctx: Context) -> Any:
    return {"name": ctx.server.settings.cluster_name}


def put_cluster_name(ctx: Context) -> Response:
    name = ctx.body().get("name")
    if not isinstance(name, str) or not name:
        raise HTTPError(400, "bad_request", "name must be a non-empty string")
    ctx.server.settings.cluster_name = name
    return Response(204)


# ---------------------------------------------------------------------- health checks

def _ok(**extra: Any) -> Response:
    return Response(200, {"status": "ok", **extra})


def _failed(reason: str, **extra: Any) -> Response:
    return Response(503, {"status": "failed", "reason": reason, **extra})


# rabbit_alarm's resource names (?MEMORY_RESOURCE, ?DISK_SPACE_RESOURCE)
_ALARM_RESOURCES = (("memory", "memory"), ("disk", "disk space"))


def _alarm_list(ctx: Context) -> list[dict[str, str]]:
    alarms = ctx.server.memory.alarms
    return [{"resource": name, "node": node_name()} for key, name in _ALARM_RESOURCES
            if key in alarms]


def check_alarms(ctx: Context) -> Response:
    """rabbit_mgmt_wm_health_check_alarms (3.10): 503 with the alarms in effect."""
    alarms = _alarm_list(ctx)
    if alarms:
        return _failed("There are alarms in effect in the cluster", alarms=alarms)
    return _ok()


def check_local_alarms(ctx: Context) -> Response:
    alarms = _alarm_list(ctx)
    if alarms:
        return _failed("There are alarms in effect on the node", alarms=alarms)
    return _ok()


def check_virtual_hosts(ctx: Context) -> Response:
    return _ok()  # every vhost of a running Leveret is up


def check_port_listener(ctx: Context) -> Response:
    text = ctx.params["port"]
    try:
        port = int(text)
    except ValueError:
        raise HTTPError(400, "bad_request", "Invalid port") from None
    ports = sorted({listener.port for listener in ctx.server.listeners})
    if port in ports:
        return _ok(port=port)
    return _failed("No active listener", missing=port, ports=ports)


# RabbitMQ's spellings of the AMQP 0-9-1 protocol (rabbit_networking's normalisation)
_AMQP_NAMES = ("amqp", "amqp091", "amqp0.9.1", "amqp0-9-1", "amqp0_9_1")


def check_protocol_listener(ctx: Context) -> Response:
    """200 if a listener speaks the protocol (``amqp``, ``http``, ``http/prometheus``)."""
    wanted = ctx.params["protocol"].lower()
    if wanted in _AMQP_NAMES:
        wanted = "amqp"
    protocols = list(dict.fromkeys(listener.protocol for listener in ctx.server.listeners))
    if wanted in protocols:
        return _ok(protocol=wanted)
    return _failed("No active listener", missing=ctx.params["protocol"], protocols=protocols)


def check_node_is_quorum_critical(ctx: Context) -> Response:
    return _ok(reason="single node cluster")  # RabbitMQ's answer on one node


def check_node_is_mirror_sync_critical(ctx: Context) -> Response:
    return _ok(reason="single node cluster")  # no mirrors on one node


_TIME_UNITS = ("days", "weeks", "months", "years")


def check_certificate_expiration(ctx: Context) -> Response:
    """No TLS listener, so no certificate expires: ok once the parameters are valid."""
    try:
        int(ctx.params["within"])
    except ValueError:
        raise HTTPError(400, "bad_request", "Invalid expiration value.") from None
    if ctx.params["unit"] not in _TIME_UNITS:
        raise HTTPError(400, "bad_request", "Time unit not recognised. Supported units: "
                                            "days, weeks, months, years.")
    return _ok()


def aliveness_test(ctx: Context) -> Response:
    """Declare ``aliveness-test`` in the vhost, publish to it and get the message back, as
    RabbitMQ's aliveness test does."""
    vhost = ctx.vhost()
    # RabbitMQ runs it on a channel of the caller's: their permissions on the queue count
    # (configure to declare it, write on the default exchange, read to get)
    for perm, kind, name in (("configure", "queue", "aliveness-test"),
                             ("write", "exchange", ""), ("read", "queue", "aliveness-test")):
        if not ctx.allowed(perm, kind, name):
            raise HTTPError(401, "not_authorised", ctx.refusal(kind, name))
    q, _ = vhost.declare_queue("aliveness-test", None, False, False, False, False, {})
    message = Message("", "aliveness-test", b"\x00\x00", b"test_message")
    q.push(message)
    entry = q.get()
    if entry is not None:
        q.settled(entry)
    if entry is None or entry.message is not message:
        return _failed("aliveness test failed")
    return _ok()

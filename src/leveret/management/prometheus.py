"""Prometheus metrics as RabbitMQ's ``rabbitmq_prometheus`` plugin serves them (port 15692).

``GET /metrics`` gives every figure summed over the broker's objects; ``GET
/metrics/per-object`` gives queues, channels and connections one series each. Names, types,
HELP texts and labels are RabbitMQ 3.10's (``prometheus_rabbitmq_core_metrics_collector`` and
``rabbit_global_counters``), so dashboards built for it, Grafana's "RabbitMQ-Overview"
(grafana.com 10991) first, work unchanged: every panel there joins on ``rabbitmq_identity_info``.
``rabbitmq_identity_info`` also carries ``rabbitmq_endpoint`` as RabbitMQ 3.13 and later do,
which the dashboard's current revision selects on.

Only figures Leveret really has are given; the Erlang VM's own (reductions, process memory,
schedulers, Mnesia, Raft) are left out, not sent as zeros.

Nothing here runs per message: a scrape reads the plain integers the data plane keeps
(``leveret.counters``) and walks the queues and channels once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import resource
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import __version__, resources
from ..counters import channel_sums, global_totals
from ..settings import node_name
from .format import resource_figures
from .http import HTTPProtocol, Request, Response

if TYPE_CHECKING:
    from ..channel import Channel
    from ..connection import AMQPConnection as Connection
    from ..queue import Queue
    from ..server import Server

RABBITMQ_VERSION = "3.10.8"  # the RabbitMQ whose metrics these are (rabbitmq_build_info)
CONTENT_TYPE = "text/plain; version=0.0.4"  # the text exposition format, as RabbitMQ sends it
QUEUE_TYPES = ("rabbit_classic_queue", "rabbit_quorum_queue", "rabbit_stream_queue")
PLUGINS = ("rabbitmq_prometheus",)

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]


class Family:
    """One metric family: name, type, HELP text and its samples."""

    __slots__ = ("name", "kind", "help", "samples")

    def __init__(self, name: str, kind: str, help: str,
                 samples: Iterable[Sample] | float | None = None) -> None:
        self.name = "rabbitmq_" + name
        self.kind = kind
        self.help = help
        if samples is None:
            self.samples: list[Sample] = []
        elif isinstance(samples, (int, float)):
            self.samples = [((), samples)]
        else:
            self.samples = list(samples)

    def render(self, out: list[str]) -> None:
        out.append(f"# TYPE {self.name} {self.kind}\n")
        out.append(f"# HELP {self.name} {_escape_help(self.help)}\n")
        for labels, value in self.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                out.append(f"{self.name}{{{inner}}} {_number(value)}\n")
            else:
                out.append(f"{self.name} {_number(value)}\n")


def render(families: Iterable[Family]) -> bytes:
    """The text exposition format (version 0.0.4) of ``families``."""
    out: list[str] = []
    for family in families:
        family.render(out)
    return "".join(out).encode("utf-8")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


# ---------------------------------------------------------------------- what is measured

class Snapshot:
    """The broker's live objects, walked once per scrape."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connections: list[Connection] = [c for c in server.connections
                                              if c.vhost is not None]
        self.channels: list[Channel] = [ch for conn in self.connections
                                        for ch in conn.channels.values()]
        self.queues: list[Queue] = [q for vh in server.vhosts.values()
                                    for q in vh.queues.values()]


def collect(server: Server, per_object: bool) -> list[Family]:
    """Every family of ``/metrics`` (``per_object`` False) or ``/metrics/per-object``."""
    snap = Snapshot(server)
    families: list[Family] = []
    families += _churn(server)
    families += _node(server)
    families += _alarms(server)
    families += _queues(snap.queues, per_object)
    families += _channels(snap.channels, per_object)
    families += _connections(snap.connections, per_object)
    families += _totals(snap)
    families += _identity(server, "per-object" if per_object else "aggregated")
    families += _global(server, snap)
    return families


def _churn(server: Server) -> list[Family]:
    c = server.counters
    declared = created = deleted = 0
    for vh in server.vhosts.values():
        declared += vh.stat_queue_declared
        created += vh.stat_queue_created
        deleted += vh.stat_queue_deleted
    return [
        Family("connections_opened_total", "counter", "Total number of connections opened",
               c.connection_created),
        Family("connections_closed_total", "counter",
               "Total number of connections closed or terminated", c.connection_closed),
        Family("channels_opened_total", "counter", "Total number of channels opened",
               c.channel_created),
        Family("channels_closed_total", "counter", "Total number of channels closed",
               c.channel_closed),
        Family("queues_declared_total", "counter", "Total number of queues declared", declared),
        Family("queues_created_total", "counter", "Total number of queues created", created),
        Family("queues_deleted_total", "counter", "Total number of queues deleted", deleted),
    ]


def _node(server: Server) -> list[Family]:
    figures = resource_figures(server)
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if fd_limit == resource.RLIM_INFINITY:
        fd_limit = 0
    families = [
        Family("process_open_fds", "gauge", "Open file descriptors", _open_fds()),
        Family("process_open_tcp_sockets", "gauge", "Open TCP sockets",
               len(server.connections)),
        Family("process_resident_memory_bytes", "gauge", "Memory used in bytes",
               resident_memory()),
        Family("disk_space_available_bytes", "gauge", "Disk space available in bytes",
               figures["disk_free"]),
        Family("process_max_fds", "gauge", "Open file descriptors limit", fd_limit),
        Family("process_max_tcp_sockets", "gauge", "Open TCP sockets limit", fd_limit),
        # the memory high watermark in bytes; without one (an embedded broker) publishers
        # are never blocked for memory, so the limit is the memory itself
        Family("resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes",
               figures["mem_limit"]),
        Family("disk_space_available_limit_bytes", "gauge",
               "Free disk space low watermark in bytes", figures["disk_free_limit"]),
        # the dashboard's node table shows it; here it is the broker process's uptime
        Family("erlang_uptime_seconds", "gauge", "Node uptime",
               round(time.time() - server.started_at, 3)),
    ]
    return families


def _alarms(server: Server) -> list[Family]:
    return [
        Family("alarms_file_descriptor_limit", "untyped",
               "is 1 if file descriptor limit alarm is in effect", 0),
        Family("alarms_free_disk_space_watermark", "untyped",
               "is 1 if free disk space watermark alarm is in effect",
               1 if "disk" in server.memory.alarms else 0),
        Family("alarms_memory_used_watermark", "untyped",
               "is 1 if VM memory watermark alarm is in effect",
               1 if "memory" in server.memory.alarms else 0),
    ]


def _queue_labels(q: Queue) -> Labels:
    return (("vhost", q.vhost.name), ("queue", q.name))


# (name, help, value of one queue)
_QUEUE_GAUGES = (
    ("queue_messages_ready", "Messages ready to be delivered to consumers",
     lambda q: len(q.ready)),
    ("queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged",
     lambda q: q.unacked),
    ("queue_messages", "Sum of ready and unacknowledged messages - total queue depth",
     lambda q: len(q.ready) + q.unacked),
    ("queue_consumers", "Consumers on a queue", lambda q: len(q.consumers)),
    ("queue_messages_ram", "Ready and unacknowledged messages stored in memory",
     lambda q: q.messages_ram + q.unacked),
    ("queue_messages_ready_ram", "Ready messages stored in memory", lambda q: q.messages_ram),
    ("queue_messages_unacked_ram", "Unacknowledged messages stored in memory",
     lambda q: q.unacked),
    ("queue_messages_ram_bytes", "Size of ready and unacknowledged messages stored in memory",
     lambda q: q.message_bytes_ram),
    ("queue_messages_persistent", "Persistent messages", lambda q: q.messages_persistent),
    ("queue_messages_persistent_bytes", "Size in bytes of persistent messages",
     lambda q: q.message_bytes_persistent),
    ("queue_messages_bytes", "Size in bytes of ready and unacknowledged messages",
     lambda q: q.message_bytes),
    ("queue_messages_ready_bytes", "Size in bytes of ready messages", lambda q: q.ready_bytes),
    ("queue_messages_unacked_bytes", "Size in bytes of all unacknowledged messages",
     lambda q: q.unacked_bytes),
    ("queue_messages_paged_out", "Messages paged out to disk",
     lambda q: len(q.ready) - q.messages_ram),
    ("queue_messages_paged_out_bytes", "Size in bytes of messages paged out to disk",
     lambda q: q.message_bytes_paged_out),
)


def _capacity(q: Queue) -> float:
    """RabbitMQ's consumer capacity, as the API gives it: 1 while a consumer can take a
    message at once, else 0."""
    return 1.0 if any(c.can_take() for c in q.consumers) else 0.0


# per queue only: RabbitMQ's /metrics lists these families without samples (a ratio does
# not sum over queues)
_QUEUE_RATIOS = (
    ("queue_consumer_capacity", "Consumer capacity", _capacity),
    ("queue_consumer_utilisation", "Same as consumer capacity", _capacity),
)


def _queues(queues: list[Queue], per_object: bool) -> list[Family]:
    families = []
    for name, help, value in _QUEUE_GAUGES:
        if per_object:
            samples: list[Sample] = [(_queue_labels(q), value(q)) for q in queues]
        else:
            samples = [((), sum(value(q) for q in queues))]
        families.append(Family(name, "gauge", help, samples))
    for name, help, ratio in _QUEUE_RATIOS:
        families.append(Family(name, "gauge", help,
                               [(_queue_labels(q), ratio(q)) for q in queues]
                               if per_object else []))
    return families


def channel_label(ch: Channel) -> str:
    """A channel as the ``channel`` label names it: RabbitMQ gives its Erlang pid; Leveret
    gives its connection's ``<0.N.0>`` (as the log does) with the channel number last."""
    return f"<0.{ch.conn.number}.{ch.id}>"


def _unconfirmed(ch: Channel) -> int:
    confirms = ch.confirms
    return confirms.next_seq - confirms.sent_upto if confirms is not None else 0


def _uncommitted(ch: Channel, kind: str) -> int:
    return sum(1 for item in ch.tx if item[0] == kind) if ch.tx else 0


# channel_metrics: labels {channel}
_CHANNEL_GAUGES = (
    ("channel_consumers", "Consumers on a channel", lambda ch: len(ch.consumers)),
    ("channel_messages_unacked", "Delivered but not yet acknowledged messages",
     lambda ch: ch.unacked),
    ("channel_messages_unconfirmed", "Published but not yet confirmed messages", _unconfirmed),
    ("channel_messages_uncommitted", "Messages received in a transaction but not yet committed",
     lambda ch: _uncommitted(ch, "publish")),
    ("channel_acks_uncommitted", "Message acknowledgements in a transaction not yet committed",
     lambda ch: _uncommitted(ch, "ack")),
    ("consumer_prefetch", "Limit of unacknowledged messages for each consumer",
     lambda ch: ch.prefetch_consumer),
    ("channel_prefetch",
     "Total limit of unacknowledged messages for all consumers on a channel",
     lambda ch: ch.prefetch_channel),
)

# channel_exchange_metrics and channel_queue_metrics: RabbitMQ keeps them per (channel,
# exchange) and (channel, queue); Leveret counts per channel, so per object they carry
# {channel, vhost}
_CHANNEL_COUNTERS = (
    ("channel_messages_published_total",
     "Total number of messages published into an exchange on a channel",
     lambda ch: ch.stat_publish),
    ("channel_messages_confirmed_total",
     "Total number of messages published into an exchange and confirmed on the channel",
     lambda ch: ch.confirms.confirmed if ch.confirms is not None else 0),
    ("channel_messages_unroutable_returned_total",
     "Total number of messages published as mandatory into an exchange and returned to the "
     "publisher as unroutable", lambda ch: ch.stat_return_unroutable),
    ("channel_messages_unroutable_dropped_total",
     "Total number of messages published as non-mandatory into an exchange and dropped as "
     "unroutable", lambda ch: ch.stat_drop_unroutable),
    ("channel_get_ack_total",
     "Total number of messages fetched with basic.get in manual acknowledgement mode",
     lambda ch: ch.stat_get),
    ("channel_get_total",
     "Total number of messages fetched with basic.get in automatic acknowledgement mode",
     lambda ch: ch.stat_get_no_ack),
    ("channel_messages_delivered_ack_total",
     "Total number of messages delivered to consumers in manual acknowledgement mode",
     lambda ch: ch.stat_deliver),
    ("channel_messages_delivered_total",
     "Total number of messages delivered to consumers in automatic acknowledgement mode",
     lambda ch: ch.stat_deliver_no_ack),
    ("channel_messages_redelivered_total", "Total number of messages redelivered to consumers",
     lambda ch: ch.stat_redeliver),
    ("channel_messages_acked_total", "Total number of messages acknowledged by consumers",
     lambda ch: ch.stat_ack),
    ("channel_get_empty_total",
     "Total number of times basic.get operations fetched no message",
     lambda ch: ch.stat_get_empty),
)


def _channels(channels: list[Channel], per_object: bool) -> list[Family]:
    families = []
    for kind, table in (("gauge", _CHANNEL_GAUGES), ("counter", _CHANNEL_COUNTERS)):
        for name, help, value in table:
            if not per_object:
                samples: list[Sample] = [((), sum(value(ch) for ch in channels))]
            elif kind == "gauge":
                samples = [((("channel", channel_label(ch)),), value(ch)) for ch in channels]
            else:
                samples = [((("channel", channel_label(ch)), ("vhost", ch.vhost.name)),
                             value(ch)) for ch in channels]
            families.append(Family(name, kind, help, samples))
    return families


# connection_coarse_metrics and connection_metrics: labels {channel} (the connection's pid,
# under the label RabbitMQ gives it)
_CONNECTION_METRICS = (
    ("connection_incoming_bytes_total", "counter",
     "Total number of bytes received on a connection", lambda c: c.recv_oct),
    ("connection_outgoing_bytes_total", "counter", "Total number of bytes sent on a connection",
     lambda c: c.send_oct),
    ("connection_incoming_packets_total", "counter",
     "Total number of packets received on a connection", lambda c: c.recv_cnt),
    ("connection_outgoing_packets_total", "counter",
     "Total number of packets sent on a connection", lambda c: c.send_cnt),
    ("connection_channels", "gauge", "Channels on a connection", lambda c: len(c.channels)),
)


def _connections(connections: list[Connection], per_object: bool) -> list[Family]:
    families = []
    for name, kind, help, value in _CONNECTION_METRICS:
        if per_object:
            samples: list[Sample] = [((("channel", c.pid),), value(c)) for c in connections]
        else:
            samples = [((), sum(value(c) for c in connections))]
        families.append(Family(name, kind, help, samples))
    return families


def _totals(snap: Snapshot) -> list[Family]:
    return [
        Family("connections", "gauge", "Connections currently open", len(snap.connections)),
        Family("channels", "gauge", "Channels currently open", len(snap.channels)),
        Family("consumers", "gauge", "Consumers currently connected",
               sum(len(ch.consumers) for ch in snap.channels)),
        Family("queues", "gauge", "Queues available", len(snap.queues)),
    ]


def _identity(server: Server, endpoint: str) -> list[Family]:
    import platform

    node = node_name()
    build = (("rabbitmq_version", RABBITMQ_VERSION),
             ("prometheus_plugin_version", RABBITMQ_VERSION),
             ("prometheus_client_version", __version__),
             ("erlang_version", platform.python_version()),
             ("product_name", "Leveret"), ("product_version", __version__))
    identity = (("rabbitmq_node", node),
                ("rabbitmq_cluster", server.settings.cluster_name),
                ("rabbitmq_cluster_permanent_id", permanent_id(server)),
                ("rabbitmq_endpoint", endpoint))
    return [
        Family("build_info", "untyped", "RabbitMQ & Erlang/OTP version info", [(build, 1)]),
        Family("identity_info", "untyped", "RabbitMQ node & cluster identity info",
               [(identity, 1)]),
    ]


def permanent_id(server: Server) -> str:
    """RabbitMQ's ``rabbitmq-cluster-id-...``: made once and kept with the node's data. Here
    it is derived from the node name and the data directory, so it stays the same across
    restarts of a broker on the same data."""
    seed = f"{node_name()}\0{server.settings.data_dir or ''}".encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(seed).digest()[:16]).decode().rstrip("=")
    return "rabbitmq-cluster-id-" + digest


_AMQP = (("protocol", "amqp091"),)

# rabbitmq_global_messages_<name>_total: (name, help, per queue type?)
_GLOBAL_COUNTERS = (
    ("acknowledged", "Total number of messages acknowledged by consumers", True),
    ("confirmed", "Total number of messages confirmed to publishers", False),
    ("delivered_consume_auto_ack", "Total number of messages delivered to consumers using "
     "basic.consume with automatic acknowledgment", True),
    ("delivered_consume_manual_ack", "Total number of messages delivered to consumers using "
     "basic.consume with manual acknowledgment", True),
    ("delivered_get_auto_ack", "Total number of messages delivered to consumers using "
     "basic.get with automatic acknowledgment", True),
    ("delivered_get_manual_ack", "Total number of messages delivered to consumers using "
     "basic.get with manual acknowledgment", True),
    ("delivered", "Total number of messages delivered to consumers", True),
    ("get_empty", "Total number of times basic.get operations fetched no message", True),
    ("received_confirm",
     "Total number of messages received from publishers expecting confirmations", False),
    ("received", "Total number of messages received from publishers", False),
    ("redelivered", "Total number of messages redelivered to consumers", True),
    ("routed", "Total number of messages routed to queues or streams", False),
    ("unroutable_dropped", "Total number of messages published as non-mandatory into an "
     "exchange and dropped as unroutable", False),
    ("unroutable_returned", "Total number of messages published as mandatory into an exchange "
     "and returned to the publisher as unroutable", False),
)

# rabbitmq_global_messages_dead_lettered_<reason>_total
_DEAD_LETTER_HELP = (
    ("delivery_limit", "Total number of messages dead-lettered due to delivery-limit exceeded"),
    ("expired", "Total number of messages dead-lettered due to message TTL exceeded"),
    ("maxlen", "Total number of messages dead-lettered due to overflow drop-head or "
     "reject-publish-dlx"),
    ("rejected", "Total number of messages dead-lettered due to basic.reject or basic.nack"),
)


def _global(server: Server, snap: Snapshot) -> list[Family]:
    totals = global_totals(channel_sums(server.counters, snap.channels))
    consumers = sum(len(ch.consumers) for ch in snap.channels)
    publishers = sum(1 for ch in snap.channels if ch.stat_publish)
    families = [Family("global_consumers", "gauge", "Current number of consumers",
                       [(_AMQP, consumers)])]
    for name, help, by_queue_type in _GLOBAL_COUNTERS:
        if name == "delivered_consume_auto_ack":  # RabbitMQ's order: alphabetical, and ...
            families += _dead_lettered(server)  # ... dead_lettered_* come before delivered_*
        value = totals[name]
        if by_queue_type:
            # every message goes through a classic queue here; RabbitMQ lists all three types
            samples: list[Sample] = [(_AMQP + (("queue_type", qt),),
                                      value if qt == "rabbit_classic_queue" else 0)
                                     for qt in QUEUE_TYPES]
        else:
            samples = [(_AMQP, value)]
        families.append(Family(f"global_messages_{name}_total", "counter", help, samples))
    families.append(Family("global_publishers", "gauge", "Current number of publishers",
                           [(_AMQP, publishers)]))
    return families


def _dead_lettered(server: Server) -> list[Family]:
    counts: dict[tuple[str, str], int] = {}
    for vh in server.vhosts.values():
        for key, n in vh.stat_dead_lettered.items():
            counts[key] = counts.get(key, 0) + n
    families = []
    for reason, help in _DEAD_LETTER_HELP:
        if reason == "delivery_limit":
            continue  # a quorum queue's: none here
        samples: list[Sample] = [
            ((("queue_type", "rabbit_classic_queue"), ("dead_letter_strategy", strategy)),
             counts.get((reason, strategy), 0))
            for strategy in ("at_most_once", "disabled")]
        families.append(Family(f"global_messages_dead_lettered_{reason}_total", "counter",
                               help, samples))
    return families


# ---------------------------------------------------------------------- process figures

def resident_memory() -> int:
    """The process's resident set size, bytes (its peak where there is no ``/proc``)."""
    rss = resources.resident_memory()
    return rss if rss is not None else resources.peak_resident_memory()


def _open_fds() -> int:
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    return 0


# ---------------------------------------------------------------------- HTTP

ENDPOINTS = {"/metrics": False, "/metrics/per-object": True}


class MetricsHandler:
    """Answers scrapes: no authentication, as rabbitmq_prometheus."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __call__(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        if path not in ENDPOINTS:
            return Response(404, b"Unknown Registry", [("content-type", "text/plain")])
        if req.method == "OPTIONS":
            return Response(200, b"", [("allow", "HEAD, GET, OPTIONS")])
        if req.method not in ("GET", "HEAD"):
            return Response(405, b"", [("allow", "HEAD, GET, OPTIONS")])
        body = render(collect(self.server, ENDPOINTS[path]))
        headers = [("content-type", CONTENT_TYPE)]
        if "gzip" in req.headers.get("accept-encoding", ""):  # Prometheus asks for it
            import gzip

            body = gzip.compress(body, compresslevel=1)
            headers.append(("content-encoding", "gzip"))
        else:
            headers.append(("content-encoding", "identity"))
        return Response(200, body, headers)


class PrometheusServer:
    """The metrics listener."""

    def __init__(self, server: Server, listener: asyncio.base_events.Server,
                 connections: set[HTTPProtocol]) -> None:
        self.server = server
        self.listener = listener
        self.connections = connections

    @property
    def port(self) -> int:
        return int(self.listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server = self.server
        server.listeners = [x for x in server.listeners if x.protocol != "http/prometheus"]
        self.listener.close()
        for conn in list(self.connections):
            conn.close()
        await self.listener.wait_closed()


async def start_prometheus(server: Server, host: str, port: int) -> PrometheusServer:
    """Serve ``/metrics`` on ``host:port`` (0: a free port); OSError if that cannot be."""
    from ..server import Listener, _bound_socket

    handler = MetricsHandler(server)
    connections: set[HTTPProtocol] = set()
    loop = asyncio.get_running_loop()

    def protocol() -> HTTPProtocol:
        return HTTPProtocol(handler, 64 * 1024, connections)

    sock = _bound_socket(host, port)
    if sock is not None:  # a numeric address: no getaddrinfo, no resolver threads
        try:
            listener = await loop.create_server(protocol, sock=sock, backlog=128)
        except BaseException:
            sock.close()
            raise
    else:
        listener = await loop.create_server(protocol, host=host or None, port=port,
                                            reuse_address=True, backlog=128)
    for s in listener.sockets:
        address = s.getsockname()
        server.listeners.append(Listener("http/prometheus", address[0], address[1], PLUGINS))
    return PrometheusServer(server, listener, connections)


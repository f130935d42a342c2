"""``/api/queues``: list, show, declare (PUT), delete (``if-empty``/``if-unused``), purge
(``DELETE .../contents``), and ``.../bindings``."""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Any

from ..errors import AMQPError, ChannelError
from ..message import message_of
from .app import Context, not_found
from .format import details, jsonable, node_name, parse_bool, reply_list, timestamp
from .http import HTTPError, Response

if TYPE_CHECKING:
    from ..queue import Queue
    from .stats import Sampler

_MEMORY_PER_MESSAGE = 320  # bytes of bookkeeping per queued message (perf/README.md)


def queue_type(q: Queue) -> str:
    qtype = q.arguments.get("x-queue-type")
    if isinstance(qtype, bytes):
        qtype = qtype.decode("utf-8", "replace")
    return qtype if isinstance(qtype, str) and qtype else "classic"


def queue_basic(q: Queue) -> dict[str, Any]:
    """The fields every queue listing has, whatever its statistics."""
    return {
        "arguments": jsonable(q.arguments),
        "auto_delete": q.auto_delete,
        "durable": q.durable,
        "exclusive": q.exclusive,
        "name": q.name,
        "node": node_name(),
        "type": queue_type(q),
        "vhost": q.vhost.name,
    }


def head_message_timestamp(q: Queue) -> int | None:
    """The timestamp property (seconds) of the message at the head of the ready messages,
    as RabbitMQ shows it; None when the queue is empty or its head has none."""
    if queue_type(q) != "classic":
        return None  # RabbitMQ has it for classic queues only
    head = q.peek(1)
    if not head:
        return None
    value = message_of(head[0]).properties.get("timestamp")
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    return value if isinstance(value, int) else None


def queue_stats(q: Queue, sampler: Sampler) -> dict[str, Any]:
    """A queue as ``GET /api/queues`` lists it (RabbitMQ 3.10's fields)."""
    rates = sampler.queue_rates(q)
    ready = len(q.ready)
    unacked = q.unacked
    ram = q.messages_ram
    consumers = q.consumers
    exclusive_tag = next((c.tag for c in consumers if c.exclusive), None)
    sac_tag = consumers[0].tag if q.options.single_active_consumer and consumers else None
    counts = {
        "ack": q.stat_ack,
        "deliver": q.stat_deliver,
        "deliver_get": q.stat_deliver + q.stat_deliver_no_ack + q.stat_get + q.stat_get_no_ack,
        "deliver_no_ack": q.stat_deliver_no_ack,
        "get": q.stat_get,
        "get_empty": q.stat_get_empty,
        "get_no_ack": q.stat_get_no_ack,
        "publish": q.stat_publish,
        "redeliver": q.stat_redeliver,
    }
    rates["deliver_get"] = round(rates["deliver"] + rates["deliver_no_ack"] + rates["get"]
                                 + rates["get_no_ack"], 1)
    message_stats: dict[str, Any] = {}
    for name, value in counts.items():
        message_stats[name] = value
        message_stats[name + "_details"] = details(rates.get(name, 0.0))
    active = any(c.can_take() for c in consumers)
    out = queue_basic(q)
    out.update({
        "backing_queue_status": {"mode": "default", "len": ready, "version": 1,
                                 "avg_ingress_rate": rates["publish"],
                                 "avg_egress_rate": rates["deliver_get"],
                                 "avg_ack_ingress_rate": 0.0,
                                 "avg_ack_egress_rate": rates["ack"]},
        "consumer_capacity": 1.0 if active else 0,
        "consumer_utilisation": 1.0 if active else 0,
        "consumers": len(consumers),
        "effective_policy_definition": {},
        "exclusive_consumer_tag": exclusive_tag,
        "garbage_collection": {"fullsweep_after": 0, "max_heap_size": 0,
                               "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
        "head_message_timestamp": head_message_timestamp(q),
        "memory": q.ready_bytes + _MEMORY_PER_MESSAGE * (ready + unacked),
        "message_bytes": q.message_bytes,
        "message_bytes_paged_out": q.message_bytes_paged_out,
        "message_bytes_persistent": q.message_bytes_persistent,
        "message_bytes_ram": q.message_bytes_ram,
        "message_bytes_ready": q.ready_bytes,
        "message_bytes_unacknowledged": q.unacked_bytes,
        "message_stats": message_stats,
        "messages": ready + unacked,
        "messages_details": details(rates["messages"]),
        "messages_paged_out": ready - ram,
        "messages_persistent": q.messages_persistent,
        "messages_ram": ram + unacked,
        "messages_ready": ready,
        "messages_ready_details": details(rates["messages_ready"]),
        "messages_ready_ram": ram,
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": details(rates["messages_unacknowledged"]),
        "messages_unacknowledged_ram": unacked,
        "operator_policy": None,
        "policy": None,
        "recoverable_slaves": None,
        "reductions": 0,
        "reductions_details": details(0.0),
        "single_active_consumer_tag": sac_tag,
        "state": "running",
    })
    if queue_type(q) == "quorum":
        # RabbitMQ 3.10 counts none of a quorum queue's messages as in RAM (its
        # message_bytes_ram is 0 already: QuorumQueue), and gives the messages waiting for
        # at-least-once dead-lettering (none here)
        out.update({"messages_ram": 0, "messages_dlx": 0, "message_bytes_dlx": 0})
    if not consumers:
        since = sampler.queue_idle_since(q)
        out["idle_since"] = timestamp(since if since is not None else time.time())
    return out


def consumer_json(c: Any, with_queue: bool = True) -> dict[str, Any]:
    """A consumer as ``/api/consumers`` and a queue's ``consumer_details`` show it."""
    from .connections import channel_details

    q = c.queue
    out = {
        "ack_required": not c.no_ack,
        "active": True,
        "activity_status": "up",
        "arguments": jsonable(c.arguments),
        "channel_details": channel_details(c.channel),
        "consumer_tag": c.tag,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch,
        "queue": {"name": q.name, "vhost": q.vhost.name},
    }
    if q.options.single_active_consumer and q.consumers and q.consumers[0] is not c:
        out["active"] = False
        out["activity_status"] = "waiting"
    return out


# ---------------------------------------------------------------------- handlers

def list_queues(ctx: Context) -> Any:
    sampler = ctx.api.sampler
    items = [queue_stats(q, sampler) for vh in ctx.visible_vhosts() for q in vh.queues.values()]
    return reply_list(ctx.req, items)


def _queue(ctx: Context) -> Queue:
    q = ctx.vhost().queues.get(ctx.params["name"])
    if q is None:
        raise not_found()
    return q


def show_queue(ctx: Context) -> Any:
    q = _queue(ctx)
    out = queue_stats(q, ctx.api.sampler)
    out["consumer_details"] = [consumer_json(c) for c in q.consumers]
    out["deliveries"] = []
    out["incoming"] = []
    return out


def put_queue(ctx: Context) -> Response:
    vhost = ctx.existing_vhost()
    body = ctx.body()
    name = ctx.params["name"]
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise HTTPError(400, "bad_request", "arguments must be an object")
    existed = name in vhost.queues
    ctx.need("configure", "queue", name)
    try:
        # RabbitMQ declares it for the API as for any client: no exclusive owner over HTTP
        vhost.declare_queue(name, None, False, parse_bool(body.get("durable"), False), False,
                            parse_bool(body.get("auto_delete"), False), arguments)
    except ChannelError as exc:
        raise HTTPError(400, "bad_request", exc.text) from None
    return Response(204 if existed else 201)


def delete_queue(ctx: Context) -> Response:
    vhost = ctx.vhost()
    q = vhost.queues.get(ctx.params["name"])
    if q is None:
        raise not_found()
    query = ctx.req.query
    ctx.need("configure", "queue", q.name)
    try:
        vhost.delete_queue(q, if_unused=query.get("if-unused") == "true",
                           if_empty=query.get("if-empty") == "true")
    except ChannelError as exc:
        raise HTTPError(400, "bad_request", exc.text) from None
    return Response(204)


def purge_queue(ctx: Context) -> Response:
    q = _queue(ctx)
    ctx.need("read", "queue", q.name)
    try:
        q.check_purge()  # a stream refuses it
    except AMQPError as exc:
        raise HTTPError(400, "bad_request", exc.text) from None  # RabbitMQ's words
    q.purge()
    return Response(204)


def queue_bindings(ctx: Context) -> Any:
    from .bindings import binding_json, default_binding

    q = _queue(ctx)
    vhost = q.vhost
    items = [default_binding(q)]
    for ex in vhost.exchanges.values():
        for b in ex.bindings_to(q):
            items.append(binding_json(vhost, ex, b))
    return reply_list(ctx.req, items, default_sort=())


def queue_actions(ctx: Context) -> Response:
    _queue(ctx)
    action = ctx.body().get("action")
    if action in ("sync", "cancel_sync"):
        return Response(204)  # a single node has no mirrors to synchronise
    raise HTTPError(400, "bad_request", f"Unknown action {action!r}")

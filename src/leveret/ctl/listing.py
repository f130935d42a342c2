"""The ``list_*`` commands: rabbitmqctl's columns, defaults, banners and formats over the
management API's JSON.

The API has no Erlang process ids: a ``pid`` column shows the connection's or channel's name
(what ``close_connection`` takes), ``channel_pid`` the channel's name. Columns the API does not
report print empty, as rabbitmqctl prints an undefined value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import EX_DATAERR, ApiError, CtlError, UsageError, quote
from .context import Context

Row = dict[str, Any]


def _same(obj: Row) -> Row:
    return obj


def _binding(b: Row) -> Row:
    return {"source_name": b.get("source"), "source_kind": "exchange",
            "destination_name": b.get("destination"),
            "destination_kind": b.get("destination_type"),
            "routing_key": b.get("routing_key"), "arguments": b.get("arguments")}


def _connection(c: Row) -> Row:
    return {**c, "pid": c.get("name")}


def _channel(c: Row) -> Row:
    return {**c, "pid": c.get("name"),
            "connection": (c.get("connection_details") or {}).get("name")}


def _consumer(c: Row) -> Row:
    return {**c, "queue_name": (c.get("queue") or {}).get("name"),
            "channel_pid": (c.get("channel_details") or {}).get("name")}


def _user(u: Row) -> Row:
    return {"user": u.get("name"), "tags": u.get("tags")}


@dataclass(frozen=True)
class Listing:
    """One ``list_*`` command."""

    path: Callable[[Context], str]
    banner: Callable[[Context], list[str]]
    columns: tuple[str, ...]  # every column it takes, in rabbitmqctl's order
    default: tuple[str, ...]
    row: Callable[[Row], Row] = _same
    takes_columns: bool = True
    # what an unknown vhost gives: rabbitmqctl lists nothing for queues, exchanges, bindings
    # and consumers (exit 0) but refuses list_permissions (exit 65)
    vhost_must_exist: bool = False
    # what rabbitmqctl prints for no rows, by formatter, where it is not nothing (its
    # list_permissions is not streamed: an empty line, or [] in JSON)
    empty: tuple[tuple[str, str], ...] = ()


def _vhost_banner(text: str) -> Callable[[Context], list[str]]:
    return lambda ctx: [text.format(vhost=ctx.vhost)]


LISTINGS: dict[str, Listing] = {
    "list_queues": Listing(
        lambda ctx: f"/queues/{quote(ctx.vhost)}",
        lambda ctx: ["Timeout: 60.0 seconds ...", f"Listing queues for vhost {ctx.vhost} ..."],
        ("name", "durable", "auto_delete", "arguments", "policy", "pid", "owner_pid",
         "exclusive", "exclusive_consumer_pid", "exclusive_consumer_tag", "messages_ready",
         "messages_unacknowledged", "messages", "messages_ready_ram",
         "messages_unacknowledged_ram", "messages_ram", "messages_persistent", "message_bytes",
         "message_bytes_ready", "message_bytes_unacknowledged", "message_bytes_ram",
         "message_bytes_persistent", "head_message_timestamp", "disk_reads", "disk_writes",
         "consumers", "consumer_utilisation", "consumer_capacity", "memory", "slave_pids",
         "synchronised_slave_pids", "state", "type", "leader", "members", "online"),
        ("name", "messages")),
    "list_exchanges": Listing(
        lambda ctx: f"/exchanges/{quote(ctx.vhost)}",
        _vhost_banner("Listing exchanges for vhost {vhost} ..."),
        ("name", "type", "durable", "auto_delete", "internal", "arguments", "policy"),
        ("name", "type")),
    "list_bindings": Listing(
        lambda ctx: f"/bindings/{quote(ctx.vhost)}",
        _vhost_banner("Listing bindings for vhost {vhost}..."),
        ("source_name", "source_kind", "destination_name", "destination_kind", "routing_key",
         "arguments"),
        ("source_name", "source_kind", "destination_name", "destination_kind", "routing_key",
         "arguments"),
        _binding),
    "list_connections": Listing(
        lambda ctx: "/connections",
        lambda ctx: ["Listing connections ..."],
        ("auth_mechanism", "channel_max", "channels", "client_properties", "connected_at",
         "frame_max", "host", "name", "peer_cert_issuer", "peer_cert_subject",
         "peer_cert_validity", "peer_host", "peer_port", "pid", "port", "protocol", "recv_cnt",
         "recv_oct", "send_cnt", "send_oct", "send_pend", "ssl", "ssl_cipher", "ssl_hash",
         "ssl_key_exchange", "ssl_protocol", "state", "timeout", "user", "vhost"),
        ("user", "peer_host", "peer_port", "state"),
        _connection),
    "list_channels": Listing(
        lambda ctx: "/channels",
        lambda ctx: ["Listing channels ..."],
        ("acks_uncommitted", "confirm", "connection", "consumer_count",
         "global_prefetch_count", "messages_unacknowledged", "messages_uncommitted",
         "messages_unconfirmed", "name", "number", "pid", "prefetch_count", "transactional",
         "user", "vhost"),
        ("pid", "user", "consumer_count", "messages_unacknowledged"),
        _channel),
    "list_consumers": Listing(
        lambda ctx: f"/consumers/{quote(ctx.vhost)}",
        _vhost_banner("Listing consumers in vhost {vhost} ..."),
        ("queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count",
         "active", "activity_status", "arguments"),
        ("queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count",
         "active", "arguments"),
        _consumer),
    "list_vhosts": Listing(
        lambda ctx: "/vhosts",
        lambda ctx: ["Listing vhosts ..."],
        ("name", "tags", "description", "default_queue_type", "tracing", "cluster_state"),
        ("name",)),
    "list_users": Listing(
        lambda ctx: "/users",
        lambda ctx: ["Listing users ..."],
        ("user", "tags"), ("user", "tags"), _user, takes_columns=False),
    "list_permissions": Listing(
        lambda ctx: f"/vhosts/{quote(ctx.vhost)}/permissions",
        lambda ctx: [f'Listing permissions for vhost "{ctx.vhost}" ...'],
        ("user", "configure", "write", "read"), ("user", "configure", "write", "read"),
        takes_columns=False, vhost_must_exist=True,
        empty=(("table", "\n"), ("json", "[]\n"))),
}


def requested_columns(name: str, listing: Listing, args: list[str]) -> list[str]:
    """The columns asked for (``name messages`` or ``name,messages``), else the default."""
    if not listing.takes_columns:
        if args:
            raise UsageError("too many arguments.")
        return list(listing.default)
    columns = [c for arg in args for c in arg.split(",") if c]
    unknown = [c for c in columns if c not in listing.columns]
    if unknown:
        raise UsageError(f"Info key(s) {','.join(unknown)} are not supported")
    return columns or list(listing.default)


def run_listing(ctx: Context, name: str, args: list[str]) -> int:
    listing = LISTINGS[name]
    columns = requested_columns(name, listing, args)
    for line in listing.banner(ctx):
        ctx.info(line)
    try:
        objects = ctx.api.get(listing.path(ctx)) or []
    except ApiError as exc:
        if exc.status != 404:
            raise
        if listing.vhost_must_exist:
            raise CtlError(EX_DATAERR, f"Virtual host '{ctx.vhost}' does not exist",
                           bare=True) from None
        objects = []  # rabbitmqctl: an unknown vhost has nothing to list
    empty = dict(listing.empty).get(ctx.formatter)
    if not objects and empty is not None:
        ctx.out.write(empty)
        return 0
    ctx.rows(columns, [listing.row(obj) for obj in objects])
    return 0

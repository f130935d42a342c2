"""Node status and health checks: rabbitmqctl's ``status`` and ``await_startup``,
rabbitmq-diagnostics' ``ping``, ``check_running``, ``check_port_connectivity``,
``check_local_alarms``, ``listeners``, ``server_version``, from the management API's overview
and node objects."""

from __future__ import annotations

import socket
import time
from typing import Any

from .client import EX_UNAVAILABLE, ApiError, CtlError
from .context import Context
from .output import write_json

# what rabbitmq-diagnostics says each listener is for
PURPOSES = {
    "amqp": "AMQP 0-9-1 and AMQP 1.0",
    "amqp/ssl": "AMQP 0-9-1 and AMQP 1.0 over TLS",
    "http": "HTTP API",
    "https": "HTTP API over TLS (HTTPS)",
    "http/prometheus": "Prometheus exporter API over HTTP",
    "https/prometheus": "Prometheus exporter API over TLS (HTTPS)",
    "clustering": "inter-node and CLI tool communication",
}


def _message(ctx: Context, text: str) -> int:
    if ctx.formatter == "json":
        write_json(ctx.out, {"message": text})
    else:
        ctx.out.write(text + "\n")
    return 0


def _overview(ctx: Context) -> dict[str, Any]:
    return dict(ctx.api.get("/overview") or {})


def _interface(listener: dict[str, Any]) -> str:
    address = str(listener.get("ip_address", ""))
    return f"[{address}]" if ":" in address else address


def _listeners(overview: dict[str, Any]) -> list[dict[str, Any]]:
    node = overview.get("node")
    return [{"interface": _interface(x), "node": node, "port": x.get("port"),
             "protocol": x.get("protocol"), "purpose": PURPOSES.get(x.get("protocol"), "")}
            for x in overview.get("listeners") or [] if x.get("node", node) == node]


def ping(ctx: Context) -> int:
    try:
        node = _overview(ctx).get("node", "unknown")
    except CtlError as exc:
        raise CtlError(exc.code, f"Failed to connect and authenticate to the broker at "
                                 f"{ctx.api.shown} in {int(ctx.api.timeout * 1000)} ms"
                       ) from None
    ctx.info(f"Will ping {node}. This only checks that its management API answers. "
             f"Timeout: {int(ctx.api.timeout * 1000)} ms.")
    return _message(ctx, "Ping succeeded")


def check_running(ctx: Context) -> int:
    node = _overview(ctx).get("node", "unknown")
    ctx.info(f"Checking if RabbitMQ is running on node {node} ...")
    return _message(ctx, f"RabbitMQ on node {node} is fully booted and running")


def is_running(ctx: Context) -> int:
    node = _overview(ctx).get("node", "unknown")
    ctx.info(f"Asking node {node} for its status ...")
    text = f"RabbitMQ on node {node} is fully booted and running"
    if ctx.formatter == "json":  # rabbitmq-diagnostics adds the answer
        write_json(ctx.out, {"message": text, "result": True})
        return 0
    return _message(ctx, text)


def server_version(ctx: Context) -> int:
    overview = _overview(ctx)
    ctx.info(f"Asking node {overview.get('node')} for its RabbitMQ version...")
    version = str(overview.get("rabbitmq_version", ""))
    if ctx.formatter == "json":
        write_json(ctx.out, {"result": "ok", "value": version})
    else:
        ctx.out.write(version + "\n")
    return 0


def listeners(ctx: Context) -> int:
    overview = _overview(ctx)
    found = _listeners(overview)
    ctx.info(f"Asking node {overview.get('node')} to report its protocol listeners ...")
    if ctx.formatter == "json":
        write_json(ctx.out, {"listeners": found, "node": overview.get("node"),
                             "result": "ok"})
        return 0
    for x in found:
        ctx.out.write(f"Interface: {x['interface']}, port: {x['port']}, protocol: "
                      f"{x['protocol']}, purpose: {x['purpose']}\n")
    return 0


def check_port_connectivity(ctx: Context) -> int:
    overview = _overview(ctx)
    node = overview.get("node")
    ctx.info(f"Testing TCP connections to all active listeners on node {node} ...")
    found = _listeners(overview)
    failed = []
    for x in found:
        address = str(x["interface"]).strip("[]")
        host = ctx.api.host if address in ("", "0.0.0.0", "::") else address
        try:
            socket.create_connection((host, int(x["port"])), timeout=ctx.api.timeout).close()
        except OSError:
            failed.append(x)
    if failed:
        ports = ", ".join(f"{x['port']} ({x['protocol']})" for x in failed)
        raise CtlError(EX_UNAVAILABLE, "Connection to ports of the following listeners on "
                                       f"node {node} failed: {ports}")
    if ctx.formatter == "json":
        write_json(ctx.out, {"listeners": found, "node": node, "result": "ok"})
        return 0
    ports = ", ".join(str(x["port"]) for x in found)
    ctx.out.write(f"Successfully connected to ports {ports} on node {node}.\n")
    return 0


def _node(ctx: Context, name: str) -> dict[str, Any]:
    try:
        return dict(ctx.api.get(f"/nodes/{name}") or {})
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise


def _alarms(node: dict[str, Any]) -> list[str]:
    alarms = []
    if node.get("mem_alarm"):
        alarms.append("memory")
    if node.get("disk_free_alarm"):
        alarms.append("disk")
    return alarms


# how rabbitmq-diagnostics names each alarm (RabbitMQ.CLI.Core.Alarms.alarm_lines)
_ALARM_LINES = {"memory": "Memory alarm on node {node}",
                "disk": "Free disk space alarm on node {node}"}


def _check_alarms(ctx: Context, passed: str) -> int:
    """check_local_alarms and check_alarms (one node: its alarms are all of them): exit 0
    with ``passed``, or 69 with one line per alarm; ``{"result": "ok"}`` in JSON; nothing
    with ``-s``."""
    overview = _overview(ctx)
    name = str(overview.get("node"))
    alarms = _alarms(_node(ctx, name))
    ctx.info(f"Asking node {name} to report any local resource alarms ...")
    lines = [_ALARM_LINES[a].format(node=name) for a in alarms]
    if ctx.formatter == "json":
        if lines:
            write_json(ctx.out, {"result": "error", "local": lines, "global": [],
                                 "message": f"Node {name} reported alarms"})
            return EX_UNAVAILABLE
        write_json(ctx.out, {"result": "ok"})
        return 0
    if lines:
        raise CtlError(EX_UNAVAILABLE, "\n".join(lines))
    if not ctx.silent:
        ctx.out.write(passed.format(node=name) + "\n")
    return 0


def check_local_alarms(ctx: Context) -> int:
    return _check_alarms(ctx, "Node {node} reported no local alarms")


def check_alarms(ctx: Context) -> int:
    return _check_alarms(ctx, "Node {node} reported no alarms, local or clusterwide")


def _integer(value: Any) -> Any:
    # the API gives the OS pid as a string; rabbitmqctl's JSON as a number
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _gb(value: Any) -> str:
    return f"{round(int(value or 0) / 1_000_000_000, 4)} gb"


def status(ctx: Context) -> int:
    overview = _overview(ctx)
    name = str(overview.get("node", "unknown"))
    node = _node(ctx, name)
    vhosts = ctx.api.get("/vhosts") or []
    totals = overview.get("object_totals") or {}
    found = _listeners(overview)
    plugins = [str(p) for p in node.get("enabled_plugins") or []]
    if ctx.formatter == "json":
        write_json(ctx.out, {
            "pid": _integer(node.get("os_pid")), "node": name,
            "product_name": overview.get("product_name"),
            "product_version": overview.get("product_version"),
            "rabbitmq_version": overview.get("rabbitmq_version"),
            "uptime": int(node.get("uptime") or 0) // 1000,
            "active_plugins": plugins, "alarms": _alarms(node), "listeners": found,
            "data_directory": node.get("db_dir"), "config_files": node.get("config_files", []),
            "log_files": node.get("log_files", []),
            "vm_memory_high_watermark_limit": node.get("mem_limit"),
            "memory": {"total": {"rss": node.get("mem_used")}},
            "disk_free": node.get("disk_free"), "disk_free_limit": node.get("disk_free_limit"),
            "file_descriptors": {"total_used": node.get("fd_used"),
                                 "total_limit": node.get("fd_total"),
                                 "sockets_used": node.get("sockets_used"),
                                 "sockets_limit": node.get("sockets_total")},
            "totals": {"connection_count": totals.get("connections"),
                       "queue_count": totals.get("queues"),
                       "virtual_host_count": len(vhosts)},
        })
        return 0
    ctx.info(f"Status of node {name} ...")
    lines = [
        "Runtime", "",
        f"OS PID: {node.get('os_pid', '')}",
        f"Uptime (seconds): {int(node.get('uptime') or 0) // 1000}",
        f"RabbitMQ version: {overview.get('rabbitmq_version', '')}",
        f"Product name: {overview.get('product_name', '')}",
        f"Product version: {overview.get('product_version', '')}",
        f"Node name: {name}",
        f"Erlang configuration: {overview.get('erlang_full_version', '')}",
        "", "Plugins", "",
        "Enabled plugins:", "", *[f" * {p}" for p in plugins],
        "", "Data directory", "",
        f"Node data directory: {node.get('db_dir', '')}",
        "", "Config files", "", *[f" * {f}" for f in node.get("config_files") or []],
        "", "Log file(s)", "", *[f" * {f}" for f in node.get("log_files") or []],
        "", "Alarms", "", *(_alarms(node) or ["(none)"]),
        "", "Memory", "",
        f"Total memory used: {_gb(node.get('mem_used'))}",
        f"Memory high watermark setting: computed to: {_gb(node.get('mem_limit'))}",
        "", "File Descriptors", "",
        f"Total: {node.get('fd_used', '')}, limit: {node.get('fd_total', '')}",
        f"Sockets: {node.get('sockets_used', '')}, limit: {node.get('sockets_total', '')}",
        "", "Free Disk Space", "",
        f"Low free disk space watermark: {_gb(node.get('disk_free_limit'))}",
        f"Free disk space: {_gb(node.get('disk_free'))}",
        "", "Totals", "",
        f"Connection count: {totals.get('connections', 0)}",
        f"Queue count: {totals.get('queues', 0)}",
        f"Virtual host count: {len(vhosts)}",
        "", "Listeners", "",
        *[f"Interface: {x['interface']}, port: {x['port']}, protocol: {x['protocol']}, "
          f"purpose: {x['purpose']}" for x in found],
    ]
    ctx.out.write("\n".join(lines) + "\n")
    return 0


def await_startup(ctx: Context) -> int:
    """Wait until the broker answers (its management API), at most ``-t`` seconds (300)."""
    limit = ctx.timeout if ctx.timeout is not None else 300.0
    deadline = time.monotonic() + limit
    while True:
        try:
            _overview(ctx)
            return 0
        except CtlError as exc:
            if time.monotonic() >= deadline:
                raise CtlError(EX_UNAVAILABLE, f"the broker did not start in {limit:g} "
                                               f"seconds: {exc.message}") from None
        except ApiError as exc:
            if exc.status in (401, 403) or time.monotonic() >= deadline:
                raise
        # a command-line tool waiting on another process: nothing to be woken by but time
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

"""Shared shapes of the management API: JSON-safe values, rates, time stamps, and RabbitMQ's
list handling (sort, ``columns``, pagination envelope: rabbit_mgmt_util in
``deps/rabbitmq_management``)."""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable
from typing import Any

from ..settings import node_name as settings_node_name
from .http import HTTPError, Request

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500

def node_name() -> str:
    """``rabbit@host`` in RabbitMQ; Leveret says ``leveret@host``."""
    return settings_node_name()


def jsonable(value: Any) -> Any:
    """An AMQP field value (arguments, headers) as JSON: bytes as text, decimals and times
    as numbers, tables as objects."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        return int(value.replace(tzinfo=value.tzinfo or datetime.timezone.utc).timestamp())
    return value


def details(rate: float) -> dict[str, float]:
    return {"rate": float(rate)}


def with_details(counts: dict[str, int], rates: dict[str, float]) -> dict[str, Any]:
    """``{"publish": 3, "publish_details": {"rate": 0.5}, ...}``."""
    out: dict[str, Any] = {}
    for name, value in counts.items():
        out[name] = value
        out[name + "_details"] = details(rates.get(name, 0.0))
    return out


def timestamp(seconds: float) -> str:
    """RabbitMQ 3.10's ``idle_since`` form: ``2026-11-25T16:06:51.065+00:00``."""
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+00:00"


def millis(seconds: float) -> int:
    return int(seconds * 1000)


# ---------------------------------------------------------------------- lists

def _dotted(item: Any, key: str) -> Any:
    value: Any = item
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    # RabbitMQ puts a missing value first ("nothing" sorts as 0); Erlang orders
    # numbers < atoms < ... < binaries
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (2, str(value).lower())
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (3, value)
    return (4, repr(value))


def _columns(req: Request) -> list[list[str]] | None:
    text = req.query.get("columns")
    if text is None:
        return None
    return [c.split(".") for c in text.split(",") if c]


def _pick(item: Any, columns: list[list[str]] | None) -> Any:
    """Keep only the ``columns`` of ``item`` (dotted paths descend into objects)."""
    if columns is None or not isinstance(item, dict):
        return item
    out = {}
    for key, value in item.items():
        sub = [c[1:] for c in columns if c[0] == key]
        if not sub:
            continue
        out[key] = value if any(not s for s in sub) else _pick(value, sub)
    return out


def pick_columns(req: Request, item: Any) -> Any:
    """One object with only the requested ``columns``."""
    return _pick(item, _columns(req))


def reply_list(req: Request, items: list[dict[str, Any]],
               default_sort: tuple[str, ...] = ("vhost", "name")) -> Any:
    """Sort, filter and page ``items`` as RabbitMQ's ``reply_list_or_paginate`` does: sorted by
    ``sort`` then the defaults, reversed by ``sort_reverse=true``, cut to ``columns``; with
    ``page`` the paged envelope, filtered by ``name`` (substring, or a regex with
    ``use_regex=true``, both caseless)."""
    q = req.query
    page = _int_param(q, "page")
    page_size = _int_param(q, "page_size")
    if page is None:
        paged = False
    elif page > 0 and (page_size is None or 0 < page_size <= MAX_PAGE_SIZE):
        paged = True
        page_size = page_size or DEFAULT_PAGE_SIZE
    else:
        raise HTTPError(400, "invalid_pagination_parameters",
                        f"Invalid pagination parameters: page number {page}, page size "
                        f"{page_size if page_size is not None else 'undefined'}")
    sort = q.get("sort")
    if sort != "":  # an explicit empty sort means "do not sort"
        keys = ([sort] if sort else []) + [k for k in default_sort if k != sort]
        items = sorted(items, key=lambda it: [_sort_key(_dotted(it, k)) for k in keys])
    if q.get("sort_reverse") == "true":
        items = items[::-1]
    columns = _columns(req)
    if not paged:
        return [_pick(it, columns) for it in items]
    assert page is not None and page_size is not None
    total = len(items)
    name = q.get("name")
    if name:
        if q.get("use_regex") == "true":
            try:
                pattern = re.compile(name, re.IGNORECASE)
            except re.error:
                raise HTTPError(400, "bad_request", "Pagination parameters are invalid") from None
            match: Callable[[str], bool] = lambda s: pattern.search(s) is not None  # noqa: E731
        else:
            lowered = name.lower()
            match = lambda s: lowered in s.lower()  # noqa: E731
        items = [it for it in items if match(str(it.get("name", "")))]
    start = (page - 1) * page_size
    if start > len(items):  # lists:sublist/3 past the end + 1
        raise HTTPError(400, "page_out_of_range",
                        f"Page out of range, page: {page} page size: {page_size}, "
                        f"len: {len(items)}")
    chunk = items[start:start + page_size]
    return {
        "filtered_count": len(items),
        "item_count": len(chunk),
        "items": [_pick(it, columns) for it in chunk],
        "page": page,
        "page_count": (len(items) + page_size - 1) // page_size,
        "page_size": page_size,
        "total_count": total,
    }


def _int_param(query: dict[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise HTTPError(400, "bad_request", "Pagination parameters are invalid") from None


def keys_missing(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    """400 naming every key of ``keys`` that ``body`` lacks (a JSON null counts as missing),
    in RabbitMQ's words: rabbit_mgmt_util:with_decode prints the list with ``~p``, which puts
    each element on a line of its own when the list does not fit in 80 columns."""
    missing = [f"{{key_missing,{k}}}" for k in keys if body.get(k) is None]
    if not missing:
        return
    text = "[" + ",".join(missing) + "]"
    if len(text) > 80:
        text = "[" + ",\n ".join(missing) + "]"
    raise HTTPError(400, "bad_request", text)


def parse_bool(value: Any, default: bool = False) -> bool:
    """JSON booleans, or the strings rabbitmqadmin sends ("true"/"false")."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise HTTPError(400, "bad_request", f"{value!r} is not a boolean")


def parse_int(value: Any, what: str) -> int:
    """A JSON number, or one sent as a string (rabbitmqadmin sends strings)."""
    if isinstance(value, bool):
        raise HTTPError(400, "bad_request", f"{what}: {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise HTTPError(400, "bad_request", f"{what}: {value!r} is not an integer")


def resource_figures(server: Any) -> dict[str, Any]:
    """The node's memory and disk figures and alarms, as the API's node object and the
    Prometheus metrics give them: ``mem_used`` (the figure the watermark compares: RSS, or
    queued bytes with the ``queued`` strategy), ``mem_limit`` (the watermark in bytes; the
    memory itself when there is none), ``mem_alarm``, ``disk_free`` (of the data dir's
    filesystem, or the working directory's in memory), ``disk_free_limit``, ``disk_free_alarm``.
    """
    import os

    from .. import disk, resources

    memory = server.memory
    if memory.strategy == "queued":
        memory.check_release()  # usage may have fallen with nobody blocked to notice
        used = memory.used
    else:
        rss = resources.resident_memory()
        used = rss if rss is not None else memory.process
    monitor = server.disk
    free = monitor.free if monitor is not None else None
    if free is None:
        try:
            free = resources.disk_free(server.settings.data_dir or os.getcwd())
        except OSError:
            free = 0
    return {
        "mem_used": used,
        "mem_limit": memory.limit if memory.limit is not None else server.total_memory,
        "mem_alarm": "memory" in memory.alarms,
        "disk_free": free,
        "disk_free_limit": monitor.limit if monitor is not None else disk.DEFAULT_LIMIT,
        "disk_free_alarm": "disk" in memory.alarms,
    }

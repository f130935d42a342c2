"""rabbitmqctl's commands that change things: users, vhosts, permissions, queues,
connections, definitions. Each prints rabbitmqctl's banner line, calls the management API
and turns its answers into rabbitmqctl's messages and exit codes (those of RabbitMQ 3.10,
quirks included: a queue delete_queue cannot find exits 64, purge_queue's 69)."""

from __future__ import annotations

import json
import sys
from typing import Any

from .client import (
    EX_DATAERR,
    EX_NOUSER,
    EX_SOFTWARE,
    EX_UNAVAILABLE,
    EX_USAGE,
    ApiError,
    CtlError,
    quote,
)
from .context import Context


def _user_or_fail(ctx: Context, user: str, quoted: bool = True) -> dict[str, Any]:
    found = ctx.api.get_or_none(f"/users/{quote(user)}")
    if found is None:
        shown = f'"{user}"' if quoted else user
        raise CtlError(EX_NOUSER, f"User {shown} does not exist")
    return dict(found)


def _vhost_or_fail(ctx: Context) -> None:
    if ctx.api.get_or_none(f"/vhosts/{quote(ctx.vhost)}") is None:
        raise CtlError(EX_UNAVAILABLE, f"Virtual host {ctx.vhost} does not exist")


def _tags(user: dict[str, Any]) -> str:
    tags = user.get("tags") or []
    return ",".join(tags) if isinstance(tags, list) else str(tags)


# ---------------------------------------------------------------------- users

def add_user(ctx: Context, name: str, password: str) -> int:
    ctx.info(f'Adding user "{name}" ...')
    if ctx.api.get_or_none(f"/users/{quote(name)}") is not None:
        raise CtlError(EX_SOFTWARE, f'User "{name}" already exists')
    ctx.api.put(f"/users/{quote(name)}", {"password": password, "tags": ""})
    ctx.info("Done. Don't forget to grant the user permissions to some virtual hosts! See "
             f"'{ctx.tool} help set_permissions' to learn more.")
    return 0


def delete_user(ctx: Context, name: str) -> int:
    ctx.info(f'Deleting user "{name}" ...')
    try:
        ctx.api.delete(f"/users/{quote(name)}")
    except ApiError as exc:
        if exc.status == 404:
            raise CtlError(EX_NOUSER, f'User "{name}" does not exist') from None
        raise
    return 0


def change_password(ctx: Context, name: str, password: str) -> int:
    ctx.info(f'Changing password for user "{name}" ...')
    user = _user_or_fail(ctx, name)
    ctx.api.put(f"/users/{quote(name)}", {"password": password, "tags": _tags(user)})
    return 0


def set_user_tags(ctx: Context, name: str, *tags: str) -> int:
    ctx.info(f'Setting tags for user "{name}" to [{", ".join(tags)}] ...')
    user = _user_or_fail(ctx, name)
    # the API clears a password it is not given: hand the hash back
    body = {"password_hash": user.get("password_hash", ""), "tags": ",".join(tags)}
    if user.get("hashing_algorithm"):
        body["hashing_algorithm"] = user["hashing_algorithm"]
    ctx.api.put(f"/users/{quote(name)}", body)
    return 0


# ---------------------------------------------------------------------- vhosts, permissions

def add_vhost(ctx: Context, name: str) -> int:
    ctx.info(f'Adding vhost "{name}" ...')
    body: dict[str, Any] = {}
    for option in ("description", "tags", "default_queue_type"):
        if ctx.options.get(option) is not None:
            body[option] = ctx.options[option]
    path = f"/vhosts/{quote(name)}"
    existed = ctx.api.get_or_none(path) is not None
    ctx.api.put(path, body)
    if not existed:
        # the API gives the user who creates a vhost full permissions in it
        # (rabbit_mgmt_wm_vhost); rabbitmqctl's add_vhost gives nobody any
        try:
            ctx.api.delete(f"/permissions/{quote(name)}/{quote(ctx.api.user)}")
        except ApiError as exc:
            if exc.status != 404:
                raise
    return 0


def delete_vhost(ctx: Context, name: str) -> int:
    ctx.info(f'Deleting vhost "{name}" ...')
    try:
        ctx.api.delete(f"/vhosts/{quote(name)}")
    except ApiError as exc:
        if exc.status == 404:
            raise CtlError(EX_DATAERR, f"Virtual host '{name}' does not exist",
                           bare=True) from None
        raise
    return 0


def set_permissions(ctx: Context, user: str, configure: str, write: str, read: str) -> int:
    ctx.info(f'Setting permissions for user "{user}" in vhost "{ctx.vhost}" ...')
    _vhost_or_fail(ctx)
    _user_or_fail(ctx, user, quoted=False)
    ctx.api.put(f"/permissions/{quote(ctx.vhost)}/{quote(user)}",
                {"configure": configure, "write": write, "read": read})
    return 0


def clear_permissions(ctx: Context, user: str) -> int:
    ctx.info(f'Clearing permissions for user "{user}" in vhost "{ctx.vhost}" ...')
    _vhost_or_fail(ctx)
    _user_or_fail(ctx, user, quoted=False)
    try:
        ctx.api.delete(f"/permissions/{quote(ctx.vhost)}/{quote(user)}")
    except ApiError as exc:
        if exc.status != 404:  # none to clear: done all the same
            raise
    return 0


# ---------------------------------------------------------------------- queues, connections

def purge_queue(ctx: Context, name: str) -> int:
    ctx.info(f"Purging queue '{name}' in vhost '{ctx.vhost}' ...")
    try:
        ctx.api.delete(f"/queues/{quote(ctx.vhost)}/{quote(name)}/contents")
    except ApiError as exc:
        if exc.status == 404:
            raise CtlError(EX_UNAVAILABLE, "not_found") from None
        raise
    return 0


def delete_queue(ctx: Context, name: str) -> int:
    if_empty, if_unused = ctx.options.get("if_empty"), ctx.options.get("if_unused")
    condition = " and ".join(w for w, on in (("empty", if_empty), ("unused", if_unused)) if on)
    ctx.info(f"Deleting queue '{name}' on vhost '{ctx.vhost}'"
             f"{' if queue is ' + condition if condition else ''} ...")
    path = f"/queues/{quote(ctx.vhost)}/{quote(name)}"
    # its ready count, for the message (RabbitMQ's API may not list a brand new queue yet:
    # the delete decides whether it exists)
    queue = ctx.api.get_or_none(path) or {}
    query = "&".join(q for q, on in (("if-empty=true", if_empty), ("if-unused=true", if_unused))
                     if on)
    try:
        ctx.api.delete(path + ("?" + query if query else ""))
    except ApiError as exc:
        if exc.status == 404:
            raise CtlError(EX_USAGE, "Queue not found") from None
        if exc.status == 400 and if_empty and int(queue.get("messages") or 0):
            raise CtlError(EX_USAGE, "Queue is not empty") from None
        if exc.status == 400 and if_unused:
            raise CtlError(EX_USAGE, "Queue is in use") from None
        raise
    ctx.info(f"Queue was successfully deleted with {int(queue.get('messages_ready') or 0)} "
             "ready messages")
    return 0


def close_connection(ctx: Context, name: str, reason: str) -> int:
    ctx.info(f"Closing connection {name}, reason: {reason}...")
    try:
        ctx.api.delete(f"/connections/{quote(name)}", headers={"X-Reason": reason})
    except ApiError as exc:
        if exc.status == 404:
            raise CtlError(EX_UNAVAILABLE, f"no connection named '{name}'") from None
        raise
    return 0


# ---------------------------------------------------------------------- definitions

def export_definitions(ctx: Context, path: str) -> int:
    if path != "-":
        ctx.info(f'Exporting definitions in JSON to a file at "{path}" ...')
    definitions = ctx.api.get("/definitions")
    text = json.dumps(definitions, separators=(",", ":"), ensure_ascii=False)
    if path == "-":
        ctx.out.write(text)
        return 0
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise CtlError(EX_DATAERR, f"cannot write to file {path}: {exc.strerror}") from None
    return 0


def import_definitions(ctx: Context, path: str) -> int:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CtlError(EX_DATAERR, f"Bad argument: File {path} does not exist",
                           bare=True) from None
        except OSError as exc:
            raise CtlError(EX_DATAERR, f"cannot read file {path}: {exc.strerror}") from None
    ctx.info("Importing definitions in JSON from standard input ..." if path == "-" else
             f'Importing definitions in JSON from a file at "{path}" ...')
    try:
        json.loads(data)
    except ValueError as exc:
        raise CtlError(EX_DATAERR, f"{'standard input' if path == '-' else path} is not "
                                   f"JSON: {exc}") from None
    try:
        ctx.api.post("/definitions", data)
    except ApiError as exc:
        if exc.status == 400:
            raise CtlError(EX_DATAERR, f"definitions were not imported: {exc.reason}") from None
        raise
    ctx.info("Successfully started definition import. This process is asynchronous and can "
             "take some time.")
    return 0

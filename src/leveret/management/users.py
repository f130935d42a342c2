"""``/api/users``, ``/api/permissions``, ``/api/topic-permissions`` and the per-vhost and
per-user forms, over the broker's users model (``Server.access``)."""

from __future__ import annotations

from typing import Any

from .app import Context, not_found
from .format import reply_list
from .http import HTTPError, Response


def _access(ctx: Context) -> Any:
    return getattr(ctx.server, "access", None)


def _fallback_users(ctx: Context) -> list[dict[str, Any]]:
    # before the users model: the configured users, each an administrator of every vhost
    from .definitions import _sha256_hash

    return [{"name": name, "password_hash": _sha256_hash(password),
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"],
             "limits": {}} for name, password in ctx.server.settings.users.items()]


def _fallback_permissions(ctx: Context) -> list[dict[str, Any]]:
    return [{"user": u, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"}
            for u in ctx.server.settings.users for v in ctx.server.vhosts]


def list_users(ctx: Context) -> Any:
    access = _access(ctx)
    items = ([u.as_definition() for u in access.list_users()] if access is not None
             else _fallback_users(ctx))
    return reply_list(ctx.req, items, default_sort=("name",))


def show_user(ctx: Context) -> Any:
    name = ctx.params["user"]
    for item in list_users(ctx):
        if item["name"] == name:
            return item
    raise not_found()


def list_permissions(ctx: Context) -> Any:
    access = _access(ctx)
    if access is not None:
        items = [{"user": p.user, "vhost": p.vhost, **p.as_dict()}
                 for p in access.list_permissions()]
    else:
        items = _fallback_permissions(ctx)
    vhost = ctx.params.get("vhost")
    if vhost is not None:
        ctx.vhost()
        items = [p for p in items if p["vhost"] == vhost]
    user = ctx.params.get("user")
    if user is not None and "vhost" not in ctx.params:
        show_user(ctx)
        items = [p for p in items if p["user"] == user]
    return reply_list(ctx.req, items, default_sort=("vhost", "user"))


def _permission_of(ctx: Context) -> dict[str, Any] | None:
    for p in list_permissions(ctx):
        if p["user"] == ctx.params["user"]:
            return p
    return None


def show_permission(ctx: Context) -> Any:
    ctx.vhost()
    show_user(ctx)
    p = _permission_of(ctx)
    if p is None:
        raise not_found()
    return p


def put_permission(ctx: Context) -> Response:
    vhost = ctx.vhost().name
    user = ctx.params["user"]
    show_user(ctx)
    body = ctx.body()
    perms = []
    for key in ("configure", "write", "read"):
        value = body.get(key)
        if not isinstance(value, str):
            raise HTTPError(400, "bad_request", f"[{{key_missing,{key}}}]")
        perms.append(value)
    access = _access(ctx)
    if access is None:  # every configured user may do anything anywhere: nothing to change
        return Response(204)
    existed = access.permissions(user, vhost) is not None
    try:
        access.set_permissions(user, vhost, *perms)
    except ValueError as exc:
        raise HTTPError(400, "bad_request", getattr(exc, "reason", str(exc))) from None
    return Response(204 if existed else 201)

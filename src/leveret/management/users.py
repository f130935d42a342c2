"""``/api/users``, ``/api/permissions``, ``/api/topic-permissions`` and their per-user and
per-vhost forms, over the broker's users model (``Server.access``, ``leveret.auth``).

Answers as RabbitMQ 3.10's (checked against it): a user PUT without ``tags`` is 400
``tags_not_present``; one without a password clears it (no password login after that);
permissions for a missing user or vhost are 400 ``vhost_or_user_not_found``.
"""

from __future__ import annotations

from typing import Any

from ..auth import AccessError, parse_tags
from .app import Context, not_found
from .format import keys_missing, reply_list
from .http import HTTPError, Response


def _bad(reason: str) -> HTTPError:
    return HTTPError(400, "bad_request", reason)


def _user_or_404(ctx: Context) -> Any:
    user = ctx.server.access.user(ctx.params["user"])
    if user is None:
        raise not_found()
    return user


def list_users(ctx: Context) -> Any:
    items = [u.as_definition() for u in ctx.server.access.list_users()]
    return reply_list(ctx.req, items, default_sort=("name",))


def users_without_permissions(ctx: Context) -> Any:
    access = ctx.server.access
    with_perms = {p.user for p in access.list_permissions()}
    items = [u.as_definition() for u in access.list_users() if u.name not in with_perms]
    return reply_list(ctx.req, items, default_sort=("name",))


def show_user(ctx: Context) -> Any:
    return _user_or_404(ctx).as_definition()


def put_user(ctx: Context) -> Response:
    name = ctx.params["user"]
    body = ctx.body()
    if "tags" not in body:
        raise _bad("tags_not_present")
    tags = body["tags"]
    if not isinstance(tags, (str, list)):
        raise _bad("tags must be a string or a list")
    password = body.get("password")
    password_hash = body.get("password_hash")
    algorithm = body.get("hashing_algorithm")
    for key, value in (("password", password), ("password_hash", password_hash),
                       ("hashing_algorithm", algorithm)):
        if value is not None and not isinstance(value, str):
            raise _bad(f"{key} must be a string")
    if password is not None and password_hash is not None:  # RabbitMQ's reason, verbatim
        raise _bad("both_password_and_password_hash_are_provided")
    limits = body.get("limits")
    try:
        _, created = ctx.server.access.put_user(
            name, password, password_hash=password_hash, hashing_algorithm=algorithm,
            tags=parse_tags(tags), limits=limits if isinstance(limits, dict) else None)
    except (AccessError, ValueError) as exc:
        raise _bad(getattr(exc, "reason", str(exc))) from None
    return Response(201 if created else 204)


def delete_user(ctx: Context) -> Response:
    _user_or_404(ctx)
    ctx.server.access.delete_user(ctx.params["user"])
    return Response(204)


def bulk_delete_users(ctx: Context) -> Response:
    names = ctx.body().get("users")
    if names is None:
        raise _bad("[{key_missing,users}]")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad("users must be a list of names")
    access = ctx.server.access
    # in order, as RabbitMQ deletes them: a name that is no user stops it there (400)
    for name in names:
        if access.user(name) is None:
            raise _bad(f"no_such_user: {name}")
        access.delete_user(name)
    return Response(204)


# ---------------------------------------------------------------------- permissions

def _filtered(ctx: Context, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if "user" in ctx.params:
        _user_or_404(ctx)
        items = [p for p in items if p["user"] == ctx.params["user"]]
    if "vhost" in ctx.params:
        ctx.vhost()
        items = [p for p in items if p["vhost"] == ctx.params["vhost"]]
    return items


def list_permissions(ctx: Context) -> Any:
    items = [p.as_dict() for p in ctx.server.access.list_permissions()]
    return reply_list(ctx.req, _filtered(ctx, items), default_sort=("vhost", "user"))


def list_topic_permissions(ctx: Context) -> Any:
    items = [p.as_dict() for p in ctx.server.access.list_topic_permissions()]
    return reply_list(ctx.req, _filtered(ctx, items), default_sort=("vhost", "user"))


def _both_exist(ctx: Context) -> tuple[str, str]:
    user, vhost = ctx.params["user"], ctx.params["vhost"]
    access = ctx.server.access
    if access.user(user) is None or vhost not in ctx.server.vhosts:
        raise _bad("vhost_or_user_not_found")
    return user, vhost


def show_permission(ctx: Context) -> Any:
    perms = ctx.server.access.permissions(ctx.params["user"], ctx.params["vhost"])
    if perms is None:
        raise not_found()
    return perms.as_dict()


def _patterns(body: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    keys_missing(body, keys)  # RabbitMQ names every missing key
    out = []
    for key in keys:
        value = body[key]
        if not isinstance(value, str):
            raise _bad(f"{key} must be a string")
        out.append(value)
    return out


def put_permission(ctx: Context) -> Response:
    body = ctx.body()
    user, vhost = _both_exist(ctx)
    configure, write, read = _patterns(body, ("configure", "write", "read"))
    access = ctx.server.access
    existed = access.permissions(user, vhost) is not None
    try:
        access.set_permissions(user, vhost, configure, write, read)
    except (AccessError, ValueError) as exc:
        raise _bad(getattr(exc, "reason", str(exc))) from None
    return Response(204 if existed else 201)


def delete_permission(ctx: Context) -> Response:
    user, vhost = ctx.params["user"], ctx.params["vhost"]
    access = ctx.server.access
    # a missing user or vhost is 404 here, as RabbitMQ (not the model's error: a 500)
    if access.user(user) is None or vhost not in ctx.server.vhosts:
        raise not_found()
    if not access.clear_permissions(user, vhost):
        raise not_found()
    return Response(204)


def show_topic_permission(ctx: Context) -> Any:
    by_exchange = ctx.server.access.topic_permissions(ctx.params["user"], ctx.params["vhost"])
    if not by_exchange:
        raise not_found()
    return [p.as_dict() for p in by_exchange.values()]


def put_topic_permission(ctx: Context) -> Response:
    body = ctx.body()
    user, vhost = _both_exist(ctx)
    exchange, write, read = _patterns(body, ("exchange", "write", "read"))
    access = ctx.server.access
    existed = exchange in access.topic_permissions(user, vhost)
    try:
        access.set_topic_permissions(user, vhost, exchange, write, read)
    except (AccessError, ValueError) as exc:
        raise _bad(getattr(exc, "reason", str(exc))) from None
    return Response(204 if existed else 201)


def delete_topic_permission(ctx: Context) -> Response:
    exchange = ctx.req.query.get("exchange")
    if not ctx.server.access.clear_topic_permissions(ctx.params["user"], ctx.params["vhost"],
                                                     exchange):
        raise not_found()
    return Response(204)


def list_limits(ctx: Context) -> Any:
    """``/api/user-limits[/{user}]``: the users' ``limits`` (kept and exported, not
    enforced), ``[{"user": name, "value": {...}}]`` for those that have any; users other than
    the caller only for monitoring and administrator users."""
    access = ctx.server.access
    name = ctx.params.get("user")
    users = access.list_users()
    if name is not None:
        users = [u for u in users if u.name == name]
        if not users:
            raise not_found()
    return [{"user": u.name, "value": dict(u.limits)} for u in users
            if u.limits and (ctx.user.is_monitor or u.name == ctx.user.name)]

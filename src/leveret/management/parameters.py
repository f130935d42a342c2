"""Runtime parameters, global parameters and policies (``/api/parameters``,
``/api/global-parameters``, ``/api/policies``, ``/api/operator-policies``).

Leveret accepts and keeps them, lists them, exports and imports them with the definitions,
so a RabbitMQ topology moves through Leveret unchanged, but does not act on them: a policy's
``definition`` (TTLs, limits, dead-lettering, ...) is not applied to the queues it matches.
Declare those as queue arguments instead. With a data directory they are kept in
``parameters.json`` there, rewritten atomically on each change.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..permissions import InvalidRegex, compile_permission
from .app import Context, not_found
from .format import parse_int, reply_list
from .http import HTTPError, Response

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("leveret.management")

_APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")


class Parameters:
    """What the broker was told and keeps without acting on it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.parameters: dict[tuple[str, str, str], Any] = {}  # (component, vhost, name)
        self.global_parameters: dict[str, Any] = {
            "internal_cluster_id": "rabbitmq-cluster-id-" + uuid.uuid4().hex[:22]}
        self.policies: dict[tuple[str, str], dict[str, Any]] = {}  # (vhost, name)
        self.operator_policies: dict[tuple[str, str], dict[str, Any]] = {}
        if path is not None and path.exists():
            self._load(path)

    @classmethod
    def of(cls, server: Server) -> Parameters:
        """The server's, made on first use (kept on the server, so every API sees one)."""
        params = getattr(server, "management_parameters", None)
        if params is None:
            data_dir = server.settings.data_dir
            params = cls(Path(data_dir) / "parameters.json" if data_dir else None)
            server.management_parameters = params  # type: ignore[attr-defined]
        return params

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            for p in data.get("parameters", []):
                self.parameters[(p["component"], p["vhost"], p["name"])] = p["value"]
            for p in data.get("global_parameters", []):
                self.global_parameters[p["name"]] = p["value"]
            for p in data.get("policies", []):
                self.policies[(p["vhost"], p["name"])] = p
            for p in data.get("operator_policies", []):
                self.operator_policies[(p["vhost"], p["name"])] = p
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring %s: %s", path, exc)

    def save(self) -> None:
        if self.path is None:
            return
        from ..store.definitions import atomic_write

        atomic_write(self.path, json.dumps({
            "parameters": self.list_parameters(),
            "global_parameters": self.list_global(),
            "policies": list(self.policies.values()),
            "operator_policies": list(self.operator_policies.values()),
        }, indent=1))

    def list_parameters(self, component: str | None = None, vhost: str | None = None
                        ) -> list[dict[str, Any]]:
        return [{"value": value, "vhost": vh, "component": comp, "name": name}
                for (comp, vh, name), value in self.parameters.items()
                if (component is None or comp == component) and (vhost is None or vh == vhost)]

    def list_global(self) -> list[dict[str, Any]]:
        return [{"name": name, "value": value} for name, value in self.global_parameters.items()]

    def drop_vhost(self, vhost: str) -> None:
        for table in (self.policies, self.operator_policies):
            for key in [k for k in table if k[0] == vhost]:
                del table[key]
        for pkey in [k for k in self.parameters if k[1] == vhost]:
            del self.parameters[pkey]
        self.save()


def policy_from(vhost: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A policy as RabbitMQ validates and lists it (400 with its words otherwise)."""
    pattern = body.get("pattern")
    definition = body.get("definition")
    if not isinstance(pattern, str):
        raise HTTPError(400, "bad_request", "[{key_missing,pattern}]")
    if not isinstance(definition, dict):
        raise HTTPError(400, "bad_request", "[{key_missing,definition}]")
    try:
        compile_permission(pattern)  # PCRE as RabbitMQ's re module takes it
    except InvalidRegex as exc:
        raise HTTPError(400, "bad_request",
                        "Validation failed\n\npattern should be regular expression but is "
                        f"invalid: {exc.reason}\n") from None
    apply_to = body.get("apply-to", "all")
    if apply_to not in _APPLY_TO:
        raise HTTPError(400, "bad_request", f"Validation failed\n\n'{apply_to}' is not a valid "
                                            "apply-to value")
    priority = parse_int(body.get("priority", 0), "priority")
    return {"vhost": vhost, "name": name, "pattern": pattern, "apply-to": apply_to,
            "definition": definition, "priority": priority}


# ---------------------------------------------------------------------- handlers

def list_parameters(ctx: Context) -> Any:
    params = Parameters.of(ctx.server)
    component = ctx.params.get("component")
    vhosts = {vh.name for vh in ctx.visible_vhosts()}
    items = [p for p in params.list_parameters(component) if p["vhost"] in vhosts]
    return reply_list(ctx.req, items)


def _param_key(ctx: Context) -> tuple[str, str, str]:
    ctx.vhost()
    return (ctx.params["component"], ctx.params["vhost"], ctx.params["name"])


def show_parameter(ctx: Context) -> Any:
    key = _param_key(ctx)
    params = Parameters.of(ctx.server)
    if key not in params.parameters:
        raise not_found()
    return {"value": params.parameters[key], "vhost": key[1], "component": key[0],
            "name": key[2]}


def put_parameter(ctx: Context) -> Response:
    key = _param_key(ctx)
    body = ctx.body()
    if "value" not in body:
        raise HTTPError(400, "bad_request", "[{key_missing,value}]")
    params = Parameters.of(ctx.server)
    existed = key in params.parameters
    params.parameters[key] = body["value"]
    params.save()
    return Response(204 if existed else 201)


def delete_parameter(ctx: Context) -> Response:
    key = _param_key(ctx)
    params = Parameters.of(ctx.server)
    if params.parameters.pop(key, None) is None:
        raise not_found()
    params.save()
    return Response(204)


def list_global(ctx: Context) -> Any:
    return reply_list(ctx.req, Parameters.of(ctx.server).list_global(), default_sort=("name",))


def show_global(ctx: Context) -> Any:
    params = Parameters.of(ctx.server)
    name = ctx.params["name"]
    if name not in params.global_parameters:
        raise not_found()
    return {"name": name, "value": params.global_parameters[name]}


def put_global(ctx: Context) -> Response:
    body = ctx.body()
    if "value" not in body:
        raise HTTPError(400, "bad_request", "[{key_missing,value}]")
    params = Parameters.of(ctx.server)
    existed = ctx.params["name"] in params.global_parameters
    params.global_parameters[ctx.params["name"]] = body["value"]
    params.save()
    return Response(204 if existed else 201)


def delete_global(ctx: Context) -> Response:
    params = Parameters.of(ctx.server)
    if params.global_parameters.pop(ctx.params["name"], None) is None:
        raise not_found()
    params.save()
    return Response(204)


def _policies(ctx: Context, operator: bool) -> dict[tuple[str, str], dict[str, Any]]:
    params = Parameters.of(ctx.server)
    return params.operator_policies if operator else params.policies


def list_policies(ctx: Context, operator: bool = False) -> Any:
    # any user sees the policies of the vhosts it may use (RabbitMQ: is_authorized_vhost,
    # filter_vhost); showing or changing one takes a policymaker
    vhosts = {vh.name for vh in ctx.visible_vhosts()}
    items = [p for (vh, _), p in _policies(ctx, operator).items() if vh in vhosts]
    return reply_list(ctx.req, items)


def show_policy(ctx: Context, operator: bool = False) -> Any:
    ctx.vhost()
    policy = _policies(ctx, operator).get((ctx.params["vhost"], ctx.params["name"]))
    if policy is None:
        raise not_found()
    return policy


def put_policy(ctx: Context, operator: bool = False) -> Response:
    ctx.existing_vhost()
    key = (ctx.params["vhost"], ctx.params["name"])
    table = _policies(ctx, operator)
    existed = key in table
    table[key] = policy_from(key[0], key[1], ctx.body())
    Parameters.of(ctx.server).save()
    return Response(204 if existed else 201)


def delete_policy(ctx: Context, operator: bool = False) -> Response:
    ctx.vhost()
    if _policies(ctx, operator).pop((ctx.params["vhost"], ctx.params["name"]), None) is None:
        raise not_found()
    Parameters.of(ctx.server).save()
    return Response(204)


def list_operator_policies(ctx: Context) -> Any:
    return list_policies(ctx, True)


def show_operator_policy(ctx: Context) -> Any:
    return show_policy(ctx, True)


def put_operator_policy(ctx: Context) -> Response:
    return put_policy(ctx, True)


def delete_operator_policy(ctx: Context) -> Response:
    return delete_policy(ctx, True)

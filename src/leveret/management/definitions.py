"""Definitions: the broker's topology, users and permissions in RabbitMQ's JSON format
(``GET/POST /api/definitions``, ``/api/definitions/{vhost}``, ``leveret --definitions FILE``),
so a file moves between Leveret and RabbitMQ both ways (``rabbitmqctl export_definitions`` /
``import_definitions``, ``rabbitmqadmin export`` / ``import``).

Exported: users (with ``password_hash`` and ``hashing_algorithm``), vhosts, permissions,
topic permissions, parameters, global parameters, policies, and the queues (not exclusive
ones), exchanges (not the predeclared ones) and bindings between them. Imported in RabbitMQ's
order (``rabbit_definitions:apply_defs``): users, vhosts, permissions, topic permissions,
exchanges, global parameters, policies, parameters, queues, bindings, each category logged as
RabbitMQ logs it ("Importing concurrently 2 queues..."). What exists already is kept; a
conflicting declaration is an error naming it, as RabbitMQ reports it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..auth import AccessError
from ..errors import AMQPError
from ..exchange import Exchange
from ..queue import Queue
from ..vhost import PREDECLARED
from .format import jsonable
from .parameters import Parameters, policy_from

if TYPE_CHECKING:
    from ..server import Server
    from ..vhost import VirtualHost

log = logging.getLogger("leveret.management")

RABBITMQ_VERSION = "3.10.8"
_PREDECLARED = {name for name, _ in PREDECLARED}


class DefinitionsError(ValueError):
    """A definitions file that cannot be applied; the text says what and where."""


# ---------------------------------------------------------------------- export

def _topology(vhost: VirtualHost, with_vhost: bool) -> dict[str, list[dict[str, Any]]]:
    def tag(item: dict[str, Any]) -> dict[str, Any]:
        if with_vhost:
            item = {"vhost": vhost.name, **item}
            # RabbitMQ's order: name first, then vhost
            first = "source" if "source" in item else "name"
            item = {first: item[first], **{k: v for k, v in item.items() if k != first}}
        return item

    queues = [tag({"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
                   "arguments": jsonable(q.arguments)})
              for q in vhost.queues.values() if not q.exclusive]
    exchanges = [tag({"name": ex.name, "type": ex.kind, "durable": ex.durable,
                      "auto_delete": ex.auto_delete, "internal": ex.internal,
                      "arguments": jsonable(ex.arguments)})
                 for ex in vhost.exchanges.values() if ex.name not in _PREDECLARED]
    bindings = []
    for ex in vhost.exchanges.values():
        for b in ex.bindings:
            dest = b.destination
            if isinstance(dest, Queue) and dest.exclusive:
                continue
            bindings.append(tag({
                "source": ex.name, "destination": dest.name,
                "destination_type": "queue" if isinstance(dest, Queue) else "exchange",
                "routing_key": b.routing_key, "arguments": jsonable(b.arguments)}))
    return {"queues": queues, "exchanges": exchanges, "bindings": bindings}


def export_all(server: Server) -> dict[str, Any]:
    """Every definition of the broker (``GET /api/definitions``)."""
    params = Parameters.of(server)
    access = server.access
    users = [u.as_definition() for u in access.list_users()]
    vhosts = [v.as_definition() for v in access.list_vhosts()]
    permissions = [p.as_dict() for p in access.list_permissions()]
    topic_permissions = [p.as_dict() for p in access.list_topic_permissions()]
    out: dict[str, Any] = {
        "rabbit_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Leveret",
        "product_version": __version__,
        "users": users,
        "vhosts": vhosts,
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "parameters": params.list_parameters(),
        "global_parameters": params.list_global(),
        "policies": list(params.policies.values()),
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    for vhost in server.vhosts.values():
        for key, items in _topology(vhost, True).items():
            out[key].extend(items)
    return out


def export_vhost(server: Server, vhost: VirtualHost) -> dict[str, Any]:
    """One vhost's definitions, without vhost fields (``GET /api/definitions/{vhost}``)."""
    params = Parameters.of(server)
    out: dict[str, Any] = {
        "rabbit_version": RABBITMQ_VERSION,
        "parameters": [{k: v for k, v in p.items() if k != "vhost"}
                       for p in params.list_parameters(vhost=vhost.name)],
        "policies": [{k: v for k, v in p.items() if k != "vhost"}
                     for (vh, _), p in params.policies.items() if vh == vhost.name],
    }
    out.update(_topology(vhost, False))
    return out


# ---------------------------------------------------------------------- import

def _items(defs: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = defs.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DefinitionsError(f"'{key}' must be a list of objects")
    return items


def _text(item: dict[str, Any], key: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if not isinstance(value, str):
        raise DefinitionsError(f"{key} missing or not a string in {json.dumps(item)[:200]}")
    return value


def _bool(item: dict[str, Any], key: str, default: bool = False) -> bool:
    value = item.get(key, default)
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    if not isinstance(value, bool):
        raise DefinitionsError(f"{key} must be a boolean in {json.dumps(item)[:200]}")
    return value


def _args(item: dict[str, Any]) -> dict[str, Any]:
    args = item.get("arguments") or {}
    if not isinstance(args, dict):
        raise DefinitionsError(f"arguments must be an object in {json.dumps(item)[:200]}")
    return args


# how RabbitMQ's import log lines name each category (rabbit_definitions'
# human_readable_category_name), and whether it says "concurrently" or "sequentially"
_CATEGORIES = {"users": "users", "vhosts": "vhosts", "permissions": "permissions",
               "topic_permissions": "topic permissions", "exchanges": "exchanges",
               "global_parameters": "global runtime parameters", "policies": "policies",
               "parameters": "runtime parameters", "queues": "queues", "bindings": "bindings"}
_SEQUENTIAL = {"global_parameters", "policies", "parameters"}


def _importing(defs: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The items of one category, after RabbitMQ's line saying how many are imported."""
    items = _items(defs, key)
    if items:
        how = "sequentially" if key in _SEQUENTIAL else "concurrently"
        log.info("Importing %s %d %s...", how, len(items), _CATEGORIES[key])
    return items


def import_definitions(server: Server, defs: Any, only_vhost: str | None = None,
                       user: str | None = None) -> None:
    """Apply ``defs`` (RabbitMQ's format) to ``server`` in RabbitMQ's order
    (rabbit_definitions:apply_defs: users, vhosts, permissions, topic permissions, exchanges,
    global parameters, policies, parameters, queues, bindings), logging each category as
    RabbitMQ does; ``only_vhost``: a per-vhost file, whose items have no ``vhost`` and go to
    that vhost. DefinitionsError if it cannot."""
    if not isinstance(defs, dict):
        raise DefinitionsError("definitions must be a JSON object")
    if only_vhost is not None:
        # RabbitMQ prints Erlang binaries here (~p), and no per-category counts
        log.info('Asked to import definitions for a virtual host. Virtual host: <<"%s">>, '
                 'acting user: <<"%s">>', only_vhost, user or "rmq-internal")
        counted = _items
    else:
        counted = _importing

    def vhost_of(item: dict[str, Any]) -> VirtualHost:
        name = only_vhost if only_vhost is not None else _text(item, "vhost", "/")
        vhost = server.vhosts.get(name)
        if vhost is None:
            raise DefinitionsError(f"virtual host '{name}' does not exist")
        return vhost

    if only_vhost is None:
        _import_access(server, defs)
    exchanges = counted(defs, "exchanges")
    params = Parameters.of(server)
    try:
        for x in exchanges:
            name = _text(x, "name")
            if name in _PREDECLARED:
                continue
            vhost_of(x).declare_exchange(name, _text(x, "type", "direct"), False,
                                         _bool(x, "durable", True), _bool(x, "auto_delete"),
                                         _bool(x, "internal"), _args(x))
        if only_vhost is None:
            for p in counted(defs, "global_parameters"):
                params.global_parameters[_text(p, "name")] = p.get("value")
        for p in counted(defs, "policies"):
            vhost = vhost_of(p)
            try:
                policy = policy_from(vhost.name, _text(p, "name"), p)
            except Exception as exc:
                raise DefinitionsError(getattr(exc, "reason", str(exc))) from None
            params.policies[(vhost.name, policy["name"])] = policy
        for p in counted(defs, "parameters"):
            vhost = vhost_of(p)
            params.parameters[(_text(p, "component"), vhost.name, _text(p, "name"))] = \
                p.get("value")
        for q in counted(defs, "queues"):
            vhost_of(q).declare_queue(_text(q, "name"), None, False, _bool(q, "durable", True),
                                      False, _bool(q, "auto_delete"), _args(q), any_name=True)
        for b in counted(defs, "bindings"):
            vhost = vhost_of(b)
            source = vhost.exchanges.get(_text(b, "source"))
            dtype = _text(b, "destination_type", "queue")
            dname = _text(b, "destination")
            dest: Queue | Exchange | None = (vhost.queues.get(dname) if dtype == "queue"
                                             else vhost.exchanges.get(dname))
            if source is None or dest is None:
                missing = f"exchange '{b.get('source')}'" if source is None else \
                    f"{dtype} '{dname}'"
                raise DefinitionsError(f"binding refers to {missing} in vhost "
                                       f"'{vhost.name}', which does not exist")
            if source.name == "":
                continue  # the default exchange's implicit bindings
            vhost.bind(source, dest, _text(b, "routing_key", ""), _args(b))
    except AMQPError as exc:
        raise DefinitionsError(exc.text) from None
    finally:
        params.save()


def _import_access(server: Server, defs: dict[str, Any]) -> None:
    users = _importing(defs, "users")
    vhosts = _importing(defs, "vhosts")
    permissions = _importing(defs, "permissions")
    topic_permissions = _importing(defs, "topic_permissions")
    access = server.access
    try:
        for u in users:
            tags = u.get("tags", ())
            access.put_user(_text(u, "name"), password_hash=u.get("password_hash", ""),
                            hashing_algorithm=u.get("hashing_algorithm")
                            or "rabbit_password_hashing_md5", tags=tags,
                            limits=u.get("limits") if isinstance(u.get("limits"), dict)
                            else None)
        for v in vhosts:
            metadata = v.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {"description": v.get("description", ""), "tags": v.get("tags", ())}
            name = _text(v, "name")
            access.add_vhost(name, description=str(metadata.get("description", "")),
                             tags=metadata.get("tags") or (),
                             default_queue_type=metadata.get("default_queue_type"))
        for p in permissions:
            access.set_permissions(_text(p, "user"), _text(p, "vhost"), _text(p, "configure"),
                                   _text(p, "write"), _text(p, "read"))
        for p in topic_permissions:
            access.set_topic_permissions(_text(p, "user"), _text(p, "vhost"),
                                         _text(p, "exchange"), _text(p, "write"),
                                         _text(p, "read"))
    except (AccessError, ValueError) as exc:
        raise DefinitionsError(getattr(exc, "reason", str(exc))) from None


# ---------------------------------------------------------------------- handlers

def get_all(ctx: Any) -> Any:
    from .http import Response

    out = export_all(ctx.server)
    return _maybe_download(ctx, out, Response)


def get_vhost(ctx: Any) -> Any:
    from .http import HTTPError, Response

    if ctx.params["vhost"] not in ctx.server.vhosts:  # RabbitMQ's answer here
        raise HTTPError(400, "bad_request", "vhost_not_found")
    return _maybe_download(ctx, export_vhost(ctx.server, ctx.vhost()), Response)


def _maybe_download(ctx: Any, out: dict[str, Any], response: Any) -> Any:
    # ?download=NAME: RabbitMQ's UI asks for a file (content-disposition)
    name = ctx.req.query.get("download")
    if not name:
        return out
    safe = "".join(c for c in name if c.isalnum() or c in "._-") or "definitions.json"
    return response(200, out, [("content-disposition", f'attachment; filename="{safe}"')])


def post_all(ctx: Any) -> Any:
    return _post(ctx, None)


def post_vhost(ctx: Any) -> Any:
    return _post(ctx, ctx.existing_vhost().name)


def _post(ctx: Any, only_vhost: str | None) -> Any:
    from .http import HTTPError, Response

    defs = ctx.req.json()
    if not isinstance(defs, dict):
        raise HTTPError(400, "bad_request", "not_json")
    if "file" in defs and isinstance(defs["file"], str) and len(defs) <= 2:
        # the web UI's upload form posts {"file": "<json text>", "redirect": ...}
        try:
            defs = json.loads(defs["file"])
        except ValueError:
            raise HTTPError(400, "bad_request", "not_json") from None
    try:
        import_definitions(ctx.server, defs, only_vhost, ctx.user.name)
    except DefinitionsError as exc:
        raise HTTPError(400, "bad_request", str(exc)) from None
    return Response(204)


def load_definitions_file(server: Server, path: str) -> None:
    """``leveret --definitions PATH`` / rabbitmq.conf's ``load_definitions``: import a file,
    or every file of a directory in name order, at boot, logging it as RabbitMQ's
    rabbit_definitions_import_local_filesystem does. DefinitionsError (naming the file) if it
    cannot."""
    if os.path.isdir(path):
        log.info("Applying definitions from directory %s", path)
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise DefinitionsError(f"cannot read definitions directory {path}: "
                                   f"{exc.strerror}") from None
        for name in names:
            _load_file(server, os.path.join(path, name))
        return
    _load_file(server, path)


def _load_file(server: Server, path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise DefinitionsError(f"cannot read definitions file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DefinitionsError(f"definitions file {path} is not UTF-8 text") from None
    log.info("Applying definitions from file at '%s'", path)
    try:
        defs = json.loads(text)
    except ValueError as exc:
        raise DefinitionsError(f"definitions file {path} is not JSON: {exc}") from None
    log.info("Asked to import definitions. Acting user: rmq-internal")
    try:
        import_definitions(server, defs)
    except DefinitionsError as exc:
        raise DefinitionsError(f"definitions file {path}: {exc}") from None

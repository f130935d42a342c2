"""The management API's request handling: routes, authentication, dispatch.

Paths, methods and status codes are RabbitMQ's (``deps/rabbitmq_management``,
``rabbit_mgmt_dispatcher``). A path segment is percent-decoded on its own, so ``%2F`` is the
vhost ``/``; an empty vhost segment means ``/`` too (Flower builds ``/api/queues//``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from . import auth, static
from .http import HTTPError, Request, Response
from .stats import Sampler

if TYPE_CHECKING:
    from ..server import Server
    from ..vhost import VirtualHost

REALM = 'Basic realm="RabbitMQ Management"'

# who may call what: each route names the check its RabbitMQ handler makes (is_authorized*
# in rabbit_mgmt_util, which runs before the handler looks anything up)
ANY = "management"  # is_authorized: any user with a management-ish tag
VHOST = "vhost"  # is_authorized_vhost: administrators, or who may log in to the path's vhost
MONITOR = "monitoring"  # is_authorized_monitor
POLICY = "policymaker"  # is_authorized_policies: administrators, or policymakers of the vhost
GLOBAL_PARAMETERS = "global-parameters"  # is_authorized_global_parameters: policymakers
ADMIN = "administrator"  # is_authorized_admin
NONE = "none"  # no authentication (none of RabbitMQ's API paths; kept for completeness)


@dataclass
class Context:
    """What a handler gets: the API, the request, the user, the path's parameters."""

    api: ManagementAPI
    req: Request
    user: auth.User
    params: dict[str, str] = field(default_factory=dict)

    @property
    def server(self) -> Server:
        return self.api.server

    def vhost(self, name: str | None = None) -> VirtualHost:
        """The path's vhost (404 if there is none, 401 if the user may not use it)."""
        name = self.params["vhost"] if name is None else name
        vhost = self.api.server.vhosts.get(name)
        if vhost is None:
            raise not_found()
        if not self.api.auth.may_use_vhost(self.user, name):
            raise HTTPError(401, "not_authorised", "User not authorised to access virtual host",
                            [("www-authenticate", REALM)])
        return vhost

    def existing_vhost(self) -> VirtualHost:
        """The path's vhost for a call that creates something in it: RabbitMQ answers a
        missing vhost there with 404 ``vhost_not_found`` (rabbit_mgmt_util:with_vhost)."""
        if self.params["vhost"] not in self.api.server.vhosts:
            raise HTTPError(404, "not_found", "vhost_not_found")
        return self.vhost()

    def allowed(self, perm: str, kind: str, name: str) -> bool:
        """Whether the user has ``perm`` (configure, write, read) on the resource: the API
        acts as the user, with the user's AMQP permissions (the default exchange is
        ``amq.default``)."""
        perms = self.api.server.access.permissions(self.user.name, self.params["vhost"])
        return perms is not None and perms.allows(perm, name or "amq.default")

    def refusal(self, kind: str, name: str) -> str:
        return (f"ACCESS_REFUSED - access to {kind} '{name or 'amq.default'}' in vhost "
                f"'{self.params['vhost']}' refused for user '{self.user.name}'")

    def need(self, perm: str, kind: str, name: str) -> None:
        """401 "Access refused." unless the user has ``perm`` on the resource (RabbitMQ's
        answer when an API call's AMQP operation is refused)."""
        if not self.allowed(perm, kind, name):
            raise HTTPError(401, "not_authorised", "Access refused.",
                            [("www-authenticate", REALM)])

    def visible_vhosts(self) -> list[VirtualHost]:
        """The path's vhost if it names one, else every vhost whose queues, exchanges and
        bindings the user may list (RabbitMQ's filter_vhost: all for administrators, else
        those the user may log in to, for monitoring users too)."""
        if "vhost" in self.params:
            return [self.vhost()]
        return [vh for name, vh in self.api.server.vhosts.items()
                if self.api.auth.may_use_vhost(self.user, name)]

    def shown_vhosts(self) -> list[VirtualHost]:
        """The vhosts the user is shown at all (``/api/vhosts``, the overview's totals:
        every vhost for monitoring users, RabbitMQ's list_visible_vhosts)."""
        return [vh for name, vh in self.api.server.vhosts.items()
                if self.api.auth.may_see_vhost(self.user, name)]

    def body(self) -> dict[str, Any]:
        """The request's JSON object (rabbit_mgmt_util:decode: an empty body, ``null``,
        ``true`` or ``false`` is ``{}``; a string is refused as doubly encoded, anything
        else that is not an object is ``not_json``)."""
        data = self.req.json()
        if isinstance(data, bool) or data is None:
            return {}
        if isinstance(data, str):
            raise HTTPError(400, "bad_request", "invalid payload: the request body "
                            "JSON-decoded to a string. Is the input doubly-JSON-encoded?")
        if not isinstance(data, dict):
            raise HTTPError(400, "bad_request", "not_json")
        return data


Handler = Callable[[Context], Any]


@dataclass
class Route:
    parts: tuple[str, ...]  # literal segments, or "{param}"
    methods: dict[str, tuple[Handler, str]]  # method -> (handler, access level)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.parts):
            return None
        params = {}
        for part, seg in zip(self.parts, segments):
            if part.startswith("{"):
                params[part[1:-1]] = seg
            elif part != seg:
                return None
        return params


def not_found() -> HTTPError:
    return HTTPError(404, "Object Not Found", "Not Found")


class ManagementAPI:
    """Answers requests against one ``Server``."""

    def __init__(self, server: Server) -> None:
        from .routes import ROUTES  # the handler modules import this one

        self.server = server
        self.sampler = Sampler(server)
        self.auth = auth.Authenticator(server)
        self.routes: list[Route] = ROUTES
        self.listeners: list[dict[str, Any]] = []  # filled in by the listener

    def __call__(self, req: Request) -> Response:
        segments = _segments(req.path)
        if segments is None:  # not under /api/: the web UI's files
            return static.serve(req)
        for route in self.routes:
            params = route.match(segments)
            if params is not None:
                break
        else:
            raise not_found()
        method = "GET" if req.method == "HEAD" else req.method
        if method == "OPTIONS":
            allow = ", ".join(_allowed(route))
            return Response(200, b"", [("allow", allow)])
        entry = route.methods.get(method)
        if entry is None:
            raise HTTPError(405, "method_not_allowed", "Method Not Allowed",
                            [("allow", ", ".join(_allowed(route)))], empty=True)
        handler, level = entry
        if "vhost" in params and params["vhost"] == "":
            params["vhost"] = "/"
        user = self._authenticate(req, level, params.get("vhost"))
        result = handler(Context(self, req, user, params))
        if isinstance(result, Response):
            return result
        return Response(200, result)

    def _authenticate(self, req: Request, level: str, vhost: str | None) -> auth.User:
        header = req.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise HTTPError(401, "not_authorised", "", [("www-authenticate", REALM)],
                            empty=True)
        try:
            name, sep, password = base64.b64decode(encoded.strip(), validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            name, sep, password = "", "", ""
        user = self.auth.login(name, password) if sep else None
        if user is None:
            raise HTTPError(401, "not_authorized", "Login failed",
                            [("www-authenticate", REALM)])
        if self.auth.loopback_only(user, req.local_host):
            raise HTTPError(401, "not_authorised", "User can only log in via localhost")
        if not self.auth.has_level(user, ANY):
            # a user without a management tag may not use the API at all
            raise HTTPError(401, "not_authorised", "Not management user",
                            [("www-authenticate", REALM)])
        refusal = self._refusal(user, level, vhost)
        if refusal:
            raise HTTPError(401, "not_authorised", refusal, [("www-authenticate", REALM)])
        return user

    def _refusal(self, user: auth.User, level: str, vhost: str | None) -> str:
        """Why ``user`` may not make a call of ``level`` on ``vhost`` ("" if it may). A vhost
        that does not exist passes here: the handler answers 404, as RabbitMQ's
        resource_exists does after is_authorized."""
        known = vhost is not None and vhost in self.server.vhosts
        if level == VHOST:
            if known and not self.auth.may_use_vhost(user, vhost):  # type: ignore[arg-type]
                return "User not authorised to access virtual host"
            return ""
        if level == POLICY:
            if user.is_admin:
                return ""
            if "policymaker" not in user.tags or (
                    known and not self.auth.may_log_in(user, vhost)):  # type: ignore[arg-type]
                return "User not authorised to access object"
            return ""
        if level == GLOBAL_PARAMETERS:
            return "" if self.auth.has_level(user, POLICY) else \
                "User not authorised to access object"
        if not self.auth.has_level(user, level):
            return {ADMIN: "Not administrator user",
                    MONITOR: "Not monitor user"}.get(level, "Not management user")
        return ""


def _allowed(route: Route) -> list[str]:
    methods = list(route.methods)
    if "GET" in methods:
        methods.insert(methods.index("GET"), "HEAD")
    return methods + ["OPTIONS"]


def _segments(path: str) -> list[str] | None:
    """``/api/queues/%2F/q`` -> ["queues", "/", "q"]; None if not under /api."""
    if not path.startswith("/api/"):
        return None
    raw = path[len("/api/"):].split("/")
    if len(raw) > 1 and raw[-1] == "":
        raw.pop()  # one trailing slash: /api/queues/ lists all, /api/queues// vhost "/"
    return [unquote(seg) for seg in raw]

"""Who is calling, and what they may see (RabbitMQ's management tags:
rabbitmq.com/docs/management#permissions, and ``rabbit_mgmt_util``'s ``is_authorized_*``).

- no tag: may not use the API at all (401);
- ``management``: the vhosts it may log in to (has permissions in), its own connections;
- ``policymaker``: that, plus policies and parameters of those vhosts, global parameters;
- ``monitoring``: every connection and channel, node-wide figures, the names of all vhosts;
  queues, exchanges and bindings still only of the vhosts it may log in to (RabbitMQ's
  ``filter_vhost`` lets only administrators see every vhost's objects);
- ``administrator``: everything.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import Server

_RANK = {"management": 1, "policymaker": 2, "monitoring": 3, "administrator": 4}


@dataclass(frozen=True)
class User:
    """An authenticated user of the API."""

    name: str
    tags: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.tags

    @property
    def is_monitor(self) -> bool:
        return "administrator" in self.tags or "monitoring" in self.tags


class Authenticator:
    """Checks credentials and visibility against the broker's users (``Server.access``)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def login(self, name: str, password: str) -> User | None:
        """The user, or None: unknown, or a wrong password."""
        user = self.server.access.authenticate(name, password)
        if user is None:
            return None
        return User(name, tuple(user.tags))

    def loopback_only(self, user: User, local_host: str) -> bool:
        """A loopback-only user (RabbitMQ's ``loopback_users``, guest by default) who reached
        the API through an address that is not a loopback one (the socket's own address, as
        RabbitMQ checks it)."""
        return user.name in self.server.settings.loopback_users and not _is_loopback(local_host)

    def has_level(self, user: User, level: str) -> bool:
        if level == "none":
            return True
        have = max((_RANK.get(t, 0) for t in user.tags), default=0)
        if level == "policymaker":
            return "policymaker" in user.tags or user.is_admin
        if level == "monitoring":
            return user.is_monitor
        return have >= _RANK.get(level, 1)

    def may_see_vhost(self, user: User, vhost: str) -> bool:
        """Whether the vhost is among those the user is shown (``/api/vhosts``, the overview's
        totals): monitoring and administrator users see every vhost, others those they may
        log in to (rabbit_mgmt_util:list_visible_vhosts)."""
        if user.is_monitor:
            return True
        return self.may_log_in(user, vhost)

    def may_log_in(self, user: User, vhost: str) -> bool:
        """Whether the user may open the vhost (has permissions there):
        rabbit_mgmt_util:list_login_vhosts."""
        return bool(self.server.access.can_access_vhost(user.name, vhost))

    def may_use_vhost(self, user: User, vhost: str) -> bool:
        """Whether the user may use the vhost's queues, exchanges and bindings through the API
        (is_authorized_vhost and filter_vhost): administrators any vhost, others only those
        they may log in to, monitoring users included."""
        return user.is_admin or self.may_log_in(user, vhost)

    def may_see_owner(self, user: User, owner: str) -> bool:
        """Connections and channels: a management user sees its own only."""
        return user.is_monitor or owner == user.name


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))

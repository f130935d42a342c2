"""Users, virtual host records and permissions: the access-control model.

Knows no sockets and no HTTP. The AMQP side (``connection.py``, ``channel.py``), the management
API, the ctl tool and definitions import/export all read and change one ``Access`` object
(``Server.access``); whoever must react to a change (the server: create or drop a vhost's
exchanges and queues, close connections, drop cached permission checks; the store: journal it)
subscribes with ``Access.subscribe``. Every method runs on the broker's event loop.

RabbitMQ's internal backend is the reference (``rabbit_auth_backend_internal``,
``rabbit_vhost``): password hashes as it stores them (``passwords.py``), tags kept as given,
permissions as regular expressions with its semantics (``permissions.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import passwords
from .permissions import InvalidRegex, Permissions, TopicPermissions, compile_permission

__all__ = [
    "Access", "AccessError", "AccessListener", "InvalidRegex", "NoSuchUser", "NoSuchVhost",
    "Permissions", "TopicPermissions", "User", "UserExists", "VhostInfo", "compile_permission",
    "parse_tags",
]

# the tags the management plugin gives a meaning to; any other string is kept as it is
KNOWN_TAGS = ("administrator", "monitoring", "policymaker", "management", "impersonator")
FULL = ".*"


class AccessError(Exception):
    """A change the model refuses. ``reason`` is a short text for the caller's error reply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoSuchUser(AccessError):
    def __init__(self, name: str) -> None:
        super().__init__(f"user '{name}' does not exist")
        self.name = name


class NoSuchVhost(AccessError):
    def __init__(self, name: str) -> None:
        super().__init__(f"virtual host '{name}' does not exist")
        self.name = name


class UserExists(AccessError):
    def __init__(self, name: str) -> None:
        super().__init__(f"user '{name}' already exists")
        self.name = name


def parse_tags(tags: str | Iterable[str] | None) -> tuple[str, ...]:
    """Tags as a tuple: from a list, or a comma-separated string as RabbitMQ's API and older
    definitions give them (``"administrator, management"``); blanks stripped, empties dropped,
    order and duplicates kept out."""
    if tags is None:
        return ()
    items = tags.split(",") if isinstance(tags, str) else [str(t) for t in tags]
    out: list[str] = []
    for item in items:
        tag = item.strip()
        if tag and tag not in out:
            out.append(tag)
    return tuple(out)


@dataclass(frozen=True)
class User:
    """A user as RabbitMQ's internal backend keeps it. ``password_hash`` is base64 (empty: no
    password, so no password login), ``hashing_algorithm`` the RabbitMQ module that made it."""

    name: str
    password_hash: str = ""
    hashing_algorithm: str = passwords.DEFAULT_ALGORITHM
    tags: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` logs this user in (never for an empty one, or without a hash)."""
        return passwords.verify_password(self.password_hash, self.hashing_algorithm, password)

    def as_definition(self) -> dict[str, Any]:
        """The user in RabbitMQ's definitions format (3.10: tags as a list)."""
        return {"name": self.name, "password_hash": self.password_hash,
                "hashing_algorithm": self.hashing_algorithm, "tags": list(self.tags),
                "limits": dict(self.limits)}


@dataclass(frozen=True)
class VhostInfo:
    """A virtual host's record: its name and metadata (the exchanges and queues are the
    server's ``VirtualHost``)."""

    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    default_queue_type: str | None = None
    tracing: bool = False

    def as_definition(self) -> dict[str, Any]:
        """The vhost in RabbitMQ's definitions format."""
        metadata: dict[str, Any] = {"description": self.description, "tags": list(self.tags)}
        if self.default_queue_type is not None:
            metadata["default_queue_type"] = self.default_queue_type
        return {"name": self.name, "limits": [], "metadata": metadata}


class AccessListener(Protocol):
    """Told about every change, after it is made.

    ``kind`` and ``key``: ``"user", (name,)``; ``"vhost", (name,)``; ``"permissions",
    (user, vhost)``; ``"topic_permissions", (user, vhost, exchange)``. ``record`` is the new
    ``User``, ``VhostInfo``, ``Permissions`` or ``TopicPermissions``, or None when it was
    deleted. Deleting a user or a vhost also drops every permission that named it, without an
    event of its own for each.
    """

    def access_changed(self, kind: str, key: tuple[str, ...], record: object | None) -> None: ...


class Access:
    """Every user, vhost record and permission of one broker."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.vhosts: dict[str, VhostInfo] = {}
        self._permissions: dict[tuple[str, str], Permissions] = {}
        # (user, vhost) -> exchange -> its topic permissions
        self._topic: dict[tuple[str, str], dict[str, TopicPermissions]] = {}
        self._listeners: list[AccessListener] = []

    def subscribe(self, listener: AccessListener) -> None:
        """Call ``listener.access_changed`` after every change from now on."""
        self._listeners.append(listener)

    def _changed(self, kind: str, key: tuple[str, ...], record: object | None) -> None:
        for listener in list(self._listeners):
            listener.access_changed(kind, key, record)

    # ------------------------------------------------------------------ users

    def user(self, name: str) -> User | None:
        return self.users.get(name)

    def list_users(self) -> list[User]:
        return list(self.users.values())

    def _need_user(self, name: str) -> User:
        user = self.users.get(name)
        if user is None:
            raise NoSuchUser(name)
        return user

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs; None otherwise (unknown user, wrong or blank
        password, or a user without one)."""
        user = self.users.get(name)
        if user is None or not user.check_password(password):
            return None
        return user

    def add_user(self, name: str, password: str | None = None, *,
                 password_hash: str | None = None,
                 hashing_algorithm: str = passwords.DEFAULT_ALGORITHM,
                 tags: str | Iterable[str] | None = (),
                 limits: dict[str, Any] | None = None) -> User:
        """Create a user (UserExists if there is one). Give a ``password`` (hashed here with
        SHA-256), a ready ``password_hash`` (base64, as definitions carry it) with its
        ``hashing_algorithm``, or neither: a user without a password logs in only by other
        means (RabbitMQ: x509/EXTERNAL)."""
        if name in self.users:
            raise UserExists(name)
        return self._store_user(name, password, password_hash, hashing_algorithm, tags, limits)

    def put_user(self, name: str, password: str | None = None, *,
                 password_hash: str | None = None, hashing_algorithm: str | None = None,
                 tags: str | Iterable[str] | None = (),
                 limits: dict[str, Any] | None = None) -> tuple[User, bool]:
        """Create or update a user as RabbitMQ's ``PUT /api/users/{name}`` and definitions
        import do (``rabbit_auth_backend_internal:put_user``): the tags are replaced, and so is
        the password, which is cleared when neither ``password`` nor ``password_hash`` is
        given. Returns (user, created)."""
        created = name not in self.users
        if not created and limits is None:
            limits = self.users[name].limits
        user = self._store_user(name, password, password_hash,
                                hashing_algorithm or passwords.DEFAULT_ALGORITHM, tags, limits)
        return user, created

    def _store_user(self, name: str, password: str | None, password_hash: str | None,
                    hashing_algorithm: str, tags: str | Iterable[str] | None,
                    limits: dict[str, Any] | None) -> User:
        if not name:
            raise AccessError("a user name cannot be empty")
        if password is not None and password_hash is not None:
            raise AccessError("both password and password_hash are provided")
        if password is not None:
            stored = passwords.hash_password(password)
            hashing_algorithm = passwords.DEFAULT_ALGORITHM
        else:
            stored = password_hash or ""
            try:
                passwords.check_hash(stored, hashing_algorithm)
            except ValueError as exc:
                raise AccessError(str(exc)) from None
        user = User(name, stored, hashing_algorithm, parse_tags(tags), dict(limits or {}))
        self.users[name] = user
        self._changed("user", (name,), user)
        return user

    def change_password(self, name: str, password: str | None) -> User:
        """Set a new password (hashed with SHA-256), or clear it with None."""
        user = self._need_user(name)
        if password is None:
            return self._replace_user(user, password_hash="")
        return self._replace_user(user, password_hash=passwords.hash_password(password),
                                  hashing_algorithm=passwords.DEFAULT_ALGORITHM)

    def set_password_hash(self, name: str, password_hash: str,
                          hashing_algorithm: str = passwords.DEFAULT_ALGORITHM) -> User:
        """Set a ready hash (base64) made by ``hashing_algorithm``."""
        user = self._need_user(name)
        try:
            passwords.check_hash(password_hash, hashing_algorithm)
        except ValueError as exc:
            raise AccessError(str(exc)) from None
        return self._replace_user(user, password_hash=password_hash,
                                  hashing_algorithm=hashing_algorithm)

    def set_tags(self, name: str, tags: str | Iterable[str] | None) -> User:
        """Replace a user's tags (RabbitMQ ``set_user_tags``)."""
        return self._replace_user(self._need_user(name), tags=parse_tags(tags))

    def _replace_user(self, user: User, **changes: Any) -> User:
        new = dataclasses.replace(user, **changes)
        self.users[user.name] = new
        self._changed("user", (user.name,), new)
        return new

    def delete_user(self, name: str) -> None:
        """Delete a user and every permission of theirs (NoSuchUser if there is none). The
        server closes their connections (RabbitMQ: "user 'x' is deleted")."""
        self._need_user(name)
        del self.users[name]
        for key in [k for k in self._permissions if k[0] == name]:
            del self._permissions[key]
        for key in [k for k in self._topic if k[0] == name]:
            del self._topic[key]
        self._changed("user", (name,), None)

    # ------------------------------------------------------------------ vhosts

    def vhost(self, name: str) -> VhostInfo | None:
        return self.vhosts.get(name)

    def vhost_names(self) -> list[str]:
        return list(self.vhosts)

    def list_vhosts(self) -> list[VhostInfo]:
        return list(self.vhosts.values())

    def _need_vhost(self, name: str) -> VhostInfo:
        info = self.vhosts.get(name)
        if info is None:
            raise NoSuchVhost(name)
        return info

    def add_vhost(self, name: str, *, description: str = "",
                  tags: str | Iterable[str] | None = (), default_queue_type: str | None = None,
                  tracing: bool = False, grant_to: str | None = None) -> tuple[VhostInfo, bool]:
        """Create a vhost; an existing one is left as it is (RabbitMQ's ``add_vhost``).
        ``grant_to`` names a user who gets full permissions on a vhost created here, as the
        management API grants them to the user who created it. Returns (info, created)."""
        info = self.vhosts.get(name)
        if info is not None:
            return info, False
        if not name:
            raise AccessError("a virtual host name cannot be empty")
        info = VhostInfo(name, description, parse_tags(tags), default_queue_type, tracing)
        self.vhosts[name] = info
        self._changed("vhost", (name,), info)
        if grant_to is not None and grant_to in self.users:
            self.set_permissions(grant_to, name, FULL, FULL, FULL)
        return info, True

    def update_vhost(self, name: str, *, description: str | None = None,
                     tags: str | Iterable[str] | None = None,
                     default_queue_type: str | None = None,
                     tracing: bool | None = None) -> VhostInfo:
        """Change a vhost's metadata; what is None stays as it is."""
        info = self._need_vhost(name)
        new = VhostInfo(
            name,
            info.description if description is None else description,
            info.tags if tags is None else parse_tags(tags),
            info.default_queue_type if default_queue_type is None else default_queue_type,
            info.tracing if tracing is None else tracing,
        )
        self.vhosts[name] = new
        self._changed("vhost", (name,), new)
        return new

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost (NoSuchVhost if there is none) and every permission on it. The
        server closes its connections (320 "vhost 'x' is deleted") and deletes its queues and
        exchanges, as RabbitMQ does."""
        self._need_vhost(name)
        # RabbitMQ clears the permissions first, so no new connection gets in meanwhile
        for key in [k for k in self._permissions if k[1] == name]:
            del self._permissions[key]
        for key in [k for k in self._topic if k[1] == name]:
            del self._topic[key]
        del self.vhosts[name]
        self._changed("vhost", (name,), None)

    # ------------------------------------------------------------------ permissions

    def permissions(self, user: str, vhost: str) -> Permissions | None:
        """The user's permissions on the vhost; None: they may not use it at all."""
        return self._permissions.get((user, vhost))

    def can_access_vhost(self, user: str, vhost: str) -> bool:
        """Whether the user may open the vhost (has permissions there, even empty ones)."""
        return (user, vhost) in self._permissions and vhost in self.vhosts

    def list_permissions(self, user: str | None = None,
                         vhost: str | None = None) -> list[Permissions]:
        """Every permission, or a user's, or a vhost's, or one (user, vhost) pair's."""
        return [p for (u, v), p in self._permissions.items()
                if (user is None or u == user) and (vhost is None or v == vhost)]

    def set_permissions(self, user: str, vhost: str, configure: str, write: str,
                        read: str) -> Permissions:
        """Grant ``user`` these regular expressions on ``vhost`` (replacing what they had).
        InvalidRegex if one does not compile; NoSuchUser, NoSuchVhost."""
        perms = Permissions(user, vhost, configure, write, read)  # compiles: InvalidRegex
        self._need_user(user)
        self._need_vhost(vhost)
        self._permissions[(user, vhost)] = perms
        self._changed("permissions", (user, vhost), perms)
        return perms

    def clear_permissions(self, user: str, vhost: str) -> bool:
        """Take a user's permissions on a vhost away; False if they had none."""
        self._need_user(user)
        self._need_vhost(vhost)
        if self._permissions.pop((user, vhost), None) is None:
            return False
        self._changed("permissions", (user, vhost), None)
        return True

    # ------------------------------------------------------------------ topic permissions

    def topic_permissions(self, user: str, vhost: str) -> dict[str, TopicPermissions]:
        """The user's topic permissions on the vhost's exchanges, by exchange name (an
        exchange without an entry is not restricted)."""
        return self._topic.get((user, vhost), {})

    def list_topic_permissions(self, user: str | None = None, vhost: str | None = None,
                               exchange: str | None = None) -> list[TopicPermissions]:
        return [t for (u, v), by_exchange in self._topic.items()
                if (user is None or u == user) and (vhost is None or v == vhost)
                for t in by_exchange.values() if exchange is None or t.exchange == exchange]

    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str,
                              read: str) -> TopicPermissions:
        """Restrict the routing keys ``user`` may publish with (``write``) and bind with
        (``read``) on the topic exchange ``exchange`` of ``vhost``. ``{username}`` and
        ``{vhost}`` in an expression stand for the user's and the vhost's names."""
        perms = TopicPermissions(user, vhost, exchange, write, read)
        self._need_user(user)
        self._need_vhost(vhost)
        self._topic.setdefault((user, vhost), {})[exchange] = perms
        self._changed("topic_permissions", (user, vhost, exchange), perms)
        return perms

    def clear_topic_permissions(self, user: str, vhost: str,
                                exchange: str | None = None) -> bool:
        """Drop a user's topic permissions on one exchange of a vhost, or on all of them;
        False if there were none."""
        self._need_user(user)
        self._need_vhost(vhost)
        by_exchange = self._topic.get((user, vhost))
        if not by_exchange:
            return False
        names = list(by_exchange) if exchange is None else [exchange]
        gone = [name for name in names if by_exchange.pop(name, None) is not None]
        if not by_exchange:
            del self._topic[(user, vhost)]
        for name in gone:
            self._changed("topic_permissions", (user, vhost, name), None)
        return bool(gone)

    # ------------------------------------------------------------------ first boot

    def create_defaults(self, users: Sequence[tuple[str, str]], vhosts: Sequence[str],
                        default_tags: Iterable[str] = ("administrator",),
                        default_permissions: tuple[str, str, str] = (FULL, FULL, FULL)
                        ) -> None:
        """What RabbitMQ's first boot creates: the vhosts, then the users with the given
        permissions on each; the first user is the default user and gets ``default_tags``."""
        for vhost in vhosts:
            self.add_vhost(vhost, description="Default virtual host" if vhost == vhosts[0]
                           else "")
        for i, (name, password) in enumerate(users):
            if name not in self.users:
                self.add_user(name, password, tags=default_tags if i == 0 else ())
            for vhost in vhosts:
                self.set_permissions(name, vhost, *default_permissions)


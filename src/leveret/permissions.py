"""Permission regular expressions with RabbitMQ's (Erlang ``re``, i.e. PCRE) semantics.

RabbitMQ's internal backend grants an operation when ``re:run(Name, Regex)`` matches anywhere
in the resource name; an empty expression means ``^$`` (nothing but the empty name). ``re:run``
on binaries without the ``unicode`` option works on bytes, so patterns are compiled as bytes
regexes and names matched in their UTF-8 form: ``.`` is one byte, ``\\w`` is ASCII, as there.
The few PCRE forms Python's ``re`` spells differently are translated (``\\Q...\\E``,
``(?<name>...)``, ``\\z``/``\\Z``, POSIX classes); anything else Python cannot compile is
refused when the permission is set, as RabbitMQ refuses an expression ``re:compile`` rejects.

rabbitmq.com/docs/access-control#authorisation
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from .errors import ACCESS_REFUSED, ChannelError

CONFIGURE, WRITE, READ = "configure", "write", "read"
PERMS = (CONFIGURE, WRITE, READ)

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "ascii": "\\x00-\\x7f", "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "\\x21-\\x7e", "lower": "a-z",
    "print": "\\x20-\\x7e", "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z", "word": "a-zA-Z0-9_", "xdigit": "0-9a-fA-F",
}
_MEMO_LIMIT = 4096  # names remembered per permission and kind of access


class AccessModel(Protocol):
    """What an ``Authorizer`` reads (``auth.Access``)."""

    def permissions(self, user: str, vhost: str) -> Permissions | None: ...

    def topic_permissions(self, user: str, vhost: str) -> dict[str, TopicPermissions]: ...


class InvalidRegex(ValueError):
    """A permission expression that does not compile: ``reason`` says why (Python's words),
    ``position`` where in the translated expression (None if unknown)."""

    def __init__(self, pattern: str, reason: str, position: int | None = None) -> None:
        super().__init__(f"regular expression '{pattern}' is invalid: {reason}")
        self.pattern = pattern
        self.reason = reason
        self.position = position


_FLAGS = re.compile(r"\(\?([imsx]*)(?:-([imsx]+))?\)")


def translate(pattern: str) -> str:
    """PCRE spellings Python's ``re`` lacks, rewritten to Python's: ``\\Q...\\E``,
    ``(?<name>...)``, ``(?'name'...)``, ``\\k<name>``, ``\\z``, ``\\Z``, ``\\h``, POSIX
    classes, ``{,n}`` (a literal in PCRE), and option settings such as ``(?i)`` in the middle
    of a pattern (PCRE applies them to the rest of the enclosing group, alternatives
    included; Python only takes them at the very start)."""
    out: list[str] = []
    # per open group: the option groups opened in it, closed again at '|' and ')'
    scoped: list[list[str]] = [[]]
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":  # \Q...\E: everything between is literal
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt == "h":
                out.append(" \\t\\xa0" if in_class else "[ \\t\\xa0]")
            elif nxt == "H" and not in_class:
                out.append("[^ \\t\\xa0]")
            elif not in_class and nxt == "z":
                out.append("\\Z")
            elif not in_class and nxt == "Z":
                out.append("(?=\\n?\\Z)")
            elif not in_class and nxt == "k" and pattern.startswith("<", i + 2):
                end = pattern.find(">", i + 3)
                if end < 0:
                    out.append(pattern[i:i + 2])
                else:
                    out.append(f"(?P={pattern[i + 3:end]})")
                    i = end + 1
                    continue
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2:end] if end > 0 else ""
                if name in _POSIX_CLASSES:
                    out.append(_POSIX_CLASSES[name])
                    i = end + 2
                    continue
                out.append("\\[")  # a literal '[' inside a class, as PCRE reads it
                i += 1
                continue
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            # a ']' first in the class (after an optional '^') is a literal
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("\\]")
                i += 1
            continue
        if c == "{" and pattern.startswith("{,", i):
            out.append("\\{")  # PCRE has no {,n} quantifier: a literal brace
            i += 1
            continue
        if c == "(":
            flags = _FLAGS.match(pattern, i)
            if flags is not None and (flags.group(1) or flags.group(2)):
                if i == 0 and not flags.group(2):
                    out.append(flags.group(0))  # at the very start Python takes it as it is
                else:
                    opened = f"(?{flags.group(1)}" + (f"-{flags.group(2)}" if flags.group(2)
                                                       else "") + ":"
                    out.append(opened)
                    scoped[-1].append(opened)
                i = flags.end()
                continue
            if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
                out.append("(?P<")
                i += 3
                scoped.append([])
                continue
            if pattern.startswith("(?'", i):
                end = pattern.find("'", i + 3)
                if end > 0:
                    out.append(f"(?P<{pattern[i + 3:end]}>")
                    i = end + 1
                    scoped.append([])
                    continue
            scoped.append([])
            out.append(c)
            i += 1
            continue
        if c == "|" and scoped[-1]:
            out.append(")" * len(scoped[-1]) + "|" + "".join(scoped[-1]))
            i += 1
            continue
        if c == ")":
            out.append(")" * len(scoped[-1]))
            if len(scoped) > 1:
                scoped.pop()
            else:
                scoped[-1] = []
        out.append(c)
        i += 1
    out.append(")" * len(scoped[-1]) if len(scoped) == 1 else "")
    return "".join(out)


def compile_permission(pattern: str) -> re.Pattern[bytes]:
    """The compiled form of one permission expression; InvalidRegex if it does not compile.
    An empty expression grants nothing but the empty name (RabbitMQ reads it as ``^$``)."""
    source = translate(pattern) if pattern else "^$"
    try:
        return re.compile(source.encode("utf-8"))
    except re.error as exc:
        raise InvalidRegex(pattern, exc.msg, exc.pos) from None
    except (OverflowError, RecursionError) as exc:
        raise InvalidRegex(pattern, str(exc)) from None


def expand_topic_variables(pattern: str, user: str, vhost: str) -> str:
    """``{username}`` and ``{vhost}`` in a topic permission stand for the connection's user and
    vhost, replaced as plain text before the expression is compiled (RabbitMQ's
    ``expand_topic_permission``)."""
    return pattern.replace("{username}", user).replace("{vhost}", vhost)


@dataclass(eq=False)
class Permissions:
    """One user's configure, write and read expressions on one virtual host."""

    user: str
    vhost: str
    configure: str
    write: str
    read: str
    _compiled: dict[str, re.Pattern[bytes]] = field(init=False, repr=False)
    _memo: dict[str, dict[str, bool]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = {perm: compile_permission(getattr(self, perm)) for perm in PERMS}
        self._memo = {perm: {} for perm in PERMS}

    def allows(self, perm: str, name: str) -> bool:
        """Whether ``perm`` (configure, write or read) is granted on a resource named ``name``
        (the default exchange is ``amq.default``: the caller passes that name)."""
        memo = self._memo[perm]
        hit = memo.get(name)
        if hit is None:
            hit = self._compiled[perm].search(name.encode("utf-8")) is not None
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[name] = hit
        return hit

    def as_dict(self) -> dict[str, str]:
        """As RabbitMQ's definitions and management API show it."""
        return {"user": self.user, "vhost": self.vhost, "configure": self.configure,
                "write": self.write, "read": self.read}


@dataclass(eq=False)
class TopicPermissions:
    """One user's write and read expressions on routing keys of one topic exchange
    (rabbitmq.com/docs/access-control#topic-authorisation)."""

    user: str
    vhost: str
    exchange: str
    write: str
    read: str
    _compiled: dict[str, re.Pattern[bytes]] = field(init=False, repr=False)
    _memo: dict[str, dict[str, bool]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # checked as written when set; compiled with the variables expanded
        for pattern in (self.write, self.read):
            compile_permission(pattern)
        self._compiled = {
            perm: compile_permission(expand_topic_variables(getattr(self, perm), self.user,
                                                            self.vhost))
            for perm in (WRITE, READ)}
        self._memo = {WRITE: {}, READ: {}}

    def allows(self, perm: str, routing_key: str) -> bool:
        """Whether ``perm`` (write or read) is granted for ``routing_key``."""
        memo = self._memo[perm]
        hit = memo.get(routing_key)
        if hit is None:
            hit = self._compiled[perm].search(routing_key.encode("utf-8")) is not None
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[routing_key] = hit
        return hit

    def as_dict(self) -> dict[str, str]:
        """As RabbitMQ's definitions and management API show it."""
        return {"user": self.user, "vhost": self.vhost, "exchange": self.exchange,
                "write": self.write, "read": self.read}


class Authorizer:
    """What one user may do on one vhost: RabbitMQ's ``check_resource_access`` and
    ``check_topic_access`` (rabbit_access_control), raising 403 ACCESS_REFUSED with its texts.

    One per connection, shared by its channels. ``refresh()`` picks up changed permissions
    (the server calls it when they change); each ``Permissions`` remembers the names it
    matched, so a repeated check is two dict lookups.
    """

    __slots__ = ("access", "user", "vhost", "permissions", "topic")

    def __init__(self, access: AccessModel, user: str, vhost: str) -> None:
        self.access = access
        self.user = user
        self.vhost = vhost
        self.permissions: Permissions | None = None
        self.topic: dict[str, TopicPermissions] = {}
        self.refresh()

    def refresh(self) -> None:
        self.permissions = self.access.permissions(self.user, self.vhost)
        self.topic = dict(self.access.topic_permissions(self.user, self.vhost))

    def allows(self, perm: str, kind: str, name: str) -> bool:
        if kind == "exchange" and not name:
            name = "amq.default"  # the default exchange is this resource (rabbit_access_control)
        perms = self.permissions
        return perms is not None and perms.allows(perm, name)

    def check(self, perm: str, kind: str, name: str) -> None:
        """Raise 403 unless ``perm`` (configure, write, read) is granted on the ``kind``
        (exchange, queue) resource ``name``."""
        if not self.allows(perm, kind, name):
            if kind == "exchange" and not name:
                name = "amq.default"
            raise ChannelError(ACCESS_REFUSED, f"access to {kind} '{name}' in vhost "
                                               f"'{self.vhost}' refused for user '{self.user}'")

    def check_topic(self, perm: str, exchange: str, routing_key: str) -> None:
        """Raise 403 unless ``perm`` (write: publish, read: bind) is granted for
        ``routing_key`` on the topic exchange ``exchange``; no topic permissions on it grant
        everything. The caller checks only topic exchanges, as RabbitMQ does."""
        topic = self.topic.get(exchange)
        if topic is not None and not topic.allows(perm, routing_key):
            raise ChannelError(ACCESS_REFUSED, f"access to topic '{routing_key}' in exchange "
                                               f"'{exchange}' in vhost '{self.vhost}' refused "
                                               f"for user '{self.user}'")

    def has_topic_permissions(self, exchange: str) -> bool:
        return exchange in self.topic

"""``leveret-ctl``: rabbitmqctl and rabbitmq-diagnostics for a broker's management HTTP API.

Scripts and docs written for RabbitMQ work by changing the command's name, or by linking
``rabbitmqctl`` / ``rabbitmq-diagnostics`` to this one: it reads the name it was run as and
offers that tool's commands. Commands, flags (``-p``, ``-q``, ``-s``, ``--formatter``,
``--no-table-headers``, ``-t``; ``-n`` and ``-l`` are accepted and ignored), output and exit
codes are those of RabbitMQ 3.10's tools. The broker is reached at ``--management-url
http://USER:PASS@HOST:PORT`` (or ``LEVERET_MANAGEMENT_URL``; default guest on
localhost:15672), never through its files, so it works on RabbitMQ too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import commands, health
from .client import (
    DEFAULT_URL,
    EX_SOFTWARE,
    EX_UNAVAILABLE,
    EX_USAGE,
    ApiError,
    CtlError,
    ManagementAPI,
    UsageError,
)
from .context import Context
from .listing import LISTINGS, run_listing
from .output import FORMATTERS

CTL, DIAG = "rabbitmqctl", "rabbitmq-diagnostics"


@dataclass(frozen=True)
class Command:
    run: Callable[..., int]
    args: tuple[int, int]  # how many positional arguments: at least, at most (-1: any)
    usage: str
    tools: frozenset[str]
    summary: str


def _listing(name: str) -> Callable[..., int]:
    return lambda ctx, *args: run_listing(ctx, name, list(args))


_BOTH = frozenset({CTL, DIAG})
_CTL_ONLY = frozenset({CTL})
_DIAG_ONLY = frozenset({DIAG})
_VHOST = "[--vhost <vhost>] "
_PER_VHOST = {"list_queues", "list_exchanges", "list_bindings", "list_consumers",
              "list_permissions"}

COMMANDS: dict[str, Command] = {
    **{name: Command(_listing(name), (0, -1 if listing.takes_columns else 0),
                     f"{name} {_VHOST if name in _PER_VHOST else ''}[--no-table-headers]"
                     f"{' [<column> ...]' if listing.takes_columns else ''}",
                     _BOTH, f"Lists {name[5:]}")
       for name, listing in LISTINGS.items()},
    "add_user": Command(commands.add_user, (2, 2), "add_user <username> <password>", _CTL_ONLY,
                        "Creates a new user"),
    "delete_user": Command(commands.delete_user, (1, 1), "delete_user <username>", _CTL_ONLY,
                           "Removes a user"),
    "change_password": Command(commands.change_password, (2, 2),
                               "change_password <username> <password>", _CTL_ONLY,
                               "Changes the user password"),
    "set_user_tags": Command(commands.set_user_tags, (1, -1),
                             "set_user_tags <username> <tag> [...]", _CTL_ONLY,
                             "Sets user tags"),
    "add_vhost": Command(commands.add_vhost, (1, 1),
                         "add_vhost <vhost> [--description <description> --tags "
                         "\"<tag1>,<tag2>,<...>\" --default-queue-type <quorum|classic|stream>]",
                         _CTL_ONLY, "Creates a virtual host"),
    "delete_vhost": Command(commands.delete_vhost, (1, 1), "delete_vhost <vhost>", _CTL_ONLY,
                            "Deletes a virtual host"),
    "set_permissions": Command(commands.set_permissions, (4, 4),
                               "set_permissions [--vhost <vhost>] <username> <conf> <write> "
                               "<read>", _CTL_ONLY, "Sets user permissions for a vhost"),
    "clear_permissions": Command(commands.clear_permissions, (1, 1),
                                 "clear_permissions [--vhost <vhost>] <username>", _CTL_ONLY,
                                 "Revokes user permissions for a vhost"),
    "purge_queue": Command(commands.purge_queue, (1, 1),
                           "purge_queue [--vhost <vhost>] <queue>", _CTL_ONLY,
                           "Purges a queue (removes all messages in it)"),
    "delete_queue": Command(commands.delete_queue, (1, 1),
                            "delete_queue [--vhost <vhost>] <queue_name> [--if-empty|-e] "
                            "[--if-unused|-u]", _CTL_ONLY, "Deletes a queue"),
    "close_connection": Command(commands.close_connection, (2, 2),
                                "close_connection <connection name> <explanation>", _CTL_ONLY,
                                "Instructs the broker to close the connection (its name, as "
                                "list_connections name or pid shows it)"),
    "export_definitions": Command(commands.export_definitions, (1, 1),
                                  "export_definitions <file_path | \"-\"> [--format <json>]",
                                  _CTL_ONLY, "Exports definitions in JSON"),
    "import_definitions": Command(commands.import_definitions, (1, 1),
                                  "import_definitions <file_path | \"-\"> [--format <json>]",
                                  _CTL_ONLY, "Imports definitions in JSON"),
    "status": Command(health.status, (0, 0), "status", _BOTH, "Displays status of a node"),
    "await_startup": Command(health.await_startup, (0, 0), "await_startup [--timeout <t>]",
                             _CTL_ONLY, "Waits for the broker to start"),
    "ping": Command(health.ping, (0, 0), "ping", _BOTH,
                    "Checks that the broker is up and its management API answers"),
    "check_running": Command(health.check_running, (0, 0), "check_running", _DIAG_ONLY,
                             "Health check that exits with a non-zero code if the broker is "
                             "not running"),
    "is_running": Command(health.is_running, (0, 0), "is_running", _DIAG_ONLY,
                          "Checks if the broker is fully booted and running"),
    "check_port_connectivity": Command(health.check_port_connectivity, (0, 0),
                                       "check_port_connectivity", _DIAG_ONLY,
                                       "Basic TCP connectivity health check for each "
                                       "listener's port"),
    "check_local_alarms": Command(health.check_local_alarms, (0, 0), "check_local_alarms",
                                  _DIAG_ONLY, "Health check that exits with a non-zero code "
                                              "if the node reports any local alarms"),
    "check_alarms": Command(health.check_alarms, (0, 0), "check_alarms", _DIAG_ONLY,
                            "Health check that exits with a non-zero code if the node reports "
                            "any alarms"),
    "listeners": Command(health.listeners, (0, 0), "listeners", _DIAG_ONLY,
                         "Lists active connection listeners"),
    "server_version": Command(health.server_version, (0, 0), "server_version", _DIAG_ONLY,
                              "Displays server version on the target node"),
}

_WITH_VALUE = {"-n": "node", "--node": "node", "-p": "vhost", "--vhost": "vhost",
               "-t": "timeout", "--timeout": "timeout", "--formatter": "formatter",
               "--management-url": "management_url", "--description": "description",
               "--tags": "tags", "--default-queue-type": "default_queue_type",
               "--format": "format"}
_FLAGS = {"-q": "quiet", "--quiet": "quiet", "-s": "silent", "--silent": "silent",
          "-l": "longnames", "--longnames": "longnames", "--no-table-headers": "no_headers",
          "--if-empty": "if_empty", "-e": "if_empty", "--if-unused": "if_unused",
          "-u": "if_unused", "--online": "online", "--offline": "offline", "--local": "local",
          "-?": "help", "-h": "help", "--help": "help"}


def tool_name(argv0: str) -> str:
    """Which tool this is, from the name it was run as (a symlink or alias)."""
    base = os.path.basename(argv0)
    for name in (DIAG, CTL):
        if base.startswith(name):
            return name
    return "leveret-ctl"


def _parse(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    options: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional += argv[i + 1:]
            break
        name, eq, value = arg.partition("=")
        if name in _WITH_VALUE and name.startswith("--") and eq:
            options[_WITH_VALUE[name]] = value
        elif arg in _WITH_VALUE:
            if i + 1 >= len(argv):
                raise UsageError(f"option {arg} needs a value")
            options[_WITH_VALUE[arg]] = argv[i + 1]
            i += 1
        elif arg in _FLAGS:
            options[_FLAGS[arg]] = True
        elif arg.startswith("-") and arg != "-" and len(arg) > 1:
            raise UsageError(f"invalid option {arg}")
        else:
            positional.append(arg)
        i += 1
    return options, positional


def _available(tool: str) -> dict[str, Command]:
    return {n: c for n, c in COMMANDS.items() if tool == "leveret-ctl" or tool in c.tools}


def usage_text(tool: str) -> str:
    lines = [f"Usage: {tool} [--management-url <url>] [-p <vhost>] [-q] [-s] "
             "[--formatter json|table|csv] <command> [<command options>]", "",
             "The broker is reached through its management HTTP API: --management-url "
             f"or LEVERET_MANAGEMENT_URL (default {DEFAULT_URL}).", "", "Available commands:",
             ""]
    for name, command in sorted(_available(tool).items()):
        lines.append(f"   {name:<26}{command.summary}")
    lines += ["", f"Use '{tool} help <command>' to learn more about a specific command"]
    return "\n".join(lines)


def _command_usage(tool: str, command: Command) -> str:
    return f"{tool} [--node <node>] [--longnames] [--quiet] {command.usage}"


def main(argv: list[str] | None = None, argv0: str | None = None) -> int:
    """Run one command; returns the exit status (rabbitmqctl's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    tool = tool_name(argv0 if argv0 is not None else sys.argv[0])
    out, err = sys.stdout, sys.stderr
    try:
        options, positional = _parse(argv)
    except UsageError as exc:
        err.write(f"Error (argument validation): {exc.message}\n\n{usage_text(tool)}\n")
        return EX_USAGE
    available = _available(tool)
    if not positional or positional[0] == "help":
        topic = positional[1] if len(positional) > 1 else None
        if topic in available:
            out.write(f"Usage\n\n{_command_usage(tool, available[topic])}\n\n"
                      f"{available[topic].summary}\n")
            return 0
        (out if options.get("help") or positional else err).write(usage_text(tool) + "\n")
        return 0 if options.get("help") or positional else EX_USAGE
    name, args = positional[0], positional[1:]
    command = available.get(name)
    if command is None:
        err.write(f"\nCommand '{name}' not found. \n\n{usage_text(tool)}\n")
        return EX_USAGE
    if options.get("help"):
        out.write(f"Usage\n\n{_command_usage(tool, command)}\n\n{command.summary}\n")
        return 0
    try:
        ctx = _context(tool, options, out)
        low, high = command.args
        if len(args) < low:
            raise UsageError("not enough arguments.")
        if high >= 0 and len(args) > high:
            raise UsageError("too many arguments.")
        return command.run(ctx, *args)
    except UsageError as exc:
        err.write(f"Error (argument validation): {exc.message}\nArguments given:\n\t"
                  f"{' '.join([name, *args])}\n\nUsage\n\n{_command_usage(tool, command)}\n")
        return exc.code
    except CtlError as exc:
        err.write(exc.message + "\n" if exc.bare else f"Error:\n{exc.message}\n")
        return exc.code
    except ApiError as exc:
        if exc.status in (401, 403):
            err.write(f"Error:\nthe management API refused the request ({exc.status} "
                      f"{exc.error}: {exc.reason}); check the user and password of "
                      "--management-url\n")
            return EX_UNAVAILABLE
        err.write(f"Error:\n{exc.status} {exc.error}: {exc.reason}\n")
        return EX_SOFTWARE
    except KeyboardInterrupt:
        return 130


def _context(tool: str, options: dict[str, Any], out: Any) -> Context:
    formatter = options.get("formatter", "table")
    if formatter not in FORMATTERS:
        raise UsageError(f"formatter {formatter!r} is not one of {', '.join(FORMATTERS)}")
    timeout = None
    if options.get("timeout") is not None:
        try:
            timeout = float(options["timeout"])
        except ValueError:
            raise UsageError(f"timeout {options['timeout']!r} is not a number") from None
    url = options.get("management_url") or os.environ.get("LEVERET_MANAGEMENT_URL") \
        or DEFAULT_URL
    api = ManagementAPI(url, timeout=timeout if timeout else 60.0)
    return Context(api=api, tool=tool, vhost=options.get("vhost", "/"),
                   quiet=bool(options.get("quiet")), silent=bool(options.get("silent")),
                   formatter=formatter, table_headers=not options.get("no_headers"),
                   timeout=timeout, options=options, out=out)


def console_main() -> None:
    """The ``leveret-ctl`` console script."""
    sys.exit(main())

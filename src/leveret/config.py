"""``rabbitmq.conf``: RabbitMQ's configuration file format, for the keys Leveret understands.

The format (rabbitmq.com/docs/configure#config-file) is sysctl-like: one ``key = value`` a
line, ``#`` starts a comment (to the end of the line, as RabbitMQ's cuttlefish reads it), blank
lines are ignored, keys are dotted words. Each key below maps onto one ``leveret`` command-line
option (its argparse ``dest``), so the file, the command line and the environment fill the same
settings; ``cli.py`` layers them (command line over file over environment).

A key RabbitMQ knows but Leveret does not act on is warned about once and ignored, so a
``rabbitmq.conf`` written for RabbitMQ starts Leveret too; a line that is not ``key = value``,
or a value a key cannot take, is an error naming the file and the line.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# a value converter: the text after "=" -> the option's value; raises ValueError or
# argparse.ArgumentTypeError with a message saying what is wrong
Convert = Callable[[str], Any]


class ConfigError(Exception):
    """The configuration file cannot be read or holds a line Leveret cannot take."""


@dataclass(frozen=True)
class ConfKey:
    """One ``rabbitmq.conf`` key (``*`` matches one dotted word) and the option it sets."""

    pattern: str
    dest: str  # the leveret option's argparse dest (``--frame-max`` -> ``frame_max``)
    convert: Convert
    # several keys may feed one option that takes a list or mapping: merge(old, key, value)
    merge: Callable[[Any, str, Any], Any] | None = None

    def matches(self, key: str) -> bool:
        want, got = self.pattern.split("."), key.split(".")
        return len(want) == len(got) and all(w in ("*", g) for w, g in zip(want, got))


@dataclass
class ConfigFile:
    """What a configuration file says: option values by dest, and what was ignored."""

    path: str
    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- value converters

def boolean(text: str) -> bool:
    """``true`` / ``false`` as cuttlefish spells them."""
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"'{text}' is not true or false")


def listener(text: str) -> tuple[str | None, int]:
    """``5672``, ``127.0.0.1:5672``, ``::1:5672`` or ``[::1]:5672`` -> (host or None, port)."""
    from .cli import port_number

    if ":" not in text:
        return None, port_number(text)
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"'{text}' is not a port or host:port")
    return host, port_number(port)


def text_value(text: str) -> str:
    return text


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address (rabbit.schema's is_ip validator)."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise ValueError(f"'{text}' is not an IP address") from None


def readable_path(text: str) -> str:
    """A file or directory Leveret can read (rabbit.schema's file_accessible validator)."""
    if not os.access(text, os.R_OK):
        why = "does not exist" if not os.path.exists(text) else "cannot be read"
        raise ValueError(f"'{text}' {why}")
    return text


def import_backend(text: str) -> str:
    """definitions.import_backend: only the local file system's (definitions.local.path)."""
    if text not in ("local_filesystem", "local", "rabbit_definitions_import_local_filesystem"):
        raise ValueError(f"'{text}' is not supported: Leveret reads definitions from local "
                         "files only (local_filesystem)")
    return text


def _merge_paths(old: Any, key: str, value: Any) -> Any:
    # load_definitions and management.load_definitions may both be set: RabbitMQ loads both
    return [*(old or []), value]


def _keep(old: Any, key: str, value: Any) -> Any:
    return old


def _merge_listener(old: Any, key: str, value: Any) -> Any:
    if old is not None and old != value:
        # one AMQP listener: RabbitMQ's several listeners.tcp.NAME would each be a socket
        raise ValueError("Leveret listens on one address: set one listeners.tcp.* key")
    return value


def _merge_mapping(old: Any, key: str, value: Any) -> Any:
    merged = dict(old or {})
    merged[key.rsplit(".", 1)[1]] = value
    return merged


class _NoUsers(list):  # type: ignore[type-arg]
    """``loopback_users = none``: no user, whatever loopback_users.NAME lines say."""


_NONE_SET = _NoUsers()


def none_only(text: str) -> list[str]:
    """``loopback_users = none``: the only value the bare key takes."""
    if text != "none":
        raise ValueError(f"'{text}' is not none (name users as loopback_users.NAME = true)")
    return []


def _merge_loopback(old: Any, key: str, value: Any) -> Any:
    # rabbit.schema: with loopback_users.NAME keys the list is the names set to true (so
    # loopback_users.guest = false alone empties it); loopback_users = none empties it; with
    # neither key it stays the default, [guest]
    if key == "loopback_users" or isinstance(old, _NoUsers):
        return _NONE_SET
    users = list(old or [])
    name = key.split(".", 1)[1]
    if value and name not in users:
        users.append(name)
    elif not value and name in users:
        users.remove(name)
    return users


# ---------------------------------------------------------------------- the keys

def _keys() -> list[ConfKey]:
    from . import cli

    return [
        ConfKey("listeners.tcp.*", "listener", listener, _merge_listener),
        ConfKey("default_user", "user", text_value),
        ConfKey("default_pass", "password", text_value),
        ConfKey("default_vhost", "vhost", text_value),
        ConfKey("loopback_users", "loopback_users", none_only, _merge_loopback),
        ConfKey("loopback_users.*", "loopback_users", boolean, _merge_loopback),
        ConfKey("heartbeat", "heartbeat", cli.heartbeat_seconds),
        ConfKey("frame_max", "frame_max", cli.frame_max_bytes),
        ConfKey("channel_max", "channel_max", cli.channel_max_count),
        ConfKey("max_message_size", "max_message_size", cli.message_size),
        ConfKey("consumer_timeout", "consumer_timeout", cli.milliseconds),
        ConfKey("log.console.level", "log_level", cli.log_level_name),
        ConfKey("log.console.formatter", "log_format", cli.log_format_name),
        # definitions imported at boot; on a first boot they replace the default user and
        # vhost (rabbit:maybe_insert_default_data counts all three keys)
        ConfKey("load_definitions", "definitions", readable_path, _merge_paths),
        ConfKey("management.load_definitions", "definitions", readable_path, _merge_paths),
        ConfKey("definitions.local.path", "definitions", readable_path, _merge_paths),
        ConfKey("definitions.import_backend", "definitions", import_backend, _keep),
        # the plugins' listeners (management.listener.* is the older spelling)
        ConfKey("management.tcp.port", "management_port", cli.port_number),
        ConfKey("management.tcp.ip", "management_host", ip_address),
        ConfKey("management.listener.port", "management_port", cli.port_number),
        ConfKey("management.listener.ip", "management_host", ip_address),
        ConfKey("prometheus.tcp.port", "prometheus_port", cli.port_number),
        ConfKey("prometheus.tcp.ip", "prometheus_host", ip_address),
    ] + _alarm_keys() + _tls_keys()


def _relative_wins(old: Any, key: str, value: Any) -> Any:
    # rabbit.schema: when both .relative and .absolute are set, .relative is taken (a float
    # here, an int for .absolute), whatever their order in the file
    if key.endswith(".absolute") and isinstance(old, float):
        return old
    return value


def _alarm_keys() -> list[ConfKey]:
    """The memory watermark and the disk free limit (issue 14), each as a ``.relative`` float
    or an ``.absolute`` size (rabbit.schema)."""
    from . import cli

    return [
        ConfKey("vm_memory_high_watermark.relative", "memory_high_watermark", cli.fraction,
                _relative_wins),
        ConfKey("vm_memory_high_watermark.absolute", "memory_high_watermark", cli.byte_size,
                _relative_wins),
        ConfKey("disk_free_limit.relative", "disk_free_limit", cli.fraction, _relative_wins),
        ConfKey("disk_free_limit.absolute", "disk_free_limit", cli.byte_size, _relative_wins),
    ]


# keys RabbitMQ accepts that have no meaning for Leveret and need no warning: where the log
# goes is the console, always
_SILENT = {"log.console", "log.file", "log.file.level", "log.console.formatter.json.field_map"}

_KEY = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+|\.\\\.)*")


def read(path: str, known_dests: set[str]) -> ConfigFile:
    """Read ``path``; keys whose option is not in ``known_dests`` are warned about."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    if path.endswith(".config"):
        raise ConfigError(f"{path}: the classic (Erlang term) format is not supported; "
                          "use the rabbitmq.conf (key = value) format")
    config = ConfigFile(path)
    keys = _keys()
    warned: set[str] = set()
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not _KEY.fullmatch(key):
            raise ConfigError(f"{path}, line {number}: expected 'key = value', "
                              f"got '{raw.strip()}'")
        if not value:
            raise ConfigError(f"{path}, line {number}: {key} has no value")
        spec = next((k for k in keys if k.matches(key)), None)
        if spec is None or spec.dest not in known_dests:
            if key not in _SILENT and key not in warned:
                warned.add(key)
                why = "unknown key" if spec is None else "not supported by Leveret"
                config.warnings.append(f"{path}, line {number}: {why} '{key}' ignored")
            continue
        try:
            converted = spec.convert(value)
            if spec.merge is not None:
                converted = spec.merge(config.values.get(spec.dest), key, converted)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"{path}, line {number}: {key}: {exc}") from None
        config.values[spec.dest] = converted
    return config


def config_path(given: str | None, env: dict[str, str] | os._Environ[str]) -> str | None:
    """``--config``, else ``RABBITMQ_CONFIG_FILE`` (which RabbitMQ lets omit ``.conf``)."""
    if given:
        return given
    path = env.get("RABBITMQ_CONFIG_FILE")
    if not path:
        return None
    if not os.path.exists(path) and os.path.exists(path + ".conf"):
        return path + ".conf"
    return path


def _tls_listener(old: Any, key: str, value: Any) -> Any:
    if key == "listeners.ssl":  # listeners.ssl = none: no TLS listener, whatever else says
        return NO_TLS
    if old == NO_TLS:
        return old
    if old is not None and old != value:
        raise ValueError("Leveret has one TLS listener: set one listeners.ssl.* key")
    return value


NO_TLS = (None, -1)  # listeners.ssl = none


def _tls_keys() -> list[ConfKey]:
    """The AMQPS listener (issue 14): rabbit.schema's listeners.ssl and ssl_options keys."""

    def verify(text: str) -> str:
        if text not in ("verify_peer", "verify_none"):
            raise ValueError(f"'{text}' is not verify_peer or verify_none")
        return text

    def login_from(text: str) -> str:
        if text not in ("distinguished_name", "common_name"):
            raise ValueError(f"'{text}' is not distinguished_name or common_name (Leveret "
                             "does not take subject_alternative_name)")
        return text

    return [
        ConfKey("listeners.ssl", "tls_listener", none_only, _tls_listener),
        ConfKey("listeners.ssl.*", "tls_listener", listener, _tls_listener),
        ConfKey("ssl_options.certfile", "tls_cert", text_value),
        ConfKey("ssl_options.keyfile", "tls_key", text_value),
        ConfKey("ssl_options.cacertfile", "tls_ca", text_value),
        ConfKey("ssl_options.verify", "tls_verify", verify),
        ConfKey("ssl_options.fail_if_no_peer_cert", "tls_fail_if_no_peer_cert", boolean),
        ConfKey("ssl_cert_login_from", "tls_login_from", login_from),
    ]

"""``leveret`` / ``python -m leveret``: a thin shell over ``leveret.Broker``.

Settings come from three places, the first that has one winning: the command line, the
configuration file (``--config`` or ``RABBITMQ_CONFIG_FILE``, RabbitMQ's ``rabbitmq.conf``
format, see ``config.py``), the environment (``RABBITMQ_NODE_PORT``,
``RABBITMQ_DEFAULT_USER``/``_PASS``/``_VHOST``, as RabbitMQ's container reads them).

Once every listener is up the log says so in RabbitMQ's words (``started TCP listener on
...``, ``Server startup complete; N plugins started.``), which is what testcontainers and
scripts wait for. Every start-up error is one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import platform
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from . import __version__
from .logs import LEVELS

_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
          "gb": 1000**3, "gib": 1024**3,
          # rabbitmq.conf's one-letter units are powers of 1024 (rabbitmq.com/docs/memory)
          "k": 1024, "m": 1024**2, "g": 1024**3}

log = logging.getLogger("leveret")


class StartupError(Exception):
    """Leveret cannot start; the message says why, in one line."""


# ---------------------------------------------------------------------- value types
# Each raises argparse.ArgumentTypeError with what is wrong, so a bad flag is a usage error
# naming the option and a bad rabbitmq.conf value names the file and line.

def byte_size(text: str) -> int:
    """A number of bytes: ``134217728``, ``128MiB``, ``1.5GB``, ``512 kib`` (as RabbitMQ's
    configuration writes them; a bare number is bytes)."""
    s = text.strip().lower()
    i = len(s)
    while i and s[i - 1].isalpha():
        i -= 1
    number, unit = s[:i].strip(), s[i:]
    try:
        value = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a size: a number of bytes, or with kB, MB, GB, KiB, MiB, GiB"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}': a size cannot be negative")
    return int(value)


def _integer(text: str, what: str, low: int, high: int, why: str = "") -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    return _in_range(value, what, low, high, why)


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    return _integer(text, "a port", 0, 65535)


def _in_range(value: int, what: str, low: int, high: int, why: str = "") -> int:
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value} is out of range: {what} is {low} to "
                                         f"{high}{why}")
    return value


def frame_max_bytes(text: str) -> int:
    """connection.tune's frame_max: at least 4096 (AMQP 0-9-1's frame-min-size), a long;
    units as rabbitmq.conf's bytesize (``128KiB``)."""
    return _in_range(byte_size(text), "a frame size", 4096, 2**32 - 1,
                     " (AMQP 0-9-1 frames are at least 4096 bytes)")


def message_size(text: str) -> int:
    """max_message_size: at most 512 MiB, RabbitMQ's own limit (its config schema refuses
    more); units allowed."""
    return _in_range(byte_size(text), "a message size", 0, 512 * 1024 * 1024,
                     " (512 MiB, RabbitMQ's limit)")


def share_or_size(text: str) -> float | int:
    """A fraction or a multiple of the memory (``0.4``, ``2.0``: a number with a decimal
    point, a float) or a size in bytes (``512MiB``, ``50000000``, ``0``: an int), as
    ``--memory-high-watermark`` and ``--disk-free-limit`` take them."""
    s = text.strip()
    if "." in s and not s[-1:].isalpha():
        try:
            share = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a fraction (0.4) or a size (512MiB)") from None
        if not share >= 0:
            raise argparse.ArgumentTypeError(f"'{text}': cannot be negative")
        return share
    return byte_size(text)


def fraction(text: str) -> float:
    """rabbitmq.conf's ``*.relative`` (a float datatype: ``0.4``, ``1``, ``2.0``)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"'{text}': cannot be negative")
    return value


def milliseconds(text: str) -> int:
    """A duration in ms, 0 or more (consumer_timeout: 0 turns it off)."""
    return _integer(text, "a number of milliseconds", 0, 2**63 - 1)


def channel_max_count(text: str) -> int:
    """connection.tune's channel_max: 1 to 65535; 0 means no limit, which is 65535."""
    return _integer(text, "a channel count", 0, 65535) or 65535


def heartbeat_seconds(text: str) -> int:
    """connection.tune's heartbeat in seconds, 0 (off) to 65535 (a short on the wire)."""
    return _integer(text, "a heartbeat in seconds", 0, 65535)


def log_level_name(text: str) -> str:
    if text not in LEVELS:
        raise argparse.ArgumentTypeError(f"'{text}' is not a level: {', '.join(LEVELS)}")
    return text


def user_list(text: str) -> list[str]:
    """``guest,admin`` -> ["guest", "admin"]; ``none`` or nothing: no user."""
    if text.strip().lower() == "none":
        return []
    return [name.strip() for name in text.split(",") if name.strip()]


def log_format_name(text: str) -> str:
    # rabbitmq.conf says "plaintext" where --log-format says "text"
    name = {"plaintext": "text"}.get(text, text)
    if name not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a log format: text or json")
    return name


# ---------------------------------------------------------------------- arguments

DEFAULTS: dict[str, Any] = {
    "host": "",  # every address, IPv4 and IPv6 ([::] dual-stack), as RabbitMQ listens
    "port": 5672,
    "user": "guest",
    "password": "guest",
    "vhost": "/",
    "heartbeat": 60,
    "frame_max": 131072,
    "channel_max": 2047,
    "memory_high_watermark": 0.4,  # RabbitMQ's default: 40% of the memory
    "memory_budget": 128 * 1024 * 1024,
    "max_message_size": 128 * 1024 * 1024,  # RabbitMQ 3.10's default
    "consumer_timeout": 30 * 60 * 1000,  # ms, RabbitMQ's default
    "log_level": "info",
    "log_format": "text",
    "loop": "uvloop",
    "loopback_users": ["guest"],
    "management_port": 15672,
    "no_management": False,
    "definitions": None,
    "management_host": None,
    "prometheus_port": 15692,
    "prometheus_host": None,
    "no_prometheus": False,
}

# resource alarms and TLS (issue 14): kept apart from the table above
DEFAULTS.update({
    "disk_free_limit": None,  # RabbitMQ's 50 MB with a data dir; no check in memory
    "tls_port": None,  # 5671 (RabbitMQ's) once a certificate is given
    "tls_host": None,  # rabbitmq.conf's listeners.ssl.default = HOST:PORT; else --host
    "tls_cert": None,
    "tls_key": None,
    "tls_ca": None,
    "tls_verify": "verify_none",  # the Erlang ssl default, as RabbitMQ's
    "tls_fail_if_no_peer_cert": False,
    "tls_login_from": "distinguished_name",  # rabbitmq_auth_mechanism_ssl's default
})

# the environment RabbitMQ's container reads, by the option it fills
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "host": ("RABBITMQ_NODE_IP_ADDRESS", str),
    "port": ("RABBITMQ_NODE_PORT", port_number),
    "user": ("RABBITMQ_DEFAULT_USER", str),
    "password": ("RABBITMQ_DEFAULT_PASS", str),
    "vhost": ("RABBITMQ_DEFAULT_VHOST", str),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # one line, not argparse's usage block: "leveret: error: argument --port: ..."
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``leveret`` command line. Options have no argparse defaults: an option left out
    falls back to the configuration file, the environment, then ``DEFAULTS``."""
    p = _Parser(
        prog="leveret",
        description="Leveret: an AMQP 0-9-1 broker, a drop-in RabbitMQ for development. "
                    "Settings: command line, then the --config file, then the environment.",
    )
    p.add_argument("--config", metavar="FILE",
                   help="a rabbitmq.conf file (env RABBITMQ_CONFIG_FILE)")
    p.add_argument("--host", help="address to listen on (env RABBITMQ_NODE_IP_ADDRESS; "
                                  "default: every address, IPv4 and IPv6, as RabbitMQ)")
    p.add_argument("--port", type=port_number,
                   help="port to listen on (env RABBITMQ_NODE_PORT, default 5672)")
    p.add_argument("--user", help="default user (env RABBITMQ_DEFAULT_USER, default guest)")
    p.add_argument("--password",
                   help="default user's password (env RABBITMQ_DEFAULT_PASS, default guest)")
    p.add_argument("--vhost", help="default virtual host (env RABBITMQ_DEFAULT_VHOST, default /)")
    loopback = p.add_mutually_exclusive_group()
    loopback.add_argument("--loopback-users", type=user_list, metavar="USERS",
                          help="users who may log in only through a loopback address, "
                               "comma-separated (default guest, as RabbitMQ's loopback_users)")
    loopback.add_argument("--no-loopback-users", dest="loopback_users", action="store_const",
                          const=[], help="let every user log in from any address (what the "
                                         "RabbitMQ container image configures)")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir",
                       help="where durable definitions and persistent messages are kept "
                            "(default: $XDG_DATA_HOME/leveret or ~/.local/share/leveret)")
    store.add_argument("--in-memory", action="store_true", default=None,
                       help="keep nothing on disk: durable entities last until shutdown")
    p.add_argument("--heartbeat", type=heartbeat_seconds,
                   help="heartbeat proposed to clients, seconds (default 60)")
    p.add_argument("--frame-max", type=frame_max_bytes,
                   help="largest frame, bytes, at least 4096 (default 131072)")
    p.add_argument("--channel-max", type=channel_max_count,
                   help="most channels per connection (default 2047)")
    p.add_argument("--memory-high-watermark", type=share_or_size, metavar="SHARE|SIZE",
                   help="block publishers while the broker's memory (RSS) is above this: a "
                        "fraction of the memory, RAM or the cgroup's limit if lower (default "
                        "0.4, as RabbitMQ), or a size such as 512MiB")
    p.add_argument("--disk-free-limit", type=share_or_size, metavar="SIZE|SHARE",
                   help="block publishers while the data dir's disk has less free space than "
                        "this: a size (default 50MB, as RabbitMQ) or, with a decimal point, a "
                        "multiple of the memory (1.0); in memory: checked only if given")
    p.add_argument("--memory-budget", type=byte_size,
                   help="with a data dir: bytes of durable queues' messages kept in memory; the "
                        "rest waits on disk and is read back in turn (default 128 MiB)")
    p.add_argument("--max-message-size", type=message_size, metavar="SIZE",
                   help="largest message body accepted, e.g. 16MiB (RabbitMQ's "
                        "max_message_size; default 128 MiB, at most 512 MiB)")
    p.add_argument("--consumer-timeout", type=milliseconds, metavar="MS",
                   help="close a channel whose delivery waits longer than this for its ack "
                        "(RabbitMQ's consumer_timeout; default 1800000 = 30 min; 0 = off)")
    _tls_arguments(p)
    management = p.add_mutually_exclusive_group()
    management.add_argument("--management-port", type=port_number, metavar="PORT",
                            help="port of the management HTTP API (default 15672; 0 = any "
                                 "free port)")
    management.add_argument("--no-management", action="store_true", default=None,
                            help="no management HTTP API")
    p.add_argument("--management-host", metavar="ADDRESS",
                   help="address of the management HTTP API (default: --host)")
    prometheus = p.add_mutually_exclusive_group()
    prometheus.add_argument("--prometheus-port", type=port_number, metavar="PORT",
                            help="port of the Prometheus metrics (/metrics; default 15692, "
                                 "as rabbitmq_prometheus; 0 = any free port)")
    prometheus.add_argument("--no-prometheus", action="store_true", default=None,
                            help="no Prometheus metrics endpoint")
    p.add_argument("--prometheus-host", metavar="ADDRESS",
                   help="address of the Prometheus metrics (default: --host)")
    p.add_argument("--definitions", metavar="PATH", action="append",
                   help="import this definitions file, or each file of this directory "
                        "(RabbitMQ's JSON: users, vhosts, permissions, queues, exchanges, "
                        "bindings, ...) at start, as RabbitMQ's load_definitions; on a first "
                        "boot the default user and vhost are then not created (repeatable)")
    p.add_argument("--log-level", type=log_level_name, metavar="LEVEL",
                   help="debug, info (default), warning, error, critical, none")
    p.add_argument("--log-format", type=log_format_name, metavar="FORMAT",
                   help="text (RabbitMQ's console format, default) or json (one object a line)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"],
                   help="event loop (asyncio for debugging)")
    p.add_argument("--version", action="version", version=f"leveret {__version__}")
    return p


def _tls_arguments(p: argparse.ArgumentParser) -> None:
    """AMQPS (tls.py), as RabbitMQ's listeners.ssl and ssl_options."""
    p.add_argument("--tls-port", type=port_number, metavar="PORT",
                   help="port of the AMQPS (TLS) listener on --host (default 5671 once "
                        "--tls-cert is given)")
    p.add_argument("--tls-cert", metavar="FILE",
                   help="the server's certificate chain, PEM (ssl_options.certfile): turns "
                        "the TLS listener on")
    p.add_argument("--tls-key", metavar="FILE", help="its private key, PEM "
                                                     "(ssl_options.keyfile)")
    p.add_argument("--tls-ca", metavar="FILE",
                   help="CA certificates client certificates are checked against, PEM "
                        "(ssl_options.cacertfile)")
    p.add_argument("--tls-verify", choices=["verify_peer", "verify_none"],
                   help="verify_peer asks clients for a certificate and checks it; "
                        "verify_none (default, as RabbitMQ) does not (ssl_options.verify)")
    p.add_argument("--tls-fail-if-no-peer-cert", action="store_true", default=None,
                   help="with verify_peer, refuse clients without a certificate "
                        "(ssl_options.fail_if_no_peer_cert)")
    p.add_argument("--tls-login-from", choices=["distinguished_name", "common_name"],
                   help="the EXTERNAL mechanism's username: the client certificate's "
                        "subject DN (default, as RabbitMQ) or its CN (ssl_cert_login_from)")


def tls_options(args: argparse.Namespace) -> Any:
    """The ``tls.TLSOptions`` the arguments describe, None without a certificate; a
    ``StartupError`` when they do not go together."""
    if not args.tls_cert:
        if args.tls_port is not None or args.tls_key or args.tls_ca:
            raise StartupError("TLS needs a certificate: give --tls-cert and --tls-key "
                               "(ssl_options.certfile, ssl_options.keyfile)")
        return None
    if not args.tls_key:
        raise StartupError("--tls-cert needs --tls-key (ssl_options.keyfile)")
    from .tls import DEFAULT_PORT, TLSOptions

    return TLSOptions(certfile=args.tls_cert, keyfile=args.tls_key, cacertfile=args.tls_ca,
                      verify=args.tls_verify,
                      fail_if_no_peer_cert=bool(args.tls_fail_if_no_peer_cert),
                      port=DEFAULT_PORT if args.tls_port is None else args.tls_port,
                      host=args.tls_host, login_from=args.tls_login_from)


def _tls_from_file(from_file: dict[str, Any], given: dict[str, Any], warnings: list[str],
                   path: str) -> None:
    """rabbitmq.conf's TLS listener: ``listeners.ssl.default`` turns it on (its port, and its
    host if it names one), ``listeners.ssl = none`` off; ``ssl_options`` alone make no
    listener, as in RabbitMQ (unless the command line asks for one)."""
    from .config import NO_TLS

    listener = from_file.pop("tls_listener", None)
    if listener == NO_TLS:
        for dest in ("tls_cert", "tls_key", "tls_ca"):
            from_file[dest] = None
    elif listener is not None:
        host, port = listener
        from_file["tls_port"] = port
        if host is not None:
            from_file["tls_host"] = host
    elif from_file.get("tls_cert") and not {"tls_cert", "tls_port"} & given.keys():
        warnings.append(f"{path}: ssl_options without listeners.ssl.default: no TLS listener "
                        "(as in RabbitMQ)")
        for dest in ("tls_cert", "tls_key", "tls_ca"):
            from_file[dest] = None


def parse_args(argv: list[str] | None = None,
               env: dict[str, str] | os._Environ[str] | None = None) -> argparse.Namespace:
    """The settings to start with: the command line over the configuration file over the
    environment over ``DEFAULTS``. ``config_warnings`` lists what the file had that was
    ignored. A usage error exits (status 2); a bad file raises ``StartupError``."""
    from . import config

    env = os.environ if env is None else env
    parser = build_parser()
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    dests = {a.dest for a in parser._actions} | {"listener", "tls_listener"}

    from_env: dict[str, Any] = {}
    for dest, (name, convert) in ENVIRONMENT.items():
        if env.get(name):
            try:
                from_env[dest] = convert(env[name])
            except argparse.ArgumentTypeError as exc:
                raise StartupError(f"{name}: {exc}") from None

    path = config.config_path(given.get("config"), env)
    from_file: dict[str, Any] = {}
    warnings: list[str] = []
    if path:
        try:
            conf = config.read(path, dests)
        except config.ConfigError as exc:
            raise StartupError(str(exc)) from None
        from_file, warnings = dict(conf.values), conf.warnings
        host, port = from_file.pop("listener", (None, None))
        if host is not None:
            from_file["host"] = host
        if port is not None:
            from_file["port"] = port
        _tls_from_file(from_file, given, warnings, path)

    merged = {**DEFAULTS, **from_env, **from_file, **given}
    merged["config"] = path
    merged["config_warnings"] = warnings
    merged.setdefault("data_dir", None)
    merged["in_memory"] = bool(merged.get("in_memory"))
    return argparse.Namespace(**merged)


# ---------------------------------------------------------------------- start-up checks

def check_data_dir(path: str, explicit: bool) -> None:
    """Raise ``StartupError`` saying why ``path`` cannot be the data directory. The default
    directory is created with its parents; a ``--data-dir`` is created, but not its parent
    (a typo should not grow a tree of directories)."""
    shown = f"--data-dir {path}" if explicit else f"data directory {path}"
    if os.path.isdir(path):
        probe = os.path.join(path, f".leveret-write-test-{os.getpid()}")
        try:
            with open(probe, "w"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise StartupError(f"{shown} is not writable: {exc.strerror}") from None
        return
    if os.path.exists(path):
        raise StartupError(f"{shown} is a file, not a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if explicit and not os.path.isdir(parent):
        what = "is a file, not a directory" if os.path.exists(parent) else "does not exist"
        raise StartupError(f"cannot create {shown}: its parent {parent} {what}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)  # the owner's only (store/private.py)
    except OSError as exc:
        raise StartupError(f"cannot create {shown}: {exc.strerror}") from None


# ---------------------------------------------------------------------- start-up lines

def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log_banner(args: argparse.Namespace, data_dir: str | None) -> None:
    """RabbitMQ's opening lines, with Leveret's facts."""
    from .settings import node_name

    loop = args.loop if args.loop != "uvloop" or _have_uvloop() else "asyncio"
    log.info("\n Starting Leveret %s on Python %s (%s)", __version__,
             platform.python_version(), loop)
    log.info(" node           : %s\n config file(s) : %s\n data dir       : %s", node_name(),
             args.config or "(none)", data_dir or "(none: in memory)")
    for warning in args.config_warnings:
        log.warning("%s", warning)


def _have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def log_started(broker: Any) -> None:
    """The lines RabbitMQ logs once it listens: each listener, and
    ``Server startup complete; N plugins started.`` with the list (rabbit.erl)."""
    server = broker._server
    plugins: list[str] = []
    for listener in server.listeners:
        if listener.protocol == "amqp":
            log.info("started TCP listener on %s", _address(listener.host, listener.port))
        elif listener.protocol == "amqp/ssl":
            log.info("started TLS (SSL) listener on %s", _address(listener.host, listener.port))
        elif listener.protocol in ("http", "https"):
            kind = "HTTP (non-TLS)" if listener.protocol == "http" else "HTTPS"
            log.info("Management plugin: %s listener started on port %d", kind, listener.port)
        elif listener.protocol in ("http/prometheus", "https/prometheus"):
            kind = "HTTP (non-TLS)" if listener.protocol.startswith("http/") else "HTTPS"
            log.info("Prometheus metrics: %s listener started on port %d", kind, listener.port)
        plugins += [p for p in listener.plugins if p not in plugins]
    log.info("Server startup complete; %d plugins started.%s", len(plugins),
             "".join(f"\n * {p}" for p in plugins))


# ---------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except StartupError as exc:
        print(f"leveret: {exc}", file=sys.stderr)
        return 1
    from . import logs

    logs.configure(args.log_level, args.log_format)
    try:
        return _run(args)
    except StartupError as exc:
        print(f"leveret: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from .broker import Broker, _new_loop

    data_dir = None
    if not args.in_memory:
        from .store import default_data_dir

        data_dir = args.data_dir or default_data_dir()
        check_data_dir(data_dir, explicit=bool(args.data_dir))
    log_banner(args, data_dir)
    broker = Broker(
        args.host,
        args.port,
        user=args.user,
        password=args.password,
        vhost=args.vhost,
        heartbeat=args.heartbeat,
        frame_max=args.frame_max,
        channel_max=args.channel_max,
        memory_high_watermark=args.memory_high_watermark,
        disk_free_limit=args.disk_free_limit,
        tls=tls_options(args),
        memory_budget=args.memory_budget,
        loopback_users=args.loopback_users,
        max_message_size=args.max_message_size,
        consumer_timeout=args.consumer_timeout,
        data_dir=data_dir,
        loop=args.loop,
        management_port=None if args.no_management else args.management_port,
        definitions=args.definitions,
        prometheus_port=None if args.no_prometheus else args.prometheus_port,
        management_host=args.management_host,
        prometheus_host=args.prometheus_host,
    )
    if args.config:
        broker.settings.config_files = [os.path.abspath(args.config)]
    loop = _new_loop(args.loop)
    asyncio.set_event_loop(loop)

    async def run() -> int:
        await _start(broker, args)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        log_started(broker)
        # what start-up made (modules, classes, the recovered topology) lives as long as the
        # process: the cycle collector need not walk it again at each full collection
        gc.freeze()
        from . import resources

        if resources.tune_allocator():  # the process is the broker's: see resources.py
            server = broker._server
            server.memory.keep_releasing(loop, lambda: sum(
                c.recv_cnt + c.send_cnt for c in server.connections))
        await stop.wait()
        log.info("Leveret is asked to stop...")
        await broker.stop()
        log.info("Successfully stopped Leveret")
        return 0

    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


async def _start(broker: Any, args: argparse.Namespace) -> None:
    """``broker.start()``, its failures turned into one-line ``StartupError`` s."""
    store_errors: tuple[type[Exception], ...] = ()
    if broker.settings.data_dir:  # --in-memory never loads the store
        from .store import StoreError

        store_errors = (StoreError,)
    if broker.settings.definitions_files:
        from .management.definitions import DefinitionsError

        store_errors += (DefinitionsError,)
    if broker.settings.tls is not None:
        from .tls import TLSConfigError

        store_errors += (TLSConfigError,)
    try:
        await broker.start()
    except store_errors as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        where = _address(args.host or "::", args.port)
        what = getattr(exc, "what", "")  # broker.ListenError: another listener's port
        if what:
            kind = what if what == "TLS" else f"{what} API"
            where = f"{exc.host}:{exc.port} ({kind})"  # type: ignore[attr-defined]
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"cannot listen on {where}: address already in use") from None
        if exc.errno == errno.EACCES and exc.filename is None:
            raise StartupError(f"cannot listen on {where}: permission denied (ports below "
                               "1024 need privileges)") from None
        if exc.filename is not None:  # from the data directory
            raise StartupError(f"data directory: {exc.strerror}: {exc.filename}") from None
        raise StartupError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    except Exception as exc:  # anything else: still one line, the traceback at debug level
        log.debug("start-up failed", exc_info=True)
        raise StartupError(f"cannot start: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())

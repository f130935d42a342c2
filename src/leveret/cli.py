"""``leveret`` / ``python -m leveret``: a thin shell over ``leveret.Broker``."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import sys

from . import __version__

_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
          "gb": 1000**3, "gib": 1024**3}


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="leveret",
        description="Leveret: an AMQP 0-9-1 broker, a drop-in RabbitMQ for development.",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=5672, help="port to listen on (default 5672)")
    p.add_argument("--user", default=env.get("RABBITMQ_DEFAULT_USER", "guest"),
                   help="default user (env RABBITMQ_DEFAULT_USER, default guest)")
    p.add_argument("--password", default=env.get("RABBITMQ_DEFAULT_PASS", "guest"),
                   help="default user's password (env RABBITMQ_DEFAULT_PASS, default guest)")
    p.add_argument("--vhost", default=env.get("RABBITMQ_DEFAULT_VHOST", "/"),
                   help="default virtual host (env RABBITMQ_DEFAULT_VHOST, default /)")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir", default=None,
                       help="where durable definitions and persistent messages are kept "
                            "(default: $XDG_DATA_HOME/leveret or ~/.local/share/leveret)")
    store.add_argument("--in-memory", action="store_true",
                       help="keep nothing on disk: durable entities last until shutdown")
    p.add_argument("--heartbeat", type=int, default=60, help="heartbeat proposed to clients (s)")
    p.add_argument("--frame-max", type=int, default=131072, help="largest frame (bytes)")
    p.add_argument("--channel-max", type=int, default=2047, help="most channels per connection")
    p.add_argument("--memory-high-watermark", type=byte_size, default=0,
                   help="block publishers above this many bytes of queued messages, e.g. 512MiB "
                        "(0 = off)")
    p.add_argument("--memory-budget", type=byte_size, default=128 * 1024 * 1024,
                   help="with a data dir: bytes of durable queues' messages kept in memory; the "
                        "rest waits on disk and is read back in turn (default 128 MiB)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error", "critical"])
    p.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"],
                   help="event loop (asyncio for debugging)")
    p.add_argument("--version", action="version", version=f"leveret {__version__}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger("leveret")
    from .broker import Broker, _new_loop

    data_dir = None
    if not args.in_memory:
        from .store import default_data_dir

        data_dir = args.data_dir or default_data_dir()
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
        memory_budget=args.memory_budget,
        data_dir=data_dir,
        loop=args.loop,
    )
    loop = _new_loop(args.loop)
    asyncio.set_event_loop(loop)

    async def run() -> int:
        store_errors: tuple[type[Exception], ...] = ()
        if data_dir:  # --in-memory never loads the store
            from .store import StoreError

            store_errors = (StoreError,)
        try:
            await broker.start()
        except store_errors as exc:
            print(f"leveret: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                print(f"leveret: cannot listen on {args.host}:{args.port}: address already in use",
                      file=sys.stderr)
            else:
                print(f"leveret: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                      file=sys.stderr)
            return 1
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        log.info("Leveret %s listening on %s:%d (vhost %r, user %r, data %s)", __version__,
                 args.host, broker.port, args.vhost, args.user, data_dir or "in memory")
        await stop.wait()
        log.info("shutting down")
        await broker.stop()
        return 0

    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())

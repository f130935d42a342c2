"""Log output in RabbitMQ's shapes: its console line format, or its JSON formatter.

RabbitMQ (3.9 and later) writes one line per log line of a message::

    2026-11-25 15:46:48.291700+00:00 [info] <0.653.0> Server startup complete; 0 plugins started.

A message of several lines repeats the prefix on each (rabbitmq.com/docs/logging), so scripts
that ``grep`` a RabbitMQ log, testcontainers' wait for ``.*Server startup complete.*`` and log
shippers' RabbitMQ parsers read Leveret's log unchanged. RabbitMQ puts the Erlang process that
logged between ``<>``; Leveret puts the connection's number there (``<0.N.0>``, N counting
connections from 1) and ``<0.0.0>`` for the broker itself, so a connection's lines can be
followed the same way.

``--log-format json`` writes RabbitMQ's JSON shape (``log.console.formatter = json``): one
object a line with ``time``, ``level``, ``msg`` and ``pid``, plus the structured fields a line
carries (``connection``, ``user``, ``vhost``, ``channel``, ...).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any

# RabbitMQ's level names (Erlang logger's), lower case
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}

LEVELS = ("debug", "info", "warning", "error", "critical", "none")

BROKER_PID = "<0.0.0>"

# attributes every LogRecord has; anything else was passed in ``extra=`` and is structured data
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
}


def pid_of(number: int) -> str:
    """The ``<0.N.0>`` token of connection number ``number`` (RabbitMQ prints a pid there)."""
    return f"<0.{number}.0>"


def _timestamp(record: logging.LogRecord) -> str:
    # RabbitMQ: "2026-11-25 15:46:48.291700+00:00" (microseconds, UTC offset with a colon)
    moment = datetime.fromtimestamp(record.created, timezone.utc).astimezone()
    return moment.isoformat(sep=" ", timespec="microseconds")


def _level(record: logging.LogRecord) -> str:
    return _LEVEL_NAMES.get(record.levelno, record.levelname.lower())


def _text(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        # an unexpected error: its traceback is part of the message, each line prefixed
        text = f"{text}\n{logging.Formatter().formatException(record.exc_info)}"
    return text


class RabbitFormatter(logging.Formatter):
    """RabbitMQ's console format; every line of a multi-line message gets the prefix."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{_timestamp(record)} [{_level(record)}] {getattr(record, 'pid', BROKER_PID)} "
        return "\n".join(prefix + line for line in _text(record).rstrip("\n").split("\n"))


class JsonFormatter(logging.Formatter):
    """RabbitMQ's JSON log format: one object a line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": _level(record),
            "msg": _text(record).rstrip("\n"),
            "pid": getattr(record, "pid", BROKER_PID),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key != "pid":
                entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        entry["logger"] = record.name
        return json.dumps(entry, ensure_ascii=False)


def python_level(name: str) -> int:
    """A RabbitMQ level name (``debug`` ... ``critical``, ``none``) as a ``logging`` level."""
    if name == "none":
        return logging.CRITICAL + 10
    return getattr(logging, name.upper())


def configure(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every log line to ``stream`` (stdout, as RabbitMQ's console log) in ``fmt``."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else RabbitFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(python_level(level))

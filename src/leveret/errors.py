"""AMQP reply codes and the two kinds of protocol error: channel-level and connection-level.

Reply texts follow RabbitMQ's form, ``"NOT_FOUND - no queue 'q' in vhost '/'"``, because
clients and their users match on them.
"""

from __future__ import annotations

REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

REPLY_NAMES = {
    REPLY_SUCCESS: "OK",
    CONTENT_TOO_LARGE: "CONTENT_TOO_LARGE",
    NO_ROUTE: "NO_ROUTE",
    NO_CONSUMERS: "NO_CONSUMERS",
    CONNECTION_FORCED: "CONNECTION_FORCED",
    INVALID_PATH: "INVALID_PATH",
    ACCESS_REFUSED: "ACCESS_REFUSED",
    NOT_FOUND: "NOT_FOUND",
    RESOURCE_LOCKED: "RESOURCE_LOCKED",
    PRECONDITION_FAILED: "PRECONDITION_FAILED",
    FRAME_ERROR: "FRAME_ERROR",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    COMMAND_INVALID: "COMMAND_INVALID",
    CHANNEL_ERROR: "CHANNEL_ERROR",
    UNEXPECTED_FRAME: "UNEXPECTED_FRAME",
    RESOURCE_ERROR: "RESOURCE_ERROR",
    NOT_ALLOWED: "NOT_ALLOWED",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    INTERNAL_ERROR: "INTERNAL_ERROR",
}

# Hard errors close the whole connection even when raised while handling a channel method
# (AMQP 0-9-1 section 1.2, "hard-error").
HARD_ERRORS = frozenset(
    {
        CONNECTION_FORCED,
        INVALID_PATH,
        FRAME_ERROR,
        SYNTAX_ERROR,
        COMMAND_INVALID,
        CHANNEL_ERROR,
        UNEXPECTED_FRAME,
        RESOURCE_ERROR,
        NOT_ALLOWED,
        NOT_IMPLEMENTED,
        INTERNAL_ERROR,
    }
)


def reply_text(code: int, text: str) -> str:
    """``"NOT_FOUND - no queue 'q'"``: RabbitMQ prefixes every reply text with the code's name."""
    full = f"{REPLY_NAMES.get(code, str(code))} - {text}"
    raw = full.encode("utf-8")
    if len(raw) > 255:
        full = raw[:255].decode("utf-8", "ignore")
    return full


class AMQPError(Exception):
    """A protocol error with an AMQP reply code.

    ``method_ids`` is the (class id, method id) the close names; None means the method or
    frame being handled when the error was raised (what RabbitMQ reports), ``(0, 0)`` none.
    """

    def __init__(self, code: int, text: str,
                 method_ids: tuple[int, int] | None = None) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text
        self.method_ids = method_ids

    @property
    def reply_text(self) -> str:
        return reply_text(self.code, self.text)


class ChannelError(AMQPError):
    """Closes the channel (soft error) unless the code is a hard error."""


class ConnectionError_(AMQPError):
    """Closes the whole connection."""

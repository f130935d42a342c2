"""Constants and exceptions of the frame codec, defined once and shared by both twins.

Event tuples produced by ``split_frames`` (first item is the kind):

    (EV_METHOD,    channel, method_index, payload)        any method not listed below;
                                                          payload = bytes after the 4-byte index
    (EV_PUBLISH,   channel, exchange, routing_key, mandatory, immediate)
    (EV_HEADER,    channel, class_id, body_size, raw_props, delivery_mode, priority, expiration)
    (EV_BODY,      channel, payload)
    (EV_HEARTBEAT, channel)
    (EV_ACK,       channel, delivery_tag, multiple)
    (EV_NACK,      channel, delivery_tag, multiple, requeue)
    (EV_REJECT,    channel, delivery_tag, requeue)
    (EV_ERROR,     channel, reply_code, reply_text)        always last; parsing stopped there

``raw_props`` is the content header payload after class-id, weight and body-size: the
property flags and property list exactly as received, so a delivery can forward it verbatim.
``delivery_mode`` and ``priority`` are 0 when absent, ``expiration`` is None when absent.
The splitter validates the whole property list (field tables included), so
``decode_properties(raw_props)`` cannot fail later.
"""

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_HEADER_SIZE = 7  # type(1) + channel(2) + size(4)
FRAME_MIN_SIZE = 4096

EV_METHOD = 0
EV_PUBLISH = 1
EV_HEADER = 2
EV_BODY = 3
EV_HEARTBEAT = 4
EV_ACK = 5
EV_NACK = 6
EV_REJECT = 7
EV_ERROR = 9

# method index = class_id << 16 | method_id
BASIC_PUBLISH = (60 << 16) | 40
BASIC_RETURN = (60 << 16) | 50
BASIC_DELIVER = (60 << 16) | 60
BASIC_GET_OK = (60 << 16) | 71
BASIC_ACK = (60 << 16) | 80
BASIC_REJECT = (60 << 16) | 90
BASIC_NACK = (60 << 16) | 120

# AMQP reply codes used by the codec (the rest live in leveret.errors)
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
UNEXPECTED_FRAME = 505

# Basic property names in wire order (bit 15 downwards), as pamqp names them.
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "message_type",
    "user_id",
    "app_id",
    "cluster_id",
)


class LongInt(int):
    """An int that field-table encoding writes as a 64-bit long ('l'), as RabbitMQ writes the
    ``count`` of an x-death entry; plain ints are written as 'I' when they fit."""

    __slots__ = ()


class FrameError(Exception):
    """A malformed frame or field: the connection must close with ``reply_code``."""

    def __init__(self, reply_code: int, text: str) -> None:
        super().__init__(reply_code, text)
        self.reply_code = reply_code
        self.text = text

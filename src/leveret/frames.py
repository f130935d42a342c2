"""The frame codec: compiled (``_frames_c``) by default, pure Python (``_frames_py``) as fallback.

Hot frames (publish, content header and body, ack, nack, reject, heartbeat, deliver, get-ok,
return, confirms) go through the selected implementation; every other method is decoded by
``methods`` (pamqp's method classes, the codec's bounded reader) and encoded with pamqp.
"""

from __future__ import annotations

from pamqp import base as _pamqp_base
from pamqp import frame as _pamqp_frame

from . import _speedups
from . import methods as _methods
from ._frames_common import *  # noqa: F403  (constants and event kinds)
from ._frames_common import FrameError  # noqa: F401  (re-exported)

_impl = _speedups.load("leveret._frames_c", "leveret._frames_py")
IMPLEMENTATION = _speedups.implementation(_impl)

split_frames = _impl.split_frames
decode_properties = _impl.decode_properties
encode_properties = _impl.encode_properties
encode_deliver = _impl.encode_deliver
encode_deliver_head = _impl.encode_deliver_head
body_buffer = _impl.body_buffer
finish_body = _impl.finish_body
encode_get_ok = _impl.encode_get_ok
encode_return = _impl.encode_return
encode_ack = _impl.encode_ack
encode_nack = _impl.encode_nack
encode_heartbeat = _impl.encode_heartbeat
encode_queue_declare_ok = _methods.encode_queue_declare_ok


def decode_method(index: int, payload: bytes) -> _pamqp_base.Frame:
    """Decode a rare method's arguments (``methods.decode_method``: bounded field tables,
    501 FRAME_ERROR for arguments that do not decode, as RabbitMQ answers them)."""
    return _methods.decode_method(index, payload)


def encode_method(out: bytearray, channel: int, method: object) -> None:
    """Append a rare method frame, marshalled by pamqp, to ``out``."""
    out += _pamqp_frame.marshal(method, channel)  # type: ignore[arg-type]

"""The frame codec: compiled (``_frames_c``) by default, pure Python (``_frames_py``) as fallback.

Hot frames (publish, content header and body, ack, nack, reject, heartbeat, deliver, get-ok,
return, confirms) go through the selected implementation; every other method is decoded and
encoded with pamqp here.
"""

from __future__ import annotations

import struct
from typing import cast

from pamqp import base as _pamqp_base
from pamqp import commands as _commands
from pamqp import frame as _pamqp_frame

from . import _speedups
from ._frames_common import *  # noqa: F403  (constants and event kinds)
from ._frames_common import FRAME_ERROR, FrameError

# pamqp's table of method classes by index is not annotated (mypy sees dict[int, type])
_METHODS = cast("dict[int, type[_pamqp_base.Frame]]", _commands.INDEX_MAPPING)

_impl = _speedups.load("leveret._frames_c", "leveret._frames_py")
IMPLEMENTATION = _speedups.implementation(_impl)

split_frames = _impl.split_frames
decode_properties = _impl.decode_properties
encode_properties = _impl.encode_properties
encode_deliver = _impl.encode_deliver
encode_get_ok = _impl.encode_get_ok
encode_return = _impl.encode_return
encode_ack = _impl.encode_ack
encode_nack = _impl.encode_nack
encode_heartbeat = _impl.encode_heartbeat


def decode_method(index: int, payload: bytes) -> _pamqp_base.Frame:
    """Decode a rare method's arguments with pamqp.

    Undecodable arguments are a 501 FRAME_ERROR, as RabbitMQ answers them ("cannot decode").
    """
    cls = _METHODS.get(index)
    if cls is None:
        raise FrameError(503, f"unknown method {index >> 16}.{index & 0xFFFF}")
    method = cls()
    try:
        method.unmarshal(payload)
    except (struct.error, ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError) as exc:
        raise FrameError(FRAME_ERROR, f"cannot decode {cls.name}: {exc}") from None
    return method


def encode_method(out: bytearray, channel: int, method: object) -> None:
    """Append a rare method frame, marshalled by pamqp, to ``out``."""
    out += _pamqp_frame.marshal(method, channel)  # type: ignore[arg-type]

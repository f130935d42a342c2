"""The rare-method decoder (``leveret.methods``): pamqp's decoder is the oracle on everything
pamqp itself writes, for every method of AMQP 0-9-1; and what pamqp could not take (deep
tables, trailing bytes, names outside its alphabet) is a clear answer.
"""

from __future__ import annotations

import datetime
import struct
import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import frame as pframe

from leveret import methods
from leveret._frames_common import FrameError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

table_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20),
                    st.none(), st.binary(max_size=8).map(bytearray))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(table_keys, inner, max_size=3)), max_leaves=10)
tables = st.dictionaries(table_keys, values, max_size=4)

BY_TYPE = {
    "bit": st.booleans(),
    "octet": st.integers(0, 255),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**63 - 1),  # pamqp writes long-longs signed
    "shortstr": st.text(alphabet="abcdefghij.-_:", max_size=12),  # pamqp's name alphabet
    "longstr": st.text(max_size=30),
    "table": tables,
    "timestamp": st.datetimes(min_value=datetime.datetime(1970, 1, 2),
                              max_value=datetime.datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=0, tzinfo=datetime.timezone.utc)),
}

# deprecated arguments pamqp accepts with one value only
FIXED = {"ticket": 0, "capabilities": "", "insist": False, "known_hosts": "", "out_of_band": "0",
         "channel_id": "0", "cluster_id": ""}
COMMANDS = sorted(spec.INDEX_MAPPING.values(), key=lambda c: c.index)


def payload_of(method: object) -> bytes:
    """The method's arguments as pamqp writes them (after the 4-byte method id)."""
    return pframe.marshal(method, 1)[11:-1]


@FAST
@pytest.mark.parametrize("cls", COMMANDS, ids=[c.name for c in COMMANDS])
@given(data=st.data())
def test_every_method_decodes_like_pamqp(cls, data):
    kwargs = {}
    for name in cls.__slots__:
        if name in FIXED:
            kwargs[name] = FIXED[name]
        else:
            kwargs[name] = data.draw(BY_TYPE[cls.amqp_type(name)], label=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated arguments
        try:
            raw = payload_of(cls(**kwargs))
        except (ValueError, TypeError):
            assume(False)
            return
        expected = cls()
    expected.unmarshal(raw)
    got = methods.decode_method(cls.index, raw)
    assert type(got) is cls
    assert dict(got) == dict(expected)


def test_unknown_method_is_command_invalid():
    with pytest.raises(FrameError) as info:
        methods.decode_method((50 << 16) | 99, b"")
    assert info.value.reply_code == 503


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x00\x00\x05ab"])
def test_truncated_arguments_are_a_frame_error(raw):
    with pytest.raises(FrameError) as info:
        methods.decode_method(spec.Queue.Declare.index, raw)
    assert info.value.reply_code == 501 and "cannot decode Queue.Declare" in info.value.text


def test_trailing_bytes_are_a_frame_error():
    raw = payload_of(spec.Basic.Qos(prefetch_count=10)) + b"\x00"
    with pytest.raises(FrameError) as info:
        methods.decode_method(spec.Basic.Qos.index, raw)
    assert info.value.reply_code == 501 and "1 bytes after its arguments" in info.value.text


def _nested(depth: int) -> bytes:
    inner = b""
    for _ in range(depth - 1):
        inner = b"\x01aF" + struct.pack(">I", len(inner)) + inner
    return struct.pack(">I", len(inner)) + inner


def test_table_depth_is_bounded_without_recursion_error():
    head = payload_of(spec.Queue.Declare(queue="q"))[:-4]  # without its empty arguments
    assert methods.decode_method(spec.Queue.Declare.index, head + _nested(64)).queue == "q"
    for depth in (65, 5000):
        with pytest.raises(FrameError) as info:
            methods.decode_method(spec.Queue.Declare.index, head + _nested(depth))
        assert info.value.reply_code == 501 and "nested too deep" in info.value.text


def test_names_pamqp_would_refuse_decode():
    name = "ключ{}"
    raw = b"\x00\x00" + bytes((len(name.encode()),)) + name.encode() + b"\x00" + b"\0\0\0\0"
    assert methods.decode_method(spec.Queue.Declare.index, raw).queue == name


def test_queue_declare_ok_encodes_any_name():
    out = bytearray()
    methods.encode_queue_declare_ok(out, 3, "ключ{}", 7, 2)
    used, channel, frame = pframe.unmarshal(bytes(out))
    assert (used, channel) == (len(out), 3)
    assert (frame.queue, frame.message_count, frame.consumer_count) == ("ключ{}", 7, 2)


def test_amqplain_response_table():
    raw = b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest"
    assert methods.decode_table_entries(raw) == {"LOGIN": "guest", "PASSWORD": "guest"}
    with pytest.raises(FrameError):
        methods.decode_table_entries(b"\x05LOGINF" + _nested(100))

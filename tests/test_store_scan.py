"""The start-up scan of a data segment: compiled and pure twins against the record decoder.

Segments are built with the store's own writer functions (``records.publish_parts``), then
damaged at random. The oracle is ``records.decode_message`` walking the same bytes record by
record; both twins of ``scan_run`` must agree with it and with each other.
"""

from __future__ import annotations

import zlib
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leveret.message import Message
from leveret.store import records

from _impls import implementations

IMPLS = implementations("leveret.store._scan_c", "leveret.store._scan_py")


class Collected:
    def __init__(self, key: bytes) -> None:
        self.key = key
        self.orders = array("Q")
        self.ids = array("Q")
        self.sizes = array("I")
        self.delivered = bytearray()
        self.prios = bytearray()

    def as_tuple(self) -> tuple:
        return (list(self.orders), list(self.ids), list(self.sizes), bytes(self.delivered),
                bytes(self.prios))


def record(flags: int, order: int, vhost: str, queue: str, body: bytes, prio: int,
           expiration: str | None) -> bytes:
    msg = Message("ex", "rk", b"\x00\x00", body, 2, prio, expiration)
    head, crc = records.publish_parts(flags, msg, order, records.short(vhost)
                                      + records.short(queue), 1700000000000 + order)
    return records.HEAD.pack(len(head) + len(body), crc) + head + body


record_args = st.tuples(
    st.sampled_from([0, records.TRANSIENT, records.MOVED, records.MOVED | records.TRANSIENT]),
    st.sampled_from(["/", "vh-é"]),
    st.sampled_from(["q1", "q2", "a-longer-queue-name"]),
    st.binary(max_size=40),
    st.integers(0, 9),
    st.one_of(st.none(), st.just("60000")),
)


@st.composite
def segments(draw):
    specs = draw(st.lists(record_args, max_size=25))
    data = bytearray()
    offsets = []
    for order, (flags, vhost, queue, body, prio, exp) in enumerate(specs, start=1):
        offsets.append(len(data))
        data += record(flags, order, vhost, queue, body, prio, exp)
    removed = {o for o in offsets if draw(st.booleans())}
    delivered = {o for o in offsets if draw(st.integers(0, 3)) == 0}
    damage = draw(st.sampled_from(["none", "truncate", "flip", "garbage"]))
    if damage == "truncate" and data:
        del data[draw(st.integers(0, len(data) - 1)):]
    elif damage == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif damage == "garbage":
        data += draw(st.binary(min_size=1, max_size=50))
    return bytes(data), removed, delivered


def oracle(data: bytes, pos: int, base: int, removed: set[int], delivered: set[int]):
    """The same result, from decode_message one record at a time."""
    collected: dict[bytes, tuple] = {}
    seen = top = live = moved = 0
    dead: list[int] = []
    while pos < len(data):
        try:
            flags, order, msg, _ = records.decode_message(data, pos)
        except (ValueError, IndexError, UnicodeDecodeError):
            break
        end = pos + records.record_length(data, pos)
        if not flags & records.TRANSIENT:
            if pos in removed:
                if flags & records.MOVED:
                    dead.append(order)
            else:
                k = pos + records.NAMES_AT
                key = data[k : k + 2 + data[k] + data[k + 1 + data[k]]]
                c = collected.setdefault(key, ([], [], [], bytearray(), bytearray()))
                c[0].append(order)
                c[1].append(base | pos)
                c[2].append(len(msg.body))
                c[3].append(pos in delivered)
                c[4].append(msg.priority)
                live += 1
                moved += bool(flags & records.MOVED)
            top = max(top, order)
        seen += 1
        pos = end
    return (pos, seen, top, dead, live, moved), {
        k: (c[0], c[1], c[2], bytes(c[3]), bytes(c[4])) for k, c in collected.items()}


def run(impl, data, removed, delivered, pos=0, base=7 << 32):
    collected: dict[bytes, Collected] = {}
    result = impl.scan_run(data, pos, base, removed, delivered, collected, Collected)
    return tuple(result), {k: c.as_tuple() for k, c in collected.items()}


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=300, deadline=None)
@given(segments())
def test_scan_agrees_with_the_record_decoder(impl, segment):
    data, removed, delivered = segment
    assert run(impl, data, removed, delivered) == oracle(data, 0, 7 << 32, removed, delivered)


@pytest.mark.parametrize("impl", IMPLS)
def test_scan_stops_at_damage_and_resumes_where_told(impl, tmp_path):
    recs = [record(0, i, "/", "q", b"m%d" % i, 0, None) for i in range(1, 6)]
    data = bytearray(b"".join(recs))
    third = len(recs[0]) + len(recs[1])
    data[third + 30] ^= 0xFF  # inside the third record: its checksum fails
    data = bytes(data)
    (pos, seen, *_), got = run(impl, data, set(), set())
    assert (pos, seen) == (third, 2)
    path = tmp_path / "00000001.log"
    path.write_bytes(data)
    resume = records.past_damage(path, data, pos)  # a good record follows: skip this one
    assert resume == third + len(recs[2])
    (end, seen, *_), rest = run(impl, data, set(), set(), pos=resume)
    assert (end, seen) == (len(data), 2)
    assert list(got[records.short("/") + records.short("q")][0]) == [1, 2]
    assert list(rest[records.short("/") + records.short("q")][0]) == [4, 5]


def test_past_damage_cuts_a_torn_tail(tmp_path):
    good = record(0, 1, "/", "q", b"kept", 0, None)
    torn = record(0, 2, "/", "q", b"torn", 0, None)[:-3]
    path = tmp_path / "00000001.log"
    path.write_bytes(good + torn)
    assert records.past_damage(path, good + torn, len(good)) is None
    assert path.read_bytes() == good


@pytest.mark.parametrize("impl", IMPLS)
def test_checksums_are_zlib_crc32(impl):
    rec = bytearray(record(0, 1, "/", "q", b"body", 0, None))
    assert zlib.crc32(rec[8:]) == records.HEAD.unpack_from(rec, 0)[1]
    (pos, seen, *_), _ = run(impl, bytes(rec), set(), set())
    assert (pos, seen) == (len(rec), 1)

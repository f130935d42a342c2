"""Frame codec: compiled vs pure vs pamqp, decode and encode.

    python perf/bench_codec.py --fast          # quick
    python perf/bench_codec.py -o codec.json   # full pyperf run

Decode: one buffer of 100 messages (basic.publish + content header with five properties and a
headers table + a 100-byte body), split and decoded in one call. Our splitter validates the
properties but leaves them in wire form (they are decoded only when needed), while pamqp builds
a Properties object for every header, so "decode compiled + properties" also decodes every
property list: the honest figure when a consumer needs them all. pamqp gets each frame as its
own bytes object (exact slices, as a pamqp-based reader makes them). Encode: 100 deliveries
(basic.deliver + header + body) into an output buffer.
"""

from __future__ import annotations

import struct

import pyperf
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

import leveret._frames_c as C
import leveret._frames_py as P

from _ratios import report

N = 100
PROPS = spec.Basic.Properties(content_type="application/json", delivery_mode=2, priority=1,
                              message_id="m-1", headers={"trace": "abc", "n": 1})
BODY = bytes(100)
ONE = (pframe.marshal(spec.Basic.Publish(exchange="", routing_key="orders"), 1)
       + pframe.marshal(pheader.ContentHeader(0, len(BODY), PROPS), 1)
       + pframe.marshal(pbody.ContentBody(BODY), 1))
STREAM = bytearray(ONE * N)
RAW_PROPS = PROPS.marshal()


def decode_with(mod):
    def run(loops: int) -> float:
        split, buf, end = mod.split_frames, STREAM, len(STREAM)
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            split(buf, 0, end, 131072)
        return pyperf.perf_counter() - t0
    return run


def decode_with_properties(mod):
    def run(loops: int) -> float:
        split, props, buf, end = mod.split_frames, mod.decode_properties, STREAM, len(STREAM)
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            for ev in split(buf, 0, end, 131072)[0]:
                if ev[0] == 2:  # EV_HEADER
                    props(ev[4])
        return pyperf.perf_counter() - t0
    return run


def decode_pamqp(loops: int) -> float:
    data = bytes(STREAM)
    unmarshal, size_at = pframe.unmarshal, struct.Struct(">I").unpack_from
    t0 = pyperf.perf_counter()
    for _ in range(loops):
        pos, end = 0, len(data)
        while pos < end:
            n = size_at(data, pos + 3)[0] + 8
            unmarshal(data[pos : pos + n])
            pos += n
    return pyperf.perf_counter() - t0


def encode_with(mod):
    def run(loops: int) -> float:
        enc = mod.encode_deliver
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            out = bytearray()
            for tag in range(1, N + 1):
                enc(out, 1, "ctag", tag, False, "", "orders", RAW_PROPS, BODY, 131072)
        return pyperf.perf_counter() - t0
    return run


def encode_pamqp(loops: int) -> float:
    t0 = pyperf.perf_counter()
    for _ in range(loops):
        out = bytearray()
        for tag in range(1, N + 1):
            out += pframe.marshal(spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=tag,
                                                     exchange="", routing_key="orders"), 1)
            out += pframe.marshal(pheader.ContentHeader(0, len(BODY), PROPS), 1)
            out += pframe.marshal(pbody.ContentBody(BODY), 1)
    return pyperf.perf_counter() - t0


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = __doc__.splitlines()[0]
    dec = {
        "decode pamqp": runner.bench_time_func("decode pamqp", decode_pamqp, inner_loops=N),
        "decode pure": runner.bench_time_func("decode pure", decode_with(P), inner_loops=N),
        "decode compiled": runner.bench_time_func("decode compiled", decode_with(C),
                                                  inner_loops=N),
        "decode compiled + properties": runner.bench_time_func(
            "decode compiled + properties", decode_with_properties(C), inner_loops=N),
    }
    enc = {
        "encode pamqp": runner.bench_time_func("encode pamqp", encode_pamqp, inner_loops=N),
        "encode pure": runner.bench_time_func("encode pure", encode_with(P), inner_loops=N),
        "encode compiled": runner.bench_time_func("encode compiled", encode_with(C),
                                                  inner_loops=N),
    }
    if not runner.args.worker:
        report(dec, "decode pamqp", unit="message")
        report(enc, "encode pamqp", unit="message")


if __name__ == "__main__":
    main()

"""Frame codec: compiled vs pure vs pamqp, decode and encode.

    python perf/bench_codec.py --fast          # quick
    python perf/bench_codec.py -o codec.json   # full pyperf run

Decode: one buffer of 100 messages (basic.publish + content header with five properties and a
headers table + a 100-byte body), split and decoded in one call. Encode: 100 deliveries
(basic.deliver + header + body) into an output buffer.
"""

from __future__ import annotations

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


def decode_pamqp(loops: int) -> float:
    data = bytes(STREAM)
    t0 = pyperf.perf_counter()
    for _ in range(loops):
        pos = 0
        while pos < len(data):
            used, _, _ = pframe.unmarshal(data[pos:])
            pos += used
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

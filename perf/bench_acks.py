"""Delivery-tag bookkeeping: compiled vs pure.

    python perf/bench_acks.py --fast

A million deliveries each: all delivered, then acked singly in order; acked in multiple-ack
ranges of 100 as they go; all delivered, then acked singly in a random order. Only the order of
the acks differs between the first and the last.
"""

from __future__ import annotations

import random
import sys

import pyperf

import leveret._acks_py as P

from _ratios import report

try:
    import leveret._acks_c as C
except ImportError:
    sys.exit("leveret._acks_c is not built (see the README's Building section)")

N = 1_000_000
IN_ORDER = list(range(1, N + 1))
# Fresh ints created in the order they are used, as tags decoded from the wire are: shuffling
# the int objects themselves would mostly measure cache misses on the benchmark's own ints.
SHUFFLED = list(range(N))
random.Random(7).shuffle(SHUFFLED)
SHUFFLED = [i + 1 for i in SHUFFLED]
ITEM = object()


def singly(order):
    def bench(mod):
        def run(loops: int) -> float:
            t0 = pyperf.perf_counter()
            for _ in range(loops):
                tags = mod.DeliveryTags()
                push, pop = tags.push, tags.pop
                for _ in range(N):
                    push(ITEM)
                for tag in order:
                    pop(tag)
            return pyperf.perf_counter() - t0
        return run
    return bench


def ranges(mod):
    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            tags = mod.DeliveryTags()
            push, pop_upto = tags.push, tags.pop_upto
            for i in range(1, N + 1):
                push(ITEM)
                if i % 100 == 0:
                    pop_upto(i)
        return pyperf.perf_counter() - t0
    return run


def main() -> None:
    runner = pyperf.Runner()
    for label, make in (("single in order", singly(IN_ORDER)), ("multiple/100", ranges),
                        ("single random order", singly(SHUFFLED))):
        res = {
            f"{label} pure": runner.bench_time_func(f"{label} pure", make(P), inner_loops=N),
            f"{label} compiled": runner.bench_time_func(f"{label} compiled", make(C),
                                                        inner_loops=N),
        }
        if not runner.args.worker:
            report(res, f"{label} pure", unit="delivery")


if __name__ == "__main__":
    main()

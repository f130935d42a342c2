"""Delivery-tag bookkeeping: compiled vs pure.

    python perf/bench_acks.py --fast

A million deliveries each: acked singly in order, acked in multiple-ack ranges of 100, and
acked singly in a random order.
"""

from __future__ import annotations

import random

import pyperf

import leveret._acks_c as C
import leveret._acks_py as P

from _ratios import report

N = 1_000_000
ORDER = list(range(1, N + 1))
random.Random(7).shuffle(ORDER)
ITEM = object()


def in_order(mod):
    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            tags = mod.DeliveryTags()
            push, pop = tags.push, tags.pop
            for _ in range(N):
                pop(push(ITEM))
        return pyperf.perf_counter() - t0
    return run


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


def shuffled(mod):
    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            tags = mod.DeliveryTags()
            push, pop = tags.push, tags.pop
            for _ in range(N):
                push(ITEM)
            for tag in ORDER:
                pop(tag)
        return pyperf.perf_counter() - t0
    return run


def main() -> None:
    runner = pyperf.Runner()
    for label, make in (("single", in_order), ("multiple/100", ranges),
                        ("random order", shuffled)):
        res = {
            f"{label} pure": runner.bench_time_func(f"{label} pure", make(P), inner_loops=N),
            f"{label} compiled": runner.bench_time_func(f"{label} compiled", make(C),
                                                        inner_loops=N),
        }
        if not runner.args.worker:
            report(res, f"{label} pure", unit="delivery")


if __name__ == "__main__":
    main()

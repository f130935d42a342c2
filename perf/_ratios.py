"""Print pyperf results side by side as ratios (run in the pyperf master process only)."""

from __future__ import annotations

import pyperf


def report(results: dict[str, pyperf.Benchmark | None], baseline: str, per: int = 1,
           unit: str = "op") -> None:
    got = {k: b for k, b in results.items() if b is not None and b.get_nvalue()}
    if baseline not in got:
        return  # worker process, or the baseline did not run
    base = got[baseline].median()
    print()
    print(f"{'benchmark':<34} {'median per ' + unit:>18} {'vs ' + baseline:>16}")
    for name, bench in got.items():
        med = bench.median()
        print(f"{name:<34} {med / per * 1e9:>15.1f} ns {base / med:>15.2f}x")

"""What the Prometheus metrics cost the data plane: ambench against Leveret with the metrics
endpoint on and scraped, and against Leveret with it off, in alternating pairs.

    python perf/metrics_cost.py                        # default and -c 100, 6 pairs each
    python perf/metrics_cost.py -s "-a 0" --rounds 10  # other scenarios, more pairs
    python perf/metrics_cost.py --interval 0.2         # scrape harder

Each pair starts two fresh brokers one after the other (which goes first alternates):
``leveret --prometheus-port P`` while a thread fetches ``/metrics`` and
``/metrics/per-object`` every ``--interval`` seconds (Prometheus' default is 15 s; the default
here is 1 s), and ``leveret --no-prometheus``. Both run without the management API, so the
metrics are the only difference. Prints each pair's end-to-end msg/s and the ratio on/off
(1.00: no cost), then the median ratio per scenario.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import threading
import urllib.request

from ambench_e2e import SCENARIOS, build_ambench, free_port, leveret, run_one


class Scraper(threading.Thread):
    """Fetches both metrics endpoints every ``interval`` seconds until stopped."""

    def __init__(self, port: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.stopped = threading.Event()
        self.scrapes = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            for path in ("/metrics", "/metrics/per-object"):
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                            timeout=10) as resp:
                    self.bytes += len(resp.read())
                self.scrapes += 1


def one_run(base: list[str], binary: str, scenario: str, n: int, metrics: bool,
            interval: float, timeout: float) -> float | None:
    port = free_port()
    cmd = list(base)
    scraper = None
    if metrics:
        mport = free_port()
        cmd += ["--prometheus-port", str(mport)]
        scraper = Scraper(mport, interval)
    else:
        cmd += ["--no-prometheus"]
    with leveret(cmd, port):
        if scraper is not None:
            scraper.start()
        try:
            result = run_one(binary, "127.0.0.1", port, scenario, n, timeout)
        finally:
            if scraper is not None:
                scraper.stopped.set()
                scraper.join()
    if scraper is not None and scraper.scrapes == 0:
        print("  (the run ended before the first scrape: use a larger -n)", file=sys.stderr)
    return result.e2e if result is not None else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6, help="pairs per scenario")
    p.add_argument("-n", type=int, default=300_000, help="messages per ambench run")
    p.add_argument("-s", "--scenario", action="append", choices=list(SCENARIOS),
                   help="ambench scenario (repeatable; default: default and -c 100)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--leveret-cmd", default=f"{shlex.quote(sys.executable)} -m leveret "
                   "--log-level warning --no-management",
                   help="command starting Leveret, without --port and the metrics options")
    p.add_argument("--ambench", help="path of a built ambench (default: ci/build_ambench.sh)")
    args = p.parse_args()
    binary = args.ambench or build_ambench()
    base = shlex.split(args.leveret_cmd)
    summary = []
    for scenario in args.scenario or ["default", "-c 100"]:
        print(f"scenario {scenario!r}: msg/s with metrics on (scraped every "
              f"{args.interval:g} s) / off")
        ratios = []
        for i in range(args.rounds):
            order = (True, False) if i % 2 == 0 else (False, True)
            rates = {}
            for metrics in order:
                rates[metrics] = one_run(base, binary, scenario, args.n, metrics,
                                         args.interval, args.timeout)
            if rates[True] and rates[False]:
                ratio = rates[True] / rates[False]
                ratios.append(ratio)
                print(f"  pair {i + 1}: on {rates[True]:>9.0f}  off {rates[False]:>9.0f}  "
                      f"ratio {ratio:.3f}")
        if ratios:
            median = statistics.median(ratios)
            summary.append((scenario, median, min(ratios), max(ratios), len(ratios)))
    print("\n| scenario | median on/off | min | max | pairs |\n| --- | --- | --- | --- | --- |")
    for scenario, median, lo, hi, count in summary:
        print(f"| {scenario} | {median:.3f} | {lo:.3f} | {hi:.3f} | {count} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

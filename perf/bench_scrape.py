"""What one Prometheus scrape costs the broker: the time to answer ``/metrics`` and
``/metrics/per-object`` over HTTP with many queues, connections and channels open.

    python perf/bench_scrape.py                      # 1,000 queues, 50 connections x 2 channels
    python perf/bench_scrape.py --queues 10000 --connections 200

The broker runs in this process (``Broker.in_thread``); pika makes the objects. Each endpoint is
fetched ``--repeat`` times; the median time and size are printed, and what a scrape every 15 s
(Prometheus' default interval) comes to as a share of one core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request

import pika

from leveret import Broker


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queues", type=int, default=1000)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--channels", type=int, default=2, help="per connection")
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    with Broker.in_thread(prometheus_port=0) as broker:
        conns = [pika.BlockingConnection(pika.URLParameters(broker.url))
                 for _ in range(args.connections)]
        chans = [c.channel() for c in conns for _ in range(args.channels)]
        for i in range(args.queues):
            ch = chans[i % len(chans)]
            ch.queue_declare(f"scrape-{i}")
            ch.basic_publish("", f"scrape-{i}", b"x" * 16)
        base = f"http://127.0.0.1:{broker.prometheus_port}"
        print(f"{args.queues} queues, {len(conns)} connections, {len(chans)} channels")
        for path in ("/metrics", "/metrics/per-object"):
            times, size = [], 0
            for _ in range(args.repeat):
                start = time.perf_counter()
                with urllib.request.urlopen(base + path, timeout=60) as resp:
                    size = len(resp.read())
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            print(f"  {path:<20} {median * 1000:8.2f} ms  {size / 1024:8.1f} KiB  "
                  f"every 15 s: {median / 15 * 100:.3f}% of a core")
        for c in conns:
            c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

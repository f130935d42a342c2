"""Crash safety under a longer randomized run: kill -9 Leveret again and again under load.

    python perf/killnine.py --rounds 100            # the run perf/README.md reports
    python perf/killnine.py --rounds 10 --seed 7    # a quick one, reproducible kill moments
    python perf/killnine.py --rate 200 --min 0.2 --max 5 --keep /tmp/k9   # more backlog, longer

One data directory lives through every round. Paging is on (``--memory-budget 2000`` and 16 KiB
segments: most messages are on disk only, segments roll and are compacted under the load, the
mode tests/test_durability.py calls "paged"). Each round starts Leveret on the directory; a
publisher sends numbered persistent messages with confirms, flat out; a consumer takes them
with manual acks at ``--rate`` messages a second (prefetch 50), so a backlog builds up over the
rounds; after a random moment (``--min`` to ``--max`` seconds) the broker is killed with
SIGKILL, and the next round starts from what the directory holds. After the last round the
queue is drained and the figures printed:

- confirmed: messages whose publish was confirmed (the publisher's ``basic_publish`` returned)
- lost: confirmed messages never delivered to the consumer in any round nor in the final drain
  (must be 0; the exit status is 1 otherwise)
- duplicates: deliveries of a message delivered before (expected after a crash: an ack the
  broker got but had not written yet, or a delivery whose ack never reached it)
- order violations: within one broker run, a delivery numbered below the one before it
- unconfirmed kept: messages published but not confirmed before the kill that were delivered
  later (allowed: the broker wrote them, the confirm was lost with the process)

The broker is ``python -m leveret`` from this checkout, started by tests/_crash.py, the helper
tests/test_durability.py's kill -9 test uses.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import pika
import pika.exceptions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from _crash import start_server  # noqa: E402

QUEUE = "killnine"
PERSISTENT = pika.BasicProperties(delivery_mode=2)
ERRORS = (pika.exceptions.AMQPError, OSError, ValueError, AttributeError)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Tally:
    published: int = 0  # numbers handed out (attempted publishes)
    confirmed: set[int] = field(default_factory=set)
    delivered: dict[int, int] = field(default_factory=dict)  # number -> deliveries
    duplicates: int = 0
    order_violations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, n: int, last: list[int]) -> None:
        """Count a delivery; ``last`` holds the previous number of this broker run."""
        with self.lock:
            seen = self.delivered.get(n, 0)
            self.delivered[n] = seen + 1
            if seen:
                self.duplicates += 1
            if last and n < last[0]:
                self.order_violations += 1
            last[:] = [n]


def publisher(port: int, tally: Tally, stop: threading.Event) -> None:
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.confirm_delivery()
        while not stop.is_set():
            with tally.lock:
                n = tally.published
                tally.published += 1
            ch.basic_publish("", QUEUE, b"%010d" % n, PERSISTENT)
            with tally.lock:
                tally.confirmed.add(n)  # basic_publish returned: confirmed
    except ERRORS:
        return  # killed under us


def consumer(port: int, tally: Tally, stop: threading.Event, rate: float,
             last: list[int]) -> None:
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=50)
        interval = 1.0 / rate
        next_at = time.monotonic()
        for method, _props, body in ch.consume(QUEUE, inactivity_timeout=0.1):
            if stop.is_set():
                return
            if method is None:
                continue
            tally.deliver(int(body), last)
            ch.basic_ack(method.delivery_tag)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
    except ERRORS:
        return


def queue_depth(port: int) -> int:
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    try:
        return int(conn.channel().queue_declare(QUEUE, durable=True).method.message_count)
    finally:
        conn.close()


def run_round(data_dir: str, tally: Tally, rng: random.Random, args: argparse.Namespace,
              number: int) -> None:
    port = free_port()
    began = time.monotonic()
    proc = start_server(data_dir, port, "paged")
    started = time.monotonic() - began
    depth = queue_depth(port)  # declares the queue in the first round
    confirmed_before = len(tally.confirmed)
    stop = threading.Event()
    last: list[int] = []
    threads = [threading.Thread(target=publisher, args=(port, tally, stop), daemon=True),
               threading.Thread(target=consumer, args=(port, tally, stop, args.rate, last),
                                daemon=True)]
    for t in threads:
        t.start()
    wait = rng.uniform(args.min, args.max)
    time.sleep(wait)  # the random moment of the kill
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    print(f"round {number:3d}: start {started:.2f} s, backlog at start {depth:6d}, killed after "
          f"{wait:.2f} s, confirmed {len(tally.confirmed) - confirmed_before:5d} "
          f"(total {len(tally.confirmed)}), delivered {len(tally.delivered)}", flush=True)


def final_drain(data_dir: str, tally: Tally) -> int:
    port = free_port()
    proc = start_server(data_dir, port, "paged")
    last: list[int] = []
    drained = 0
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        for method, _props, body in ch.consume(QUEUE, auto_ack=True, inactivity_timeout=2):
            if method is None:
                break
            tally.deliver(int(body), last)
            drained += 1
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return drained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="for reproducible kill moments")
    parser.add_argument("--rate", type=float, default=300.0,
                        help="messages a second the consumer takes (default 300)")
    parser.add_argument("--min", type=float, default=0.3, help="earliest kill, s (default 0.3)")
    parser.add_argument("--max", type=float, default=3.0, help="latest kill, s (default 3.0)")
    parser.add_argument("--keep", metavar="DIR",
                        help="use (and keep) this data directory instead of a temporary one")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    data_dir = args.keep or tempfile.mkdtemp(prefix="killnine-")
    print(f"killnine: {args.rounds} rounds, seed {seed}, consumer {args.rate:g} msg/s, kill "
          f"after {args.min:g}-{args.max:g} s, data dir {data_dir}", flush=True)
    tally = Tally()
    began = time.monotonic()
    try:
        for number in range(1, args.rounds + 1):
            run_round(data_dir, tally, rng, args, number)
        drained = final_drain(data_dir, tally)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    lost = sorted(tally.confirmed - tally.delivered.keys())
    kept = len(tally.delivered.keys() - tally.confirmed)
    print(f"\nkillnine: {args.rounds} kill -9 rounds in {time.monotonic() - began:.0f} s "
          f"(seed {seed})")
    print(f"  published        {tally.published}")
    print(f"  confirmed        {len(tally.confirmed)}")
    print(f"  delivered        {len(tally.delivered)} distinct, {drained} in the final drain")
    print(f"  lost             {len(lost)}" + (f"  e.g. {lost[:10]}" if lost else ""))
    print(f"  duplicates       {tally.duplicates}")
    print(f"  order violations {tally.order_violations}")
    print(f"  unconfirmed kept {kept}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

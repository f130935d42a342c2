"""Declaring many durable queues: Leveret (a data dir) vs RabbitMQ, with pika, in one run.

    python perf/declare_scale.py                 # 10,000 durable queues, each broker
    python perf/declare_scale.py -n 2000 --rounds 3 --bind

For each broker, one pika BlockingConnection declares N durable queues one after the other
(with ``--bind``, each also bound to amq.direct), waiting for each declare-ok (and bind-ok), as
an application setting up its topology does. Meanwhile a second client declares and deletes a
transient queue in a loop; its round-trip times show whether the durable declares stall other
clients. The brokers take turns (which goes first alternates by round).

Leveret runs as ``python -m leveret --data-dir D`` (a throw-away directory) and is then
restarted on the same directory: the restart is timed from process start until a passive
declare of the last queue answers. A fresh ``--in-memory`` Leveret declares N transient queues
the same way (with the other client too: a busy broker answers faster than an idle one wakes
up, so both sides of a ratio need the same company), for the ratio of durable to transient
declares. RabbitMQ (localhost:5672, if it runs) gets a vhost of its own, made and deleted
through its management API; it is not restarted (it is shared).
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import pika

RABBITMQ_API = "http://127.0.0.1:15672/api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"nothing listens on {port}")


def connect(port: int, vhost: str = "/") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest"),
        blocked_connection_timeout=None, heartbeat=0))


BIND = False


def declare_many(port: int, vhost: str, n: int, durable: bool, prefix: str) -> float:
    conn = connect(port, vhost)
    ch = conn.channel()
    t0 = time.perf_counter()
    for i in range(n):
        name = f"{prefix}{i}"
        ch.queue_declare(name, durable=durable)
        if BIND:
            ch.queue_bind(name, "amq.direct", name)
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


class Bystander(threading.Thread):
    """Another client: declare and delete a transient queue over and over, timing each."""

    def __init__(self, port: int, vhost: str) -> None:
        super().__init__(daemon=True)
        self.port, self.vhost = port, vhost
        self.times: list[float] = []
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        conn = connect(self.port, self.vhost)
        ch = conn.channel()
        name = f"bystander-{uuid.uuid4().hex[:8]}"
        self.ready.set()
        while not self.stop.is_set():
            t0 = time.perf_counter()
            ch.queue_declare(name)
            ch.queue_delete(name)
            self.times.append(time.perf_counter() - t0)
            time.sleep(0.005)
        conn.close()

    def summary(self) -> tuple[float, float]:
        """Median and 99th percentile round trip (declare + delete), milliseconds."""
        if len(self.times) < 2:
            return float("nan"), float("nan")
        q = statistics.quantiles(self.times, n=100)
        return statistics.median(self.times) * 1e3, q[98] * 1e3


def timed_with_bystander(port: int, vhost: str, n: int, durable: bool,
                         prefix: str) -> tuple[float, tuple[float, float]]:
    bystander = Bystander(port, vhost)
    bystander.start()
    bystander.ready.wait(30)
    try:
        elapsed = declare_many(port, vhost, n, durable, prefix)
    finally:
        bystander.stop.set()
        bystander.join(30)
    return elapsed, bystander.summary()


def leveret(n: int) -> dict[str, object]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "--log-level", "warning",
                             "--in-memory", "--port", str(port)])
    try:
        wait_port(port)
        transient, _ = timed_with_bystander(port, "/", n, False, "leveret-perf-t")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    with tempfile.TemporaryDirectory(prefix="leveret-declares-") as data_dir:
        cmd = [sys.executable, "-m", "leveret", "--log-level", "warning", "--data-dir",
               data_dir]
        port = free_port()
        proc = subprocess.Popen(cmd + ["--port", str(port)])
        try:
            wait_port(port)
            durable, stall = timed_with_bystander(port, "/", n, True, "leveret-perf-d")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        port = free_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd + ["--port", str(port)])
        try:
            wait_port(port)
            conn = connect(port)
            conn.channel().queue_declare(f"leveret-perf-d{n - 1}", passive=True)
            restart = time.perf_counter() - t0
            conn.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    return {"durable": durable, "stall": stall, "transient": transient, "restart": restart}


def _api(method: str, path: str, body: object = None) -> None:
    request = urllib.request.Request(RABBITMQ_API + path, method=method,
                                     data=json.dumps(body).encode() if body is not None
                                     else None)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600):
        pass


def rabbitmq(n: int) -> dict[str, object] | None:
    try:
        wait_port(5672, timeout=0.5)
        _api("GET", "/whoami")
    except (RuntimeError, OSError):
        return None
    vhost = f"leveret-perf-{uuid.uuid4().hex[:8]}"
    _api("PUT", f"/vhosts/{vhost}", {})
    try:
        _api("PUT", f"/permissions/{vhost}/guest",
             {"configure": ".*", "write": ".*", "read": ".*"})
        durable, stall = timed_with_bystander(5672, vhost, n, True, "leveret-perf-d")
    finally:
        _api("DELETE", f"/vhosts/{vhost}")
    return {"durable": durable, "stall": stall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=10_000, help="durable queues to declare")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--bind", action="store_true", help="bind each queue to amq.direct too")
    args = p.parse_args()
    global BIND
    BIND = args.bind
    what = "declared and bound" if BIND else "declared"
    lev: list[dict[str, object]] = []
    rmq: list[dict[str, object]] = []
    for round_ in range(args.rounds):
        order = [leveret, rabbitmq] if round_ % 2 == 0 else [rabbitmq, leveret]
        for run in order:
            result = run(args.n)
            if result is None:
                continue
            (lev if run is leveret else rmq).append(result)
            name = "leveret" if run is leveret else "rabbitmq"
            median, p99 = result["stall"]  # type: ignore[misc]
            print(f"round {round_ + 1} {name:8}: {args.n} durable queues {what} "
                  f"in {result['durable']:.2f} s; another client's declare+delete "
                  f"median {median:.2f} ms, p99 {p99:.2f} ms", flush=True)
            if run is leveret:
                print(f"round {round_ + 1} leveret : {args.n} transient in "
                      f"{result['transient']:.2f} s; restart with {args.n} durable queues "
                      f"{result['restart']:.2f} s", flush=True)

    def med(results: list[dict[str, object]], key: str) -> float:
        return statistics.median(float(r[key]) for r in results)  # type: ignore[arg-type]

    print()
    ratio = med(lev, "durable") / med(lev, "transient")
    print(f"leveret durable/transient declare time: {ratio:.2f}")
    print(f"leveret restart with {args.n} durable queues: {med(lev, 'restart'):.2f} s")
    if rmq:
        print(f"rabbitmq/leveret durable declare time: "
              f"{med(rmq, 'durable') / med(lev, 'durable'):.2f} (above 1: Leveret is faster)")
    else:
        print("no RabbitMQ with its management API on localhost: Leveret alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())

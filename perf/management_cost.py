"""What the management API costs the data plane: ambench (../shared/tools/ambench.c) against two
Leveret processes, one with the API off (``--no-management``) and one with it on, in alternation
with the same arguments; the ratios on/off should stay near 1.

    python perf/management_cost.py                        # every scenario, 3 rounds
    python perf/management_cost.py --rounds 5 -s default  # some scenarios
    python perf/management_cost.py --no-poll              # nobody reads the API meanwhile

While the broker with the API runs a scenario, a client reads ``/api/overview`` and
``/api/queues`` once a second, as the web page or Flower would (``--no-poll`` leaves it idle:
then only the 0.5 s sampler runs). Each round runs both brokers back to back, taking turns at
going first; prints the median end-to-end rate of each and the on/off ratio.
"""

from __future__ import annotations

import argparse
import base64
import shlex
import sys
import threading
import urllib.request

from ambench_e2e import SCENARIOS, build_ambench, cell, free_port, leveret, median, run_one


def poll_api(port: int, stop: threading.Event) -> None:
    token = base64.b64encode(b"guest:guest").decode()
    while not stop.wait(1.0):
        for path in ("/api/overview", "/api/queues"):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": "Basic " + token})
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    resp.read()
            except OSError as exc:
                print(f"  polling {path} failed: {exc}", file=sys.stderr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--rounds", type=int, default=3, help="runs of each broker per scenario")
    p.add_argument("-n", type=int, default=200_000, help="messages per ambench run")
    p.add_argument("-s", "--scenario", action="append", choices=list(SCENARIOS),
                   help="ambench arguments to run (repeatable; default: default, -a 0, "
                        "-c 100, -P 1 -c 100, 10 pairs)")
    p.add_argument("--no-poll", action="store_true", help="do not read the API during runs")
    p.add_argument("--ambench", help="path of a built ambench (default: ci/build_ambench.sh)")
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed per run")
    args = p.parse_args()
    scenarios = args.scenario or ["default", "-a 0", "-c 100", "-P 1 -c 100", "10 pairs"]
    binary = args.ambench or build_ambench()
    # without the metrics on both sides (15692 is the local RabbitMQ's): the API alone differs
    base = [sys.executable, "-m", "leveret", "--log-level", "warning", "--no-prometheus"]
    off_port, on_port, api_port = free_port(), free_port(), free_port()

    print(f"{args.n} messages per run, {args.rounds} rounds, ambench {binary}, "
          f"API {'idle' if args.no_poll else 'read once a second'}")
    print(f"{'scenario':<12} {'API off e2e/s':>14} {'API on e2e/s':>13} {'on/off':>7}")
    with leveret(base + ["--no-management"], off_port) as off, \
            leveret(base + ["--management-port", str(api_port)], on_port) as on:
        for name in scenarios:
            got: dict[str, list[float]] = {"off": [], "on": []}
            for r in range(args.rounds):
                for which in (("off", "on") if r % 2 == 0 else ("on", "off")):
                    proc = off if which == "off" else on
                    if proc.poll() is not None:
                        sys.exit(f"Leveret ({which}) died (exit status {proc.returncode})")
                    stop = threading.Event()
                    poller = None
                    if which == "on" and not args.no_poll:
                        poller = threading.Thread(target=poll_api, args=(api_port, stop))
                        poller.start()
                    try:
                        res = run_one(binary, "127.0.0.1",
                                      off_port if which == "off" else on_port, name, args.n,
                                      args.timeout)
                    finally:
                        stop.set()
                        if poller is not None:
                            poller.join()
                    if res is not None:
                        got[which].append(res.e2e)
            off_e2e, on_e2e = median(got["off"]), median(got["on"])
            print(f"{name:<12} {cell(off_e2e):>14} {cell(on_e2e):>13} "
                  f"{cell(on_e2e / off_e2e, '.2f', 'x'):>7}", flush=True)
    print(f"commands: {shlex.join(base + ['--no-management'])} / "
          f"{shlex.join(base + ['--management-port', str(api_port)])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run six AMQP clients' own test suites against RabbitMQ and against Leveret, and compare.

The suites (pika, aio-pika, aiormq, kombu's py-amqp integration tests, py-amqp's integration
tests, amqplib) are not part of this project: check them out yourself at the commits in
``PINNED`` (docs/compatibility.md says how), all in one directory, each under its name::

    git clone https://github.com/pika/pika SUITES/pika && git -C SUITES/pika checkout COMMIT
    ...
    python ci/client_suites.py setup SUITES          # a venv per Python suite, npm ci for amqplib
    python ci/client_suites.py run SUITES --results OUT [--suite pika ...] [--broker leveret]
    python ci/client_suites.py compare OUT           # counts per broker, tests that differ

Both brokers are reached at the address the suites use by default, localhost:5672 (management
API on 15672): RabbitMQ as it runs on the machine, Leveret inside a private network namespace
(``unshare --net``, as root or through a user namespace) where it listens on those same ports,
so no suite needs its hard-coded addresses changed and Leveret never disturbs the machine's
RabbitMQ. Leveret is started from the Python running this script (``-m leveret --in-memory``),
once per suite, and its log is kept beside the results. Each suite runs on both brokers one
after the other, never in parallel. Results are JUnit XML files (``OUT/<suite>-<broker>.xml``);
``compare`` reads them, prints passed/failed/skipped per suite and broker, and lists the tests
whose outcome differs; ``--json`` writes the same as JSON.

The suites run in the broker's default virtual host "/" (none of them takes another one from
the environment); their queue and exchange names are random or test-specific.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The commits the comparison in docs/compatibility.md was made with.
PINNED = {
    "pika": "2126d43a76c14fb8d365d96bd1bdcef13dad75b5",
    "aio-pika": "0a9f24c9349f9158a959bf1e64d2c909350727d7",
    "aiormq": "ec95ea96d281df0fbb3ea032afca44aa503274e9",
    "kombu": "9ee8595b835c77b4f04cfb54b40b5d446f985a35",
    "py-amqp": "a03ad34f9b620773f50a4e19f26382bc23140e63",
    "amqplib": "f7503e571a80dacfc863c2690ab797d31667b868",
}

REPOSITORIES = {
    "pika": "https://github.com/pika/pika",
    "aio-pika": "https://github.com/mosquito/aio-pika",
    "aiormq": "https://github.com/mosquito/aiormq",
    "kombu": "https://github.com/celery/kombu",
    "py-amqp": "https://github.com/celery/py-amqp",
    "amqplib": "https://github.com/amqp-node/amqplib",
}

AMQP_URL = "amqp://guest:guest@localhost:5672//"


@dataclass
class Suite:
    """How one suite is installed and run (paths relative to its checkout)."""

    name: str
    #: pip requirements for the suite's venv, besides ``-e .`` (versions of the suite's lock
    #: file where it has one: newer aiomisc releases break its pytest plugin).
    pip: list[str] = field(default_factory=list)
    #: pytest arguments, or for a Node suite the ``node`` arguments.
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    node: bool = False

    def command(self, checkout: Path, junit: Path) -> list[str]:
        """The command that runs the suite and writes JUnit XML to ``junit``."""
        if self.node:
            return ["node", "--test", *self.args, "--test-reporter=junit",
                    f"--test-reporter-destination={junit}", "--test-reporter=dot",
                    "--test-reporter-destination=stdout"]
        python = checkout / ".venv" / "bin" / "python"
        return [str(python), "-m", "pytest", *self.args, "-p", "no:cacheprovider",
                f"--junitxml={junit}"]


SUITES = {
    suite.name: suite
    for suite in [
        # The acceptance tests (the unit tests never reach a broker). Extras for the
        # gevent/tornado/twisted adapters' tests, as pika's hatch environment has them.
        Suite("pika", pip=["pytest", "pytest-timeout", "gevent", "tornado", "twisted"],
              args=["tests/acceptance", "--timeout", "120"]),
        # Its conftest starts RabbitMQ in Docker: client_suites_docker.py hands it the broker.
        Suite("aio-pika",
              pip=["pytest==9.0.2", "aiomisc==18.0.6", "aiomisc-pytest==2.0.0",
                   "aiormq==6.9.2", "shortuuid", "timeout-decorator"],
              args=["tests", "-p", "client_suites_docker", "-o", "log_cli=false"],
              env={"PYTHONPATH": str(HERE)}),
        Suite("aiormq", pip=["pytest==8.4.2", "aiomisc==17.9.4", "aiomisc-pytest==1.3.4"],
              args=["tests"], env={"AMQP_URL": AMQP_URL}),
        # tox's integration-py-amqp environment, without xdist and reruns: one process, and a
        # failure is reported as it happened.
        Suite("kombu", pip=["-r", "requirements/test.txt"],
              args=["-E", "py-amqp", "t/integration/test_py_amqp.py", "-p", "no:xdist",
                    "-p", "no:rerunfailures", "-p", "no:sugar"]),
        Suite("py-amqp", pip=["-r", "requirements/test.txt"],
              args=["-E", "rabbitmq", "t/integration", "-p", "no:xdist",
                    "-p", "no:rerunfailures", "-p", "no:sugar"]),
        # `npm test` is `node --test --test-timeout=1000`; Node 20 applies that timeout to each
        # test file as a whole too, so a larger one is given (a test's own timers still decide).
        Suite("amqplib", args=["--test-timeout=20000"], env={"URL": "amqp://localhost"},
              node=True),
    ]
}


# --------------------------------------------------------------------------- setup


def setup(suites_dir: Path, names: list[str]) -> None:
    """Create each Python suite's venv and install its dependencies; npm ci for amqplib."""
    for name in names:
        suite, checkout = SUITES[name], suites_dir / name
        if not checkout.is_dir():
            sys.exit(f"{checkout}: missing; clone {REPOSITORIES[name]} there "
                     f"and check out {PINNED[name]}")
        head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        if head != PINNED[name]:
            print(f"{name}: at {head or 'unknown commit'}, pinned {PINNED[name]}", file=sys.stderr)
        if suite.node:
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=checkout, check=True)
            continue
        venv = checkout / ".venv"
        if not venv.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", ".", *suite.pip],
                       cwd=checkout, check=True)


# --------------------------------------------------------------------------- run


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"leveret exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"leveret did not listen on {port} within {timeout:.0f} s")


def _run_suite(suite: Suite, checkout: Path, junit: Path) -> int:
    junit.unlink(missing_ok=True)
    env = {**os.environ, **suite.env}
    if "PYTHONPATH" in suite.env and os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = suite.env["PYTHONPATH"] + os.pathsep + os.environ["PYTHONPATH"]
    print(f"== {suite.name}: {' '.join(suite.command(checkout, junit))}", flush=True)
    return subprocess.run(suite.command(checkout, junit), cwd=checkout, env=env).returncode


def run_in_namespace(suites_dir: Path, name: str, results: Path) -> int:
    """Inside the private network namespace: start Leveret on 5672, run one suite, stop it."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    log = (results / f"{name}-leveret.log").open("wb")
    leveret = subprocess.Popen(
        [sys.executable, "-m", "leveret", "--port", "5672", "--management-port", "15672",
         "--prometheus-port", "15692", "--in-memory"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(5672, leveret)
        return _run_suite(SUITES[name], suites_dir / name, results / f"{name}-leveret.xml")
    finally:
        leveret.terminate()
        try:
            leveret.wait(15)
        except subprocess.TimeoutExpired:
            leveret.kill()
            leveret.wait()
        log.close()


def _unshare_prefix() -> list[str]:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        sys.exit("the Leveret runs need `unshare` (util-linux) and `ip` (iproute2)")
    # Root makes a network namespace directly; others through a user namespace of their own.
    return ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]


def run(suites_dir: Path, names: list[str], brokers: list[str], results: Path) -> None:
    """Run each suite on each broker, one at a time."""
    results.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (suites_dir / name).is_dir():
            sys.exit(f"{suites_dir / name}: missing (see `setup`)")
        for broker in brokers:
            started = time.monotonic()
            if broker == "rabbitmq":
                try:
                    socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
                except OSError:
                    sys.exit("no RabbitMQ on localhost:5672")
                _run_suite(SUITES[name], suites_dir / name, results / f"{name}-rabbitmq.xml")
            else:
                subprocess.run([*_unshare_prefix(), sys.executable, str(Path(__file__).resolve()),
                                "_in-namespace", str(suites_dir), name, str(results)])
            print(f"== {name} on {broker}: {time.monotonic() - started:.0f} s", flush=True)


# --------------------------------------------------------------------------- compare


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed / failed / skipped, from a pytest or Node JUnit XML file."""
    found: dict[str, str] = {}

    def visit(element: ET.Element, path: tuple[str, ...]) -> None:
        for child in element:
            if child.tag == "testsuite":
                visit(child, (*path, child.get("name", "")))
            elif child.tag == "testcase":
                parts = [*path, child.get("classname", ""), child.get("name", "")]
                test_id = "::".join(p for p in parts if p and p != "test" and p != "pytest")
                tags = {grandchild.tag for grandchild in child}
                outcome = ("failed" if tags & {"failure", "error"}
                           else "skipped" if "skipped" in tags else "passed")
                unique, n = test_id, 1
                while unique in found:
                    n += 1
                    unique = f"{test_id} #{n}"
                found[unique] = outcome

    visit(ET.parse(junit).getroot(), ())
    return found


def compare(results: Path, names: list[str]) -> dict[str, object]:
    """Counts per suite and broker, and the tests whose outcome differs."""
    report: dict[str, object] = {}
    for name in names:
        files = {b: results / f"{name}-{b}.xml" for b in ("rabbitmq", "leveret")}
        if not all(f.exists() for f in files.values()):
            continue
        rabbit, leveret = outcomes(files["rabbitmq"]), outcomes(files["leveret"])
        report[name] = {
            "commit": PINNED[name],
            "rabbitmq": dict(Counter(rabbit.values())),
            "leveret": dict(Counter(leveret.values())),
            "pass_on_rabbitmq_only": sorted(
                t for t, o in rabbit.items() if o == "passed" and leveret.get(t) != "passed"),
            "pass_on_leveret_only": sorted(
                t for t, o in leveret.items() if o == "passed" and rabbit.get(t) != "passed"),
            "fail_on_both": sorted(
                t for t, o in rabbit.items() if o == "failed" and leveret.get(t) == "failed"),
        }
    return report


def print_report(report: dict[str, object]) -> None:
    print(f"{'suite':10} {'broker':9} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for name, entry in report.items():
        assert isinstance(entry, dict)
        for broker in ("rabbitmq", "leveret"):
            c = entry[broker]
            print(f"{name:10} {broker:9} {c.get('passed', 0):7} {c.get('failed', 0):7} "
                  f"{c.get('skipped', 0):8}")
    for name, entry in report.items():
        assert isinstance(entry, dict)
        for key, title in (("pass_on_rabbitmq_only", "pass on RabbitMQ, not on Leveret"),
                           ("pass_on_leveret_only", "pass on Leveret, not on RabbitMQ")):
            if entry[key]:
                print(f"\n{name}: {len(entry[key])} {title}:")
                for test in entry[key]:
                    print(f"  {test}")
        if entry["fail_on_both"]:
            print(f"\n{name}: {len(entry['fail_on_both'])} fail on both")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_setup = sub.add_parser("setup", help="install each suite's dependencies")
    p_setup.add_argument("suites_dir", type=Path)
    p_run = sub.add_parser("run", help="run the suites on RabbitMQ and on Leveret")
    p_run.add_argument("suites_dir", type=Path)
    p_run.add_argument("--results", type=Path, default=Path("client-suites-results"))
    p_run.add_argument("--broker", choices=["rabbitmq", "leveret", "both"], default="both")
    p_compare = sub.add_parser("compare", help="compare the results of `run`")
    p_compare.add_argument("results", type=Path)
    p_compare.add_argument("--json", type=Path, help="also write the comparison here")
    for p in (p_setup, p_run, p_compare):
        p.add_argument("--suite", action="append", choices=sorted(SUITES),
                       help="only this suite (repeatable; default all)")
    p_inside = sub.add_parser("_in-namespace")
    p_inside.add_argument("suites_dir", type=Path)
    p_inside.add_argument("name")
    p_inside.add_argument("results", type=Path)
    args = parser.parse_args(argv)

    if args.command == "_in-namespace":
        return run_in_namespace(args.suites_dir.resolve(), args.name, args.results.resolve())
    names = args.suite or list(SUITES)
    if args.command == "setup":
        setup(args.suites_dir.resolve(), names)
    elif args.command == "run":
        brokers = ["rabbitmq", "leveret"] if args.broker == "both" else [args.broker]
        run(args.suites_dir.resolve(), names, brokers, args.results.resolve())
    else:
        report = compare(args.results, names)
        print_report(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

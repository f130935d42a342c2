"""Running ``leveret-ctl`` and RabbitMQ's own ``rabbitmqctl`` side by side, and comparing what
they print once the parts that must differ (process ids, row order, names made per test) are
made alike."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pika

RABBITMQ_MANAGEMENT = "http://guest:guest@localhost:15672"


@dataclass
class Run:
    """One command's exit status, stdout and stderr."""

    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return self.out.splitlines()


def leveret_ctl_path() -> str:
    """The installed console script (it sits beside this Python)."""
    from _proc import console_script

    return console_script("leveret-ctl")


def run(argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> Run:
    done = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return Run(done.returncode, done.stdout, done.stderr)


def leveret_ctl(*args: str, url: str = RABBITMQ_MANAGEMENT, program: str | None = None,
                stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
    return run([program or leveret_ctl_path(), "--management-url", url, *args], stdin, env)


# a line RabbitMQ's CLI logs on its own at times, not part of the command's output
# ("18:11:43.844 [warning] Failed to set permissions for 'x': the user does not exist")
_CLI_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \[\w+\] .*\n", re.M)


def rabbitmqctl(*args: str, stdin: str | None = None) -> Run:
    out = run([rabbitmq_tool("rabbitmqctl"), *args], stdin)
    return dataclasses.replace(out, out=_CLI_LOG_LINE.sub("", out.out),
                               err=_CLI_LOG_LINE.sub("", out.err))


def rabbitmq_diagnostics(*args: str) -> Run:
    return run([rabbitmq_tool("rabbitmq-diagnostics"), *args])


def rabbitmq_tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def rabbitmq_tools_work() -> bool:
    """rabbitmqctl is installed, may talk to the local node, and its management API answers."""
    if not os.path.exists(rabbitmq_tool("rabbitmqctl")):
        return False
    try:
        req = urllib.request.Request("http://localhost:15672/api/overview",
                                     headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
        with urllib.request.urlopen(req, timeout=2) as resp:
            json.load(resp)
    except Exception:
        return False
    return rabbitmqctl("-q", "list_vhosts").code == 0


def management_get(url: str, path: str) -> object:
    parts = urllib.parse.urlsplit(url)
    token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    req = urllib.request.Request(f"{parts.scheme}://{parts.hostname}:{parts.port}/api{path}",
                                 headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def build_scene(conn: pika.BlockingConnection) -> None:
    """On ``conn``'s vhost: queues (with arguments, messages), exchanges, bindings, a consumer
    on a second channel and a third channel in confirm mode; ``conn`` stays open."""
    ch = conn.channel()
    # argument names in sorted order: the management API sorts them, rabbitmqctl does not
    ch.queue_declare("q-args", durable=True, arguments={
        "x-dead-letter-exchange": "dlx", "x-max-length": 100, "x-message-ttl": 60000})
    ch.queue_declare("q-plain")
    ch.queue_declare("q-cons", auto_delete=True)
    ch.exchange_declare("x-topic", "topic", durable=True, arguments={"alternate-exchange": "ae"})
    ch.exchange_declare("x-fan", "fanout", auto_delete=True)
    ch.queue_bind("q-plain", "x-topic", "a.#")
    ch.queue_bind("q-args", "x-fan", "", arguments={"k": "v", "n": 3})
    for _ in range(2):
        ch.basic_publish("", "q-args", b"kept", pika.BasicProperties(delivery_mode=2))
    for _ in range(3):
        ch.basic_publish("x-topic", "a.b", b"routed")
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=7)
    consumer.basic_consume("q-cons", lambda *a: None, consumer_tag="ctl-tag",
                           arguments={"x-priority": 3})
    conn.channel().confirm_delivery()
    conn.process_data_events(0)


# ---------------------------------------------------------------------- making outputs alike

PID = re.compile(r"<rabbit@[^>]+>|#PID<[^>]+>")


def normalise(text: str, replace: dict[str, str] | None = None, header: bool = True,
              keep: Callable[[str], bool] | None = None) -> list[str]:
    """Lines with per-test names replaced and pids blanked; the banner ("Listing ... ...")
    and the header row first, then the data rows sorted (rabbitmqctl lists in no particular
    order, the management API by name), only those ``keep`` accepts (for the lists that span
    every vhost)."""
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    lines = [PID.sub("<pid>", line) for line in text.splitlines()]
    banner = [ln for ln in lines if ln.endswith("...") or ln.startswith("Timeout:")]
    rest = [ln for ln in lines if ln not in banner]
    head, rows = (rest[:1], rest[1:]) if header else ([], rest)
    if keep is not None:
        rows = [ln for ln in rows if keep(ln)]
    return banner + head + sorted(rows)


def json_rows(text: str) -> list[dict[str, object]]:
    """rabbitmqctl's JSON list output, rows sorted."""
    rows = json.loads(text)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def eventually(check: Callable[[], object], timeout: float = 20.0) -> object:
    """RabbitMQ's management API shows stats as its agents report them (every 5 s by
    default), so a comparison with rabbitmqctl (which asks the queues themselves) is retried
    until they agree; the last failure is raised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

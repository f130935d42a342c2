"""Running ``leveret-ctl`` and RabbitMQ's own ``rabbitmqctl`` side by side, and comparing what
they print once the parts that must differ (process ids, row order, names made per test) are
made alike."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

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
    path = os.path.join(os.path.dirname(sys.executable), "leveret-ctl")
    if not os.path.exists(path):
        found = shutil.which("leveret-ctl")
        assert found, "leveret-ctl is not installed (pip install -e .)"
        path = found
    return path


def run(argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> Run:
    done = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return Run(done.returncode, done.stdout, done.stderr)


def leveret_ctl(*args: str, url: str = RABBITMQ_MANAGEMENT, program: str | None = None,
                stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
    return run([program or leveret_ctl_path(), "--management-url", url, *args], stdin, env)


def rabbitmqctl(*args: str, stdin: str | None = None) -> Run:
    return run([rabbitmq_tool("rabbitmqctl"), *args], stdin)


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

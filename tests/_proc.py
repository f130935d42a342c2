"""Run ``leveret`` as a subprocess and watch its console output, as testcontainers does: wait
for a line matching a regex (``.*Server startup complete.*``), then use the broker."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from conftest import free_port

STARTED = re.compile(r".*Server startup complete.*")
FREE_PORT = -1


def console_script(name: str) -> str:
    """The installed console script ``name`` (``leveret``, ``leveret-ctl``): beside this
    Python, else on PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        found = shutil.which(name)
        assert found, f"{name} is not installed (pip install -e .)"
        path = found
    return path


class LeveretProcess:
    """``python -m leveret ARGS`` (or the installed ``leveret`` script) with its stdout and
    stderr read into ``lines`` by a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 port: int | None = FREE_PORT, in_memory: bool = True,
                 host: str | None = "127.0.0.1", http_off: bool = True,
                 script: bool = False) -> None:
        """``port``: a free one by default, None for no ``--port`` flag; ``host`` None for
        no ``--host`` flag; ``http_off`` False leaves the management and metrics ports to
        the configuration (else they are off unless ``args`` name them); ``script``: run the
        ``leveret`` console script, as a user does."""
        self.port = free_port() if port == FREE_PORT else port
        argv = [console_script("leveret")] if script else [sys.executable, "-m", "leveret"]
        if host is not None:
            argv += ["--host", host]
        if self.port is not None:
            argv += ["--port", str(self.port)]
        if in_memory and "--data-dir" not in args:
            argv.append("--in-memory")
        if http_off and not any(a in args for a in ("--management-port", "--no-management")):
            argv.append("--no-management")  # RabbitMQ holds 15672 on the test machines
        if http_off and not any(a in args for a in ("--prometheus-port", "--no-prometheus")):
            argv.append("--no-prometheus")  # and 15692
        self.lines: list[str] = []
        self._changed = threading.Condition()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        self.proc = subprocess.Popen(
            [*argv, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**environment, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 15.0,
                 start: int = 0) -> str:
        """The first line from index ``start`` on that matches ``pattern`` (fullmatch, as
        testcontainers' log wait strategies do); AssertionError if the process ends or the
        time runs out first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        seen = start
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if regex.fullmatch(line):
                        return line
                seen = len(self.lines)
                if not self._reader.is_alive():
                    raise AssertionError(f"leveret ended ({self.proc.poll()}) without "
                                         f"{regex.pattern!r}:\n" + "\n".join(self.lines))
                if not self._changed.wait(timeout):
                    raise AssertionError(f"no line matching {regex.pattern!r} in {timeout} s:\n"
                                         + "\n".join(self.lines))

    def started(self) -> LeveretProcess:
        self.wait_for(STARTED)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal it, wait for it to end; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def __enter__(self) -> LeveretProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_leveret(args: Sequence[str], env: dict[str, str] | None = None,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m leveret ARGS`` expected to end by itself (an error, ``--version``)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
    if not any(a in args for a in ("--management-port", "--no-management", "--version",
                                   "--help")):
        args = [*args, "--no-management"]  # RabbitMQ holds 15672 on the test machines
    if not any(a in args for a in ("--prometheus-port", "--no-prometheus", "--version",
                                   "--help")):
        args = [*args, "--no-prometheus"]  # and 15692
    return subprocess.run([sys.executable, "-m", "leveret", *args], capture_output=True,
                          text=True, timeout=timeout, env={**environment, **(env or {})})

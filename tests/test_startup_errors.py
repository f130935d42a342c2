"""Every start-up error of `leveret` names its cause in one line on stderr, with no traceback,
and a non-zero exit status: 2 for a usage error (a bad option value), 1 for the rest."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from _proc import LeveretProcess, run_leveret
from conftest import free_port


def one_line_error(out: subprocess.CompletedProcess[str], status: int) -> str:
    assert out.returncode == status, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "startup complete" not in out.stdout
    return lines[0]


# ---------------------------------------------------------------------- usage errors

@pytest.mark.parametrize(("args", "expected"), [
    (["--port", "70000"], "argument --port: 70000 is out of range: a port is 0 to 65535"),
    (["--port", "-1"], "argument --port: -1 is out of range: a port is 0 to 65535"),
    (["--port", "amqp"], "argument --port: 'amqp' is not a port"),
    (["--frame-max", "4095"], "argument --frame-max: 4095 is out of range: a frame size is "
                              "4096 to 4294967295 (AMQP 0-9-1 frames are at least 4096 bytes)"),
    (["--frame-max", "0"], "argument --frame-max: 0 is out of range"),
    (["--frame-max", "4294967296"], "argument --frame-max: 4294967296 is out of range"),
    (["--channel-max", "65536"], "argument --channel-max: 65536 is out of range: a channel "
                                 "count is 0 to 65535"),
    (["--heartbeat", "-5"], "argument --heartbeat: -5 is out of range: a heartbeat in seconds "
                            "is 0 to 65535"),
    (["--heartbeat", "65536"], "argument --heartbeat: 65536 is out of range"),
    (["--consumer-timeout", "-5"], "argument --consumer-timeout: -5 is out of range"),
    (["--max-message-size", "1GiB"], "argument --max-message-size: 1073741824 is out of range: "
                                     "a message size is 0 to 536870912 (512 MiB, RabbitMQ's "
                                     "limit)"),
    (["--log-level", "loud"], "argument --log-level: 'loud' is not a level"),
    (["--log-format", "xml"], "argument --log-format: 'xml' is not a log format: text or json"),
    (["--memory-high-watermark", "lots"], "argument --memory-high-watermark: 'lots' is not a "
                                          "size"),
    (["--data-dir", "/tmp/x", "--in-memory"], "argument --in-memory: not allowed with argument "
                                              "--data-dir"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_a_bad_option_is_a_one_line_usage_error(args, expected):
    line = one_line_error(run_leveret(args), 2)
    assert line.startswith(f"leveret: error: {expected}"), line


def test_a_bad_port_in_the_environment_names_the_variable():
    line = one_line_error(run_leveret(["--in-memory"], env={"RABBITMQ_NODE_PORT": "99999"}), 1)
    assert line == ("leveret: RABBITMQ_NODE_PORT: 99999 is out of range: a port is 0 to "
                    "65535")


# ---------------------------------------------------------------------- the data directory

def start_with_data_dir(path: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return run_leveret(["--host", "127.0.0.1", "--port", str(free_port()), "--data-dir",
                        str(path)], **kwargs)  # type: ignore[arg-type]


def test_a_data_dir_that_is_a_file(tmp_path):
    target = tmp_path / "data"
    target.write_text("not a directory")
    line = one_line_error(start_with_data_dir(target), 1)
    assert line == f"leveret: --data-dir {target} is a file, not a directory"


def test_a_data_dir_whose_parent_is_missing(tmp_path):
    target = tmp_path / "typo" / "data"
    line = one_line_error(start_with_data_dir(target), 1)
    assert line == (f"leveret: cannot create --data-dir {target}: its parent "
                    f"{tmp_path / 'typo'} does not exist")
    assert not (tmp_path / "typo").exists()


def test_a_data_dir_whose_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "data"
    line = one_line_error(start_with_data_dir(target), 1)
    assert line == (f"leveret: cannot create --data-dir {target}: its parent "
                    f"{tmp_path / 'file'} is a file, not a directory")


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[None]:
    """A directory nobody can create files in: mode 555, or for root (which writes anyway)
    the immutable attribute (chattr +i), removed again afterwards."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_data_dir_that_is_not_writable(tmp_path):
    target = tmp_path / "readonly"
    with read_only_directory(target):
        line = one_line_error(start_with_data_dir(target), 1)
    assert line.startswith(f"leveret: --data-dir {target} is not writable: "), line
    assert line.endswith(("Permission denied", "Operation not permitted")), line


def test_a_data_dir_that_does_not_exist_yet_is_created(tmp_path):
    target = tmp_path / "fresh"
    with LeveretProcess("--data-dir", str(target)) as proc:
        proc.started()
        assert (target / "VERSION").exists()


# ---------------------------------------------------------------------- listening

def test_a_host_that_does_not_resolve():
    out = run_leveret(["--in-memory", "--host", "no-such-host.invalid", "--port",
                       str(free_port())])
    line = one_line_error(out, 1)
    assert line.startswith("leveret: cannot listen on no-such-host.invalid:"), line


def test_an_address_that_is_not_ours():
    out = run_leveret(["--in-memory", "--host", "192.0.2.1", "--port", str(free_port())])
    line = one_line_error(out, 1)
    assert line.startswith("leveret: cannot listen on 192.0.2.1:"), line
    assert "assign requested address" in line

"""The data directory holds message bodies, password hashes and definitions: directories are
0700 and files 0600 whatever the umask (store/private.py). Checked with umask 000, where
anything created with default modes would be world-readable."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from conftest import free_port
from leveret import Broker

pytestmark = pytest.mark.leveret_only

PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Every path under ``root`` (and root itself) -> its permission bits."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def assert_private(root: Path) -> None:
    found = modes(root)
    wrong = {p: oct(m) for p, m in found.items()
             if m != (0o700 if (root / p).is_dir() else 0o600)}
    assert not wrong, f"not the owner's only: {wrong}"


def use_every_kind_of_file(url: str) -> None:
    """Definitions, persistent messages (segments and their marks), a stream and a delayed
    message: each part of the store writes its own files."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("kept", durable=True)
    for i in range(20):
        ch.basic_publish("", "kept", b"secret %d" % i, PERSISTENT)
    method, _, _ = ch.basic_get("kept")
    ch.basic_ack(method.delivery_tag)  # a mark
    ch.queue_declare("log", durable=True, arguments={"x-queue-type": "stream"})
    ch.basic_publish("", "log", b"streamed secret", PERSISTENT)
    ch.exchange_declare("later", "x-delayed-message", durable=True,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_bind("kept", "later", "k")
    ch.basic_publish("later", "k", b"delayed secret", pika.BasicProperties(
        delivery_mode=2, headers={"x-delay": 600000}))
    conn.close()


def test_store_files_are_private_whatever_the_umask(tmp_path, open_umask):
    root = tmp_path / "data"
    with Broker.in_thread(data_dir=str(root)) as broker:
        broker.add_user("alice", "s3cret")  # a password hash in the journal
        use_every_kind_of_file(broker.url)
        assert_private(root)
    assert_private(root)  # and what a clean shutdown writes (CLEAN, rewritten logs)
    found = modes(root)
    # the parts the assertion covered are there
    assert any(p.startswith("messages/") and p.endswith(".log") for p in found)
    assert any(p.startswith("streams/") and p.endswith(".segment") for p in found)
    assert "definitions.log" in found and "delayed.log" in found
    # and they come back when read again
    with Broker.in_thread(data_dir=str(root)) as broker:
        assert broker.queue("kept").messages == 19
        assert_private(root)


def test_an_existing_data_dir_is_made_private(tmp_path, open_umask):
    """A data dir an older Leveret (or a mkdir) left open to others is closed at start."""
    root = tmp_path / "old"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    with Broker.in_thread(data_dir=str(root)) as broker:
        use_every_kind_of_file(broker.url)
    assert_private(root)


def test_the_command_line_creates_a_private_data_dir(tmp_path):
    root = tmp_path / "cli-data"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leveret", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(root), "--no-management", "--no-prometheus"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: os.umask(0))
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Server startup complete" in line:
                break
        use_every_kind_of_file(f"amqp://guest:guest@127.0.0.1:{port}/")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert_private(root)

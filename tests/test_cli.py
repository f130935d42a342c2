"""The `leveret` command: listening, options, environment, signals, a busy port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pika
import pika.exceptions
import pytest

from conftest import free_port


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    if "--data-dir" not in args:
        args = ("--in-memory", *args)
    proc = subprocess.Popen(
        [sys.executable, "-m", "leveret", "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )
    line = proc.stdout.readline()  # the one line saying where it listens
    assert f"listening on 127.0.0.1:{port}" in line, line
    return proc, port


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_with_320(sig):
    proc, port = start()
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/"))
    ch = conn.channel()
    ch.queue_declare("q")
    assert stop(proc, sig) == 0
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        ch.queue_declare("q2")
    assert info.value.reply_code == 320
    rest = proc.stdout.read()
    assert "Traceback" not in rest


def test_port_in_use_is_one_line_and_exit_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "leveret", "--host", "127.0.0.1",
                              "--port", str(port), "--in-memory"], capture_output=True, text=True,
                             timeout=30)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "address already in use" in lines[0]


def test_rabbitmq_environment_variables():
    proc, port = start(env={"RABBITMQ_DEFAULT_USER": "app", "RABBITMQ_DEFAULT_PASS": "pw",
                            "RABBITMQ_DEFAULT_VHOST": "dev"})
    try:
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://app:pw@127.0.0.1:{port}/dev"))
        conn.close()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/dev"))
    finally:
        stop(proc)


def test_user_flags_and_log_level():
    proc, port = start("--user", "u", "--password", "p", "--vhost", "v", "--log-level", "debug")
    try:
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://u:p@127.0.0.1:{port}/v"))
        conn.close()
    finally:
        stop(proc)
    assert "DEBUG" in proc.stdout.read()


def test_asyncio_loop_option():
    proc, port = start("--loop", "asyncio")
    try:
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/"))
        conn.channel().queue_declare("works")
        conn.close()
    finally:
        assert stop(proc) == 0


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "leveret", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("leveret ")


def test_answers_amqp_once_it_says_it_listens():
    proc, port = start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            assert s.recv(8)[:1] == b"\x01"  # connection.start is a method frame
    finally:
        stop(proc)


def test_default_data_dir_is_per_user_and_printed(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leveret", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
    )
    line = proc.stdout.readline()
    try:
        assert f"data {tmp_path / 'leveret'}" in line
        assert (tmp_path / "leveret" / "VERSION").exists()
    finally:
        stop(proc)


def test_second_broker_on_the_same_data_dir_is_refused(tmp_path):
    proc, _ = start("--data-dir", str(tmp_path))
    try:
        out = subprocess.run([sys.executable, "-m", "leveret", "--port", str(free_port()),
                              "--data-dir", str(tmp_path)], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 1
        assert "in use by another leveret" in out.stderr and "Traceback" not in out.stderr
    finally:
        stop(proc)


def test_incompatible_data_dir_is_refused(tmp_path):
    (tmp_path / "VERSION").write_text("leveret-store 99\n")
    out = subprocess.run([sys.executable, "-m", "leveret", "--port", str(free_port()),
                          "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "leveret-store 99" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("134217728", 134217728), ("128MiB", 128 << 20), ("1.5GB", 1_500_000_000),
    ("512 kib", 512 << 10), ("0", 0), ("64mb", 64_000_000),
])
def test_sizes_take_rabbitmq_style_units(text, expected):
    from leveret.cli import parse_args

    args = parse_args(["--memory-budget", text, "--memory-high-watermark", text])
    assert (args.memory_budget, args.memory_high_watermark) == (expected, expected)


@pytest.mark.parametrize("text", ["lots", "12 parsecs", "-5MiB", ""])
def test_a_size_that_is_not_one_is_a_clear_usage_error(text):
    out = subprocess.run([sys.executable, "-m", "leveret", "--memory-budget", text],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--memory-budget" in out.stderr and "Traceback" not in out.stderr

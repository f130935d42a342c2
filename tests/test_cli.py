"""The `leveret` command: listening, options, environment, signals, a busy port."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pika
import pika.exceptions
import pytest

from _proc import STARTED, LeveretProcess
from conftest import free_port

from apiclient import API


def start(*args: str, env: dict[str, str] | None = None) -> tuple[LeveretProcess, int]:
    proc = LeveretProcess(*args, env=env).started()
    return proc, proc.port


def stop(proc: LeveretProcess, sig: int = signal.SIGTERM) -> int:
    return proc.stop(sig)


def test_testcontainers_style_wait_for_the_startup_line_then_connect():
    # testcontainers (Java, Go, .NET, Node) wait for `.*Server startup complete.*` on the
    # container's output and connect at once: the listener must be up by then
    with LeveretProcess() as proc:
        proc.wait_for(STARTED)
        listening = proc.wait_for(r".* \[info\] <0\.0\.0> started TCP listener on .*")
        assert listening.endswith(f"started TCP listener on 127.0.0.1:{proc.port}")
        assert proc.lines.index(listening) < proc.lines.index(proc.wait_for(STARTED))
        assert proc.wait_for(STARTED).endswith("Server startup complete; 0 plugins started.")
        conn = pika.BlockingConnection(
            pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{proc.port}/"))
        ch = conn.channel()
        ch.queue_declare("ready")
        ch.basic_publish("", "ready", b"hello")
        assert ch.basic_get("ready", auto_ack=True)[2] == b"hello"
        conn.close()


def test_port_0_listens_on_a_free_port_and_says_which():
    with LeveretProcess(port=0) as proc:
        line = proc.wait_for(r".*started TCP listener on 127\.0\.0\.1:\d+")
        proc.started()
        port = int(line.rsplit(":", 1)[1])
        assert port != 0
        pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/")
                                ).close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_default_listener_takes_ipv4_and_ipv6_with_rabbitmqs_names():
    """Without --host Leveret listens as RabbitMQ's bare-port listener does, on [::] dual-stack:
    amqplib's `amqp://[::1]` test (and Node's `localhost`, which may resolve to ::1 first)
    reach it. Connections are named as RabbitMQ names them (checked on the local RabbitMQ):
    an IPv4 client as plain IPv4, not ::ffff:127.0.0.1, an IPv6 one in brackets."""
    api_port = free_port()
    with LeveretProcess("--management-port", str(api_port), host=None) as proc:
        line = proc.wait_for(r".*started TCP listener on .*")
        assert line.endswith(f"started TCP listener on [::]:{proc.port}")
        proc.started()
        names = {}
        for family, host in (("v4", "127.0.0.1"), ("v6", "[::1]")):
            params = pika.URLParameters(f"amqp://guest:guest@{host}:{proc.port}/")
            params.client_properties = {"connection_name": family}
            conn = pika.BlockingConnection(params)
            local = conn._impl._transport._sock.getsockname()  # the client's own end
            names[family] = (f"{host}:{local[1]} -> {host}:{proc.port}", conn)
        for name, _conn in names.values():
            proc.wait_for(rf".*accepting AMQP connection <0\.\d+\.0> \({re.escape(name)}\)")
        api = API(f"http://127.0.0.1:{api_port}")
        listed = {c["client_properties"]["connection_name"]: (c["name"], c["peer_host"])
                  for c in api.json("GET", "/api/connections")}
        assert listed == {"v4": (names["v4"][0], "127.0.0.1"), "v6": (names["v6"][0], "::1")}
        for _, conn in names.values():
            conn.close()


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
    assert "Traceback" not in proc.output()


def test_port_in_use_is_one_line_and_exit_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "leveret", "--host", "127.0.0.1",
                              "--port", str(port), "--in-memory", "--no-management",
                              "--no-prometheus"], capture_output=True, text=True,
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
    assert "[debug]" in proc.output()


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
    with LeveretProcess(env={"XDG_DATA_HOME": str(tmp_path)}, in_memory=False) as proc:
        proc.wait_for(rf".* data dir +: {re.escape(str(tmp_path / 'leveret'))}")
        proc.started()
        assert (tmp_path / "leveret" / "VERSION").exists()


def test_second_broker_on_the_same_data_dir_is_refused(tmp_path):
    proc, _ = start("--data-dir", str(tmp_path))
    try:
        out = subprocess.run([sys.executable, "-m", "leveret", "--port", str(free_port()),
                              "--data-dir", str(tmp_path), "--no-management",
                              "--no-prometheus"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 1
        assert "in use by another leveret" in out.stderr and "Traceback" not in out.stderr
    finally:
        stop(proc)


def test_incompatible_data_dir_is_refused(tmp_path):
    (tmp_path / "VERSION").write_text("leveret-store 99\n")
    out = subprocess.run([sys.executable, "-m", "leveret", "--port", str(free_port()),
                          "--data-dir", str(tmp_path), "--no-management", "--no-prometheus"],
                         capture_output=True, text=True, timeout=30)
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

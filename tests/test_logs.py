"""What `leveret` logs at the default level, compared line for line with RabbitMQ's own log
for the same client actions: connections accepted, named, authenticated and closed, channel
errors with their code and text, refused logins and vhosts; the memory alarm; JSON output;
nothing per message."""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import time
import uuid

import pika
import pika.exceptions
import pytest

from _proc import STARTED, LeveretProcess
from conftest import rabbitmq_available

LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d) \[(\w+)\] (<[\d.]+>) (.*)")


def records(lines: list[str]) -> list[tuple[str, str, str]]:
    """(level, pid, message) per log record: a message of several lines repeats the prefix
    on each, so consecutive lines with the same prefix are one record."""
    out: list[tuple[str, str, str]] = []
    last = None
    for line in lines:
        m = LINE.fullmatch(line)
        assert m, f"not in RabbitMQ's log format: {line!r}"
        prefix = m.group(1, 2, 3)
        if prefix == last:
            level, pid, text = out[-1]
            out[-1] = (level, pid, f"{text}\n{m.group(4)}")
        else:
            out.append((m.group(2), m.group(3), m.group(4)))
        last = prefix
    return out


BAD_USER = "ops-log-test-no-such-user"
BAD_VHOST = "ops-log-test-no-such-vhost"


def scenario(port: int) -> list[int]:
    """The client actions whose log lines are compared; returns the client ports used."""
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    used = []
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": "ops-log-test"}
    conn = pika.BlockingConnection(params)
    used.append(conn._impl._transport._sock.getsockname()[1])
    ch = conn.channel()
    ch.basic_ack(99)  # unknown delivery tag: 406, seen on the next call
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare("x", passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        conn.channel().queue_declare("ops-no-such-queue", passive=True)
    conn.close()

    conn = pika.BlockingConnection(pika.URLParameters(url))
    sock = conn._impl._transport._sock
    used.append(sock.getsockname()[1])
    sock.shutdown(socket.SHUT_RDWR)  # gone without connection.close

    for bad in (f"amqp://{BAD_USER}:wrong@127.0.0.1:{port}/",
                f"amqp://guest:guest@127.0.0.1:{port}/{BAD_VHOST}"):
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.URLParameters(bad))
    return used


def normalise(recs: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Pids numbered in the order their connections were accepted, client and server
    addresses replaced."""
    pids: dict[str, str] = {}
    for _level, _pid, text in recs:
        if text.startswith("accepting AMQP connection"):
            pids.setdefault(PID.findall(text)[0], f"<C{len(pids) + 1}>")
    out = []
    for level, _pid, text in recs:
        text = PID.sub(lambda m: pids.get(m.group(0), "<?>"), text)
        text = re.sub(r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+", "CLIENT -> SERVER", text)
        out.append((level, text))
    return out


PID = re.compile(r"<\d+\.\d+\.\d+>")


def connection_records(recs: list[tuple[str, str, str]],
                       markers: list[str]) -> list[tuple[str, str, str]]:
    """The records of the connections the scenario made, in order: each connection is found
    by a marker its lines contain (its client port, its unique user or vhost name), then all
    its records by its pid (other clients of a shared RabbitMQ log lines in between)."""
    pids = []
    for marker in markers:
        rec = next(r for r in recs if marker in r[2])
        pids.append(PID.findall(rec[2])[0])
    return [r for r in recs if PID.findall(r[2])[:1] and PID.findall(r[2])[0] in pids]


def markers(ports: list[int]) -> list[str]:
    return [f"127.0.0.1:{port} ->" for port in ports] + [
        f"user '{BAD_USER}' - invalid credentials", f"vhost {BAD_VHOST} not found"]


def rabbitmq_log() -> str | None:
    paths = [p for p in glob.glob("/var/log/rabbitmq/rabbit@*.log")
             if not p.endswith("_upgrade.log") and os.access(p, os.R_OK)]
    return paths[0] if len(paths) == 1 else None


EXPECTED_RECORDS = 15  # what the scenario makes both brokers log


@pytest.mark.rabbitmq
def test_connection_and_channel_lines_are_rabbitmqs():
    path = rabbitmq_log()
    if not rabbitmq_available() or path is None:
        pytest.skip("needs a RabbitMQ on localhost:5672 and its log file readable")
    with open(path) as f:
        f.seek(0, os.SEEK_END)
        offset = f.tell()
    ports = scenario(5672)
    deadline = time.monotonic() + 10
    while True:  # RabbitMQ writes its log file on its own schedule
        with open(path) as f:
            f.seek(offset)
            theirs = records([ln for ln in f.read().splitlines() if ln])
        try:
            theirs = connection_records(theirs, markers(ports))
        except StopIteration:
            theirs = []
        if len(theirs) >= EXPECTED_RECORDS or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    with LeveretProcess() as proc:
        proc.started()
        ports = scenario(proc.port)
        proc.wait_for(r".*closing AMQP connection .*, vhost: 'none', user: 'guest'\)")
    ours = connection_records(records(proc.lines), markers(ports))

    # RabbitMQ's channel processes log beside the connection's: lines of one connection may
    # come in another order there (Leveret's order is checked below)
    assert sorted(normalise(ours)) == sorted(normalise(theirs))
    assert len(ours) == EXPECTED_RECORDS


def test_the_lines_leveret_writes_for_a_connection():
    with LeveretProcess() as proc:
        proc.started()
        ports = scenario(proc.port)
        proc.wait_for(r".*closing AMQP connection .*, vhost: 'none', user: 'guest'\)")
    got = normalise(connection_records(records(proc.lines), markers(ports)))
    assert got[:4] == [
        ("info", "accepting AMQP connection <C1> (CLIENT -> SERVER)"),
        ("info", "connection <C1> (CLIENT -> SERVER) has a client-provided name: ops-log-test"),
        ("info", "connection <C1> (CLIENT -> SERVER - ops-log-test): user 'guest' "
                 "authenticated and granted access to vhost '/'"),
        ("error", "Channel error on connection <C1> (CLIENT -> SERVER, vhost: '/', user: "
                  "'guest'), channel 1:\noperation basic.ack caused a channel exception "
                  "precondition_failed: unknown delivery tag 99"),
    ]
    assert ("info", "closing AMQP connection <C1> (CLIENT -> SERVER - ops-log-test, vhost: "
                    "'/', user: 'guest')") in got
    assert ("warning", "closing AMQP connection <C2> (CLIENT -> SERVER, vhost: '/', user: "
                       "'guest'):\nclient unexpectedly closed TCP connection") in got
    assert ("error", "Error on AMQP connection <C3> (CLIENT -> SERVER, state: starting):\n"
                     f"PLAIN login refused: user '{BAD_USER}' - invalid credentials") in got
    assert ("error", "Error on AMQP connection <C4> (CLIENT -> SERVER, user: 'guest', state: "
                     f"opening):\nvhost {BAD_VHOST} not found") in got


def test_a_tcp_health_check_is_not_logged_at_info():
    with LeveretProcess() as proc:
        proc.started()
        socket.create_connection(("127.0.0.1", proc.port)).close()
        conn = pika.BlockingConnection(
            pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{proc.port}/"))
        conn.close()
        proc.wait_for(r".*closing AMQP connection <0\.2\.0> .*")
    assert not any("<0.1.0>" in line for line in proc.lines)


def test_no_line_per_message():
    with LeveretProcess("--log-level", "debug") as proc:
        proc.started()
        before = len(proc.lines)
        conn = pika.BlockingConnection(
            pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{proc.port}/"))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("many")
        for i in range(300):
            ch.basic_publish("", "many", b"x" * i)
        for _ in range(300):
            method, _props, _body = ch.basic_get("many")
            ch.basic_ack(method.delivery_tag)
        conn.close()
        proc.wait_for(r".*closing AMQP connection <0\.1\.0> .*")
    lines = [ln for ln in proc.lines[before:] if "<0.1.0>" in ln]
    # accepted, tuned (debug), authenticated, closing: 4 lines whatever the message count
    assert len(lines) == 4, lines


def test_memory_alarm_set_and_cleared():
    """vm_memory_monitor's and rabbit_alarm's lines; the watermark is on the process's RSS,
    so a limit of 1000 bytes is passed at once. The alarm clearing after a drain is in
    test_resource_alarms.py (a real RSS going down)."""
    with LeveretProcess("--memory-high-watermark", "1000") as proc:
        proc.wait_for(r".*Memory high watermark set to 0 MiB \(1000 bytes\) of \d+ MiB "
                      r"\(\d+ bytes\) total")
        proc.started()
        proc.wait_for(r".*\[info\] <0\.0\.0> vm_memory_high_watermark set\. Memory used:\d+ "
                      r"allowed:1000")
        set_line = proc.wait_for(r".*memory resource limit alarm set on node leveret@.*")
        assert "[warning] <0.0.0>" in set_line
        start = proc.lines.index(set_line)
        assert proc.lines[start + 3].endswith(
            "*** Publishers will be blocked until this alarm clears ***")
        url = f"amqp://guest:guest@127.0.0.1:{proc.port}/"
        blocked: list[str] = []
        publisher = pika.BlockingConnection(pika.URLParameters(url))
        publisher.add_on_connection_blocked_callback(
            lambda _c, frame: blocked.append(frame.method.reason))
        publisher.channel().basic_publish("", "nowhere", b"x")
        for _ in range(200):
            if blocked:
                break
            publisher.process_data_events(time_limit=0.05)
        assert blocked == ["low on memory"]
        proc.stop()  # the blocked connection is closed by the shutdown


def test_json_log_format():
    name = f"json-{uuid.uuid4().hex[:6]}"
    with LeveretProcess("--log-format", "json") as proc:
        proc.wait_for(STARTED)  # testcontainers' regex matches the JSON line as well
        params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{proc.port}/")
        params.client_properties = {"connection_name": name}
        pika.BlockingConnection(params).close()
        proc.wait_for(r".*closing AMQP connection.*")
    entries = [json.loads(line) for line in proc.lines]
    for entry in entries:
        assert {"time", "level", "msg", "pid"} <= set(entry), entry
        assert LINE.fullmatch(f"{entry['time']} [{entry['level']}] {entry['pid']} x"), entry
    messages = [e["msg"] for e in entries]
    assert "Server startup complete; 0 plugins started." in messages
    opened = next(e for e in entries if "authenticated and granted access" in e["msg"])
    assert opened["level"] == "info"
    assert opened["pid"] == "<0.1.0>"
    assert (opened["user"], opened["vhost"], opened["connection_name"]) == ("guest", "/", name)
    assert re.fullmatch(r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+", opened["connection"])


def connect_when_listening(port: int, timeout: float = 15) -> pika.BlockingConnection:
    """For a broker told to log nothing at info: no start-up line to wait for (as with
    RabbitMQ at that level), so try until the port answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/"))


def test_log_level_warning_hides_connection_lines():
    with LeveretProcess("--log-level", "warning") as proc:
        conn = connect_when_listening(proc.port)
        ch = conn.channel()
        ch.basic_ack(7)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare("x", passive=True)
        conn.close()
        proc.wait_for(r".*\[error\] <0\.2\.0> Channel error on connection.*")
    assert not any("[info]" in line for line in proc.lines)

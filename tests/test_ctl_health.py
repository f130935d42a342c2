"""Health checks against a running Leveret, as containers and CI jobs use them: the compose
healthcheck `rabbitmq-diagnostics -q ping` (0 when up, non-zero when down), `rabbitmqctl
await_startup`, testcontainers' wait for `Server startup complete` with the installed
`leveret` script, the alarm checks with a real memory alarm, `status` and `listeners`, and the
README's one-line symlinks. Compared with rabbitmq-diagnostics on the local RabbitMQ where it
is there."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from _proc import STARTED, LeveretProcess, console_script
from conftest import free_port
from ctl_helpers import Run, leveret_ctl_path, rabbitmq_diagnostics, rabbitmq_tools_work, run

from rawamqp import blocked_capable_publisher, flood_until_the_broker_speaks

NODE = re.compile(r"\b(?:leveret|rabbit)@[\w-]+")
LISTENER = re.compile(r"Interface: (\S+), port: (\d+), protocol: (\S+), purpose: (.*)")


def diagnostics(links: Path, url: str, *args: str) -> Run:
    return run([str(links / "rabbitmq-diagnostics"), "--management-url", url, *args])


def ctl(links: Path, url: str, *args: str) -> Run:
    return run([str(links / "rabbitmqctl"), "--management-url", url, *args])


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("links")
    for name in ("rabbitmqctl", "rabbitmq-diagnostics"):
        (path / name).symlink_to(leveret_ctl_path())
    return path


class Running:
    """A `leveret` process with its management API and metrics on free ports."""

    def __init__(self, *args: str) -> None:
        self.management, self.prometheus = free_port(), free_port()
        self.proc = LeveretProcess("--management-port", str(self.management),
                                   "--prometheus-port", str(self.prometheus), *args,
                                   script=True)
        self.url = f"http://guest:guest@127.0.0.1:{self.management}"
        self.amqp = f"amqp://guest:guest@127.0.0.1:{self.proc.port}/"


@pytest.fixture(scope="module")
def leveret() -> Iterator[Running]:
    broker = Running()
    with broker.proc:
        broker.proc.started()
        yield broker


# ---------------------------------------------------------------------- start-up and ping

def test_testcontainers_wait_then_connect_with_the_installed_script():
    # testcontainers waits for `.*Server startup complete.*` and connects at once
    broker = Running()
    with broker.proc as proc:
        line = proc.wait_for(STARTED)
        conn = pika.BlockingConnection(pika.URLParameters(broker.amqp))
        ch = conn.channel()
        ch.queue_declare("tc")
        ch.basic_publish("", "tc", b"ready")
        assert ch.basic_get("tc", auto_ack=True)[2] == b"ready"
        conn.close()
    assert line.endswith("Server startup complete; 4 plugins started.")
    plugins = proc.lines[proc.lines.index(line) + 1:proc.lines.index(line) + 5]
    assert [p.rsplit(" * ", 1)[1] for p in plugins] == [
        "rabbitmq_management", "rabbitmq_management_agent", "rabbitmq_web_dispatch",
        "rabbitmq_prometheus"]


def test_compose_healthcheck_ping_is_0_when_up_and_69_when_down(links):
    broker = Running()
    with broker.proc as proc:
        proc.started()
        up = diagnostics(links, broker.url, "-q", "ping")
        assert (up.code, up.out, up.err) == (0, "Ping succeeded\n", "")
        for check in (["-q", "check_running"], ["-q", "check_port_connectivity"],
                      ["-q", "check_local_alarms"]):
            assert diagnostics(links, broker.url, *check).code == 0, check
    assert proc.proc.returncode == 0
    down = diagnostics(links, broker.url, "-q", "ping")
    assert down.code == 69 and down.out == ""
    assert down.err == (f"Error:\nFailed to connect and authenticate to the broker at "
                        f"http://127.0.0.1:{broker.management} in 60000 ms\n")
    for args in (["-q", "check_running"], ["-q", "status"], ["-q", "list_queues"]):
        gone = diagnostics(links, broker.url, *args)
        assert gone.code == 69 and gone.err.startswith("Error:\n"), args


def test_await_startup_waits_for_a_starting_broker(links):
    broker = Running()
    with broker.proc:
        # no wait for the start-up line: await_startup is what a CI step waits with
        done = ctl(links, broker.url, "await_startup", "-t", "60")
        assert (done.code, done.out, done.err) == (0, "", "")
        # the API answers once AMQP listens: a client connects at once
        pika.BlockingConnection(pika.URLParameters(broker.amqp)).close()
    nobody = ctl(links, f"http://guest:guest@127.0.0.1:{free_port()}", "await_startup",
                 "-t", "1")
    assert nobody.code == 69 and "did not start in 1 seconds" in nobody.err


# ---------------------------------------------------------------------- what it reports

def test_checks_and_listeners(leveret, links):
    url = leveret.url
    node = NODE.search(diagnostics(links, url, "-q", "check_running").out)
    assert node and node.group(0).startswith("leveret@")
    name = node.group(0)
    assert diagnostics(links, url, "check_running").out == (
        f"Checking if RabbitMQ is running on node {name} ...\n"
        f"RabbitMQ on node {name} is fully booted and running\n")
    assert diagnostics(links, url, "check_local_alarms").out == (
        f"Asking node {name} to report any local resource alarms ...\n"
        f"Node {name} reported no local alarms\n")
    assert diagnostics(links, url, "-q", "check_alarms").out == (
        f"Node {name} reported no alarms, local or clusterwide\n")
    assert diagnostics(links, url, "-s", "check_alarms").out == ""
    assert diagnostics(links, url, "-q", "server_version").out == "3.10.8\n"
    listed = [LISTENER.fullmatch(line).groups()  # type: ignore[union-attr]
              for line in diagnostics(links, url, "-q", "listeners").out.splitlines()]
    assert listed == [
        ("127.0.0.1", str(leveret.proc.port), "amqp", "AMQP 0-9-1 and AMQP 1.0"),
        ("127.0.0.1", str(leveret.management), "http", "HTTP API"),
        ("127.0.0.1", str(leveret.prometheus), "http/prometheus",
         "Prometheus exporter API over HTTP")]
    connected = diagnostics(links, url, "-q", "check_port_connectivity")
    assert connected.out == (f"Successfully connected to ports {leveret.proc.port}, "
                             f"{leveret.management}, {leveret.prometheus} on node {name}.\n")


def test_status(leveret, links):
    out = ctl(links, leveret.url, "-q", "status")
    assert out.code == 0
    text = out.out
    assert f"OS PID: {leveret.proc.proc.pid}\n" in text
    assert "RabbitMQ version: 3.10.8\n" in text
    assert "Enabled plugins:\n\n * rabbitmq_management\n * rabbitmq_prometheus\n" in text
    assert "Log file(s)\n\n * <stdout>\n" in text
    assert "Alarms\n\n(none)\n" in text
    assert (f"Interface: 127.0.0.1, port: {leveret.prometheus}, protocol: http/prometheus, "
            "purpose: Prometheus exporter API over HTTP\n") in text
    status = json.loads(ctl(links, leveret.url, "status", "--formatter", "json").out)
    assert status["pid"] == leveret.proc.proc.pid
    assert [x["protocol"] for x in status["listeners"]] == ["amqp", "http", "http/prometheus"]


def test_status_names_the_config_file(links, tmp_path):
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text("heartbeat = 30\n")
    broker = Running("--config", str(conf))
    with broker.proc as proc:
        proc.started()
        out = ctl(links, broker.url, "-q", "status").out
    assert f"Config files\n\n * {conf}\n" in out


def test_memory_alarm_fails_the_alarm_checks_until_it_clears(links):
    """A real memory alarm: the broker's RSS past an 80 MiB watermark after a flood nobody
    consumes, cleared when a purge gives the memory back."""
    broker = Running("--memory-high-watermark", "80MiB")
    with broker.proc as proc:
        proc.started()
        conn = pika.BlockingConnection(pika.URLParameters(broker.amqp))
        ch = conn.channel()
        ch.queue_declare("fill")
        pub = blocked_capable_publisher("127.0.0.1", proc.port)
        flood_until_the_broker_speaks(pub, "fill", b"x" * 65536)  # connection.blocked
        start = proc.lines.index(proc.wait_for(r".*memory resource limit alarm set.*"))
        name = NODE.search(proc.lines[start]).group(0)  # type: ignore[union-attr]
        for check in ("check_local_alarms", "check_alarms"):
            failed = diagnostics(links, broker.url, "-q", check)
            assert (failed.code, failed.out, failed.err) == (
                69, "", f"Error:\nMemory alarm on node {name}\n"), check
        as_json = diagnostics(links, broker.url, "check_alarms", "--formatter", "json")
        assert as_json.code == 69
        assert json.loads(as_json.out) == {"result": "error",
                                           "local": [f"Memory alarm on node {name}"],
                                           "global": [], "message": f"Node {name} reported "
                                                                    "alarms"}
        assert "Alarms\n\nmemory\n" in ctl(links, broker.url, "-q", "status").out
        ch.queue_purge("fill")
        proc.wait_for(r".*memory resource limit alarm cleared.*", start=start)
        assert diagnostics(links, broker.url, "-q", "check_local_alarms").code == 0
        pub.close()
        conn.close()


@pytest.mark.rabbitmq
@pytest.mark.parametrize("args", [
    ["ping"], ["-q", "ping"], ["ping", "--formatter", "json"], ["-s", "ping"],
    ["check_running"], ["-q", "check_running"], ["check_running", "--formatter", "json"],
    ["is_running"], ["is_running", "--formatter", "json"],
    ["check_local_alarms"], ["-q", "check_local_alarms"],
    ["check_local_alarms", "--formatter", "json"], ["-s", "check_local_alarms"],
    ["check_alarms"], ["check_alarms", "--formatter", "json"],
    ["server_version"], ["server_version", "--formatter", "json"],
])
def test_diagnostics_match_rabbitmq(leveret, links, args):
    if not rabbitmq_tools_work():
        pytest.skip("needs RabbitMQ's rabbitmq-diagnostics on this machine")
    ours, theirs = diagnostics(links, leveret.url, *args), rabbitmq_diagnostics(*args)
    assert (ours.code, ours.err) == (theirs.code, theirs.err)
    ours_lines = NODE.sub("NODE", ours.out).splitlines()
    theirs_lines = NODE.sub("NODE", theirs.out).splitlines()
    if args == ["ping"]:  # the banner says what is checked: epmd there, the API here
        ours_lines, theirs_lines = ours_lines[1:], theirs_lines[1:]
    assert ours_lines == theirs_lines


@pytest.mark.rabbitmq
def test_listeners_match_rabbitmq_but_for_clustering(leveret, links):
    if not rabbitmq_tools_work():
        pytest.skip("needs RabbitMQ's rabbitmq-diagnostics on this machine")

    def kinds(text: str) -> list[tuple[str, str]]:
        found = [LISTENER.fullmatch(line) for line in text.splitlines()]
        return sorted((m.group(3), m.group(4)) for m in found if m and m.group(3)
                      != "clustering")  # Erlang distribution: no such thing here

    assert kinds(diagnostics(links, leveret.url, "-q", "listeners").out) == \
        kinds(rabbitmq_diagnostics("-q", "listeners").out)
    ours = json.loads(diagnostics(links, leveret.url, "listeners", "--formatter", "json").out)
    theirs = json.loads(rabbitmq_diagnostics("listeners", "--formatter", "json").out)
    assert set(ours) == set(theirs) and ours["result"] == theirs["result"] == "ok"


# ---------------------------------------------------------------------- the README's links

def readme_link_line() -> str:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    lines = [ln for ln in readme.read_text().splitlines()
             if "ln -sf" in ln and "leveret-ctl" in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_readmes_symlink_line_makes_rabbitmqctl_work(leveret, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    line = readme_link_line()
    assert "/usr/local/bin/" in line
    scripts = os.path.dirname(console_script("leveret-ctl"))
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(["bash", "-c", line.replace("/usr/local/bin/", f"{bin_dir}/")],
                   check=True, env=env)
    assert sorted(p.name for p in bin_dir.iterdir()) == ["rabbitmq-diagnostics", "rabbitmqctl"]
    # a CI job's PATH with the links first, the broker's API in LEVERET_MANAGEMENT_URL
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
           "LEVERET_MANAGEMENT_URL": leveret.url}
    conn = pika.BlockingConnection(pika.URLParameters(leveret.amqp))
    conn.channel().queue_declare("via-readme-link")
    listed = subprocess.run(["rabbitmqctl", "list_queues", "name", "messages"],
                            capture_output=True, text=True, env=env, timeout=60)
    conn.close()
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == ("Timeout: 60.0 seconds ...\nListing queues for vhost / ...\n"
                             "name\tmessages\nvia-readme-link\t0\n")
    ping = subprocess.run(["rabbitmq-diagnostics", "-q", "ping"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert (ping.returncode, ping.stdout) == (0, "Ping succeeded\n")
    # each name offers its own tool's commands, as RabbitMQ's tools do
    wrong = subprocess.run(["rabbitmq-diagnostics", "add_user", "a", "b"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert wrong.returncode == 64 and "Command 'add_user' not found" in wrong.stderr

"""Definitions loaded at boot (`load_definitions`, `management.load_definitions`,
`definitions.local.path` in rabbitmq.conf; `--definitions` on the command line), with
RabbitMQ 3.10's rule that they replace the default user and vhost on a first boot
(rabbit:maybe_insert_default_data), and the log lines RabbitMQ writes for an import: at boot
and through the management API (compared with RabbitMQ's own log where it is readable)."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest

from _proc import LeveretProcess
from conftest import free_port, rabbitmq_available
from rabbit_hash import definitions_user

SEED = "Will seed default virtual host and user..."
NO_SEED = "Will not seed default virtual host and user: have definitions to load..."


def app_definitions(vhost: str = "dev", user: str = "app") -> dict[str, object]:
    return {"users": [definitions_user(user, "s3cret")],
            "vhosts": [{"name": vhost}],
            "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*",
                             "read": ".*"}],
            "queues": [{"name": "jobs", "vhost": vhost, "durable": True, "auto_delete": False,
                        "arguments": {}}]}


def write(path: Path, content: object) -> str:
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return str(path)


def messages(proc: LeveretProcess) -> list[str]:
    """The text of each log line, without time, level and pid."""
    return [line.split("> ", 1)[1] for line in proc.lines if "> " in line]


def login(port: int, vhost: str, user: str, password: str) -> int | None:
    """None if the login works, else 403 (refused) or 530 (vhost refused or missing)."""
    params = pika.ConnectionParameters("127.0.0.1", port, vhost,
                                       pika.PlainCredentials(user, password))
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError:
        return 403
    except pika.exceptions.ProbableAccessDeniedError:
        return 530
    conn.channel().queue_declare("jobs", passive=True) if vhost == "dev" else None
    conn.close()
    return None


@pytest.mark.parametrize("key", ["load_definitions", "management.load_definitions",
                                 "definitions.local.path"])
def test_definitions_in_the_file_replace_the_default_user(tmp_path, key):
    defs = write(tmp_path / "defs.json", app_definitions())
    extra = "definitions.import_backend = local_filesystem\n" \
        if key.startswith("definitions.") else ""
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(f"{extra}{key} = {defs}\n")
    with LeveretProcess("--config", str(conf)) as proc:
        proc.started()
        assert login(proc.port, "dev", "app", "s3cret") is None  # and its queue is there
        assert login(proc.port, "/", "guest", "guest") == 403  # no default user
        assert login(proc.port, "dev", "app", "wrong") == 403
    lines = messages(proc)
    start = lines.index(NO_SEED)
    assert lines[start:start + 7] == [
        NO_SEED, f"Applying definitions from file at '{defs}'",
        "Asked to import definitions. Acting user: rmq-internal",
        "Importing concurrently 1 users...", "Importing concurrently 1 vhosts...",
        "Importing concurrently 1 permissions...", "Importing concurrently 1 queues..."]
    assert SEED not in lines


def test_a_first_boot_without_definitions_seeds_the_default_user():
    with LeveretProcess() as proc:
        proc.started()
    assert SEED in messages(proc) and NO_SEED not in messages(proc)


def test_both_keys_are_loaded(tmp_path):
    first = write(tmp_path / "a.json", app_definitions("dev", "app"))
    second = write(tmp_path / "b.json", app_definitions("ops", "ops"))
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(f"load_definitions = {first}\nmanagement.load_definitions = {second}\n")
    with LeveretProcess("--config", str(conf)) as proc:
        proc.started()
        assert login(proc.port, "dev", "app", "s3cret") is None
        assert login(proc.port, "ops", "ops", "s3cret") is None


def test_the_command_line_wins_over_the_file(tmp_path):
    in_file = write(tmp_path / "a.json", app_definitions("dev", "app"))
    on_line = write(tmp_path / "b.json", app_definitions("ops", "ops"))
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(f"load_definitions = {in_file}\n")
    with LeveretProcess("--config", str(conf), "--definitions", on_line) as proc:
        proc.started()
        assert login(proc.port, "ops", "ops", "s3cret") is None
        assert login(proc.port, "dev", "app", "s3cret") == 403  # the file's were not loaded


def test_a_directory_is_loaded_file_by_file_in_name_order(tmp_path):
    folder = tmp_path / "definitions.d"
    folder.mkdir()
    defs = app_definitions()
    # the vhost must exist before the permissions: 10-... is read before 20-...
    write(folder / "20-users.json", {"users": defs["users"], "permissions": defs["permissions"],
                                     "queues": defs["queues"]})
    write(folder / "10-vhosts.json", {"vhosts": defs["vhosts"]})
    with LeveretProcess("--definitions", str(folder)) as proc:
        proc.started()
        assert login(proc.port, "dev", "app", "s3cret") is None
    lines = messages(proc)
    assert f"Applying definitions from directory {folder}" in lines
    files = [ln for ln in lines if ln.startswith("Applying definitions from file")]
    assert files == [f"Applying definitions from file at '{folder / '10-vhosts.json'}'",
                     f"Applying definitions from file at '{folder / '20-users.json'}'"]


def test_definitions_without_users_leave_nobody_able_to_log_in(tmp_path):
    defs = write(tmp_path / "defs.json", {"vhosts": [{"name": "/"}]})
    with LeveretProcess("--definitions", defs) as proc:
        proc.started()
        assert login(proc.port, "/", "guest", "guest") == 403
    assert any("[warning]" in line and "no user can log in" in line for line in proc.lines)


def test_a_data_dir_keeps_its_users_when_definitions_come_later(tmp_path):
    data = tmp_path / "data"
    with LeveretProcess("--data-dir", str(data), in_memory=False) as proc:
        proc.started()
    defs = write(tmp_path / "defs.json", app_definitions())
    with LeveretProcess("--data-dir", str(data), "--definitions", defs,
                        in_memory=False) as proc:
        proc.started()
        # not a first boot: guest stays, the definitions add to it (as RabbitMQ)
        assert login(proc.port, "/", "guest", "guest") is None
        assert login(proc.port, "dev", "app", "s3cret") is None
    assert SEED not in messages(proc) and NO_SEED not in messages(proc)


def test_a_definitions_error_at_boot_is_one_line(tmp_path):
    # RabbitMQ refuses permissions for a user that is not there; so does the import
    defs = write(tmp_path / "defs.json", {"vhosts": [{"name": "dev"}], "permissions": [
        {"user": "ghost", "vhost": "dev", "configure": ".*", "write": ".*", "read": ".*"}]})
    with LeveretProcess("--definitions", defs) as proc:
        assert proc.proc.wait(30) == 1
    assert proc.lines[-1] == f"leveret: definitions file {defs}: user 'ghost' does not exist"
    assert not any("Traceback" in line for line in proc.lines)


# ---------------------------------------------------------------------- import through the API

def post_definitions(base: str, defs: dict[str, object], vhost: str | None = None) -> int:
    path = "/api/definitions" + (f"/{vhost}" if vhost else "")
    req = urllib.request.Request(base + path, data=json.dumps(defs).encode(), method="POST",
                                 headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q=",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.status)


def api_import(tag: str) -> dict[str, object]:
    """One of each category RabbitMQ counts, with distinct numbers."""
    vhost, user = f"ops-defs-{tag}", f"ops-defs-u-{tag}"
    return {
        "users": [definitions_user(user, "pw", ())],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "topic_permissions": [{"user": user, "vhost": vhost, "exchange": "amq.topic",
                               "write": ".*", "read": ".*"}],
        "exchanges": [{"name": f"x{i}", "vhost": vhost, "type": "fanout", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}
                      for i in range(3)],
        "global_parameters": [{"name": f"ops-defs-gp-{tag}", "value": "x"}],
        "policies": [{"vhost": vhost, "name": "p", "pattern": "^none$", "apply-to": "queues",
                      "definition": {"max-length": 1}, "priority": 0}],
        "queues": [{"name": f"q{i}", "vhost": vhost, "durable": True, "auto_delete": False,
                    "arguments": {}} for i in range(2)],
        "bindings": [{"source": f"x{i}", "vhost": vhost, "destination": "q0",
                      "destination_type": "queue", "routing_key": "", "arguments": {}}
                     for i in range(3)] + [
            {"source": "x0", "vhost": vhost, "destination": "q1",
             "destination_type": "queue", "routing_key": "", "arguments": {}}],
    }


IMPORTING = re.compile(r".*\[info\] (<[\d.]+>) (Importing (?:concurrently|sequentially) .*)")
EXPECTED = ["Importing concurrently 1 users...", "Importing concurrently 1 vhosts...",
            "Importing concurrently 1 permissions...",
            "Importing concurrently 1 topic permissions...",
            "Importing concurrently 3 exchanges...",
            "Importing sequentially 1 global runtime parameters...",
            "Importing sequentially 1 policies...", "Importing concurrently 2 queues...",
            "Importing concurrently 4 bindings..."]


def test_an_import_through_the_api_is_logged_as_rabbitmq_logs_it():
    management = free_port()
    with LeveretProcess("--management-port", str(management)) as proc:
        proc.started()
        base = f"http://127.0.0.1:{management}"
        assert post_definitions(base, api_import("lev")) == 204
        vhost_only = {"queues": [{"name": "only", "durable": True, "auto_delete": False,
                                  "arguments": {}}]}
        assert post_definitions(base, vhost_only, "ops-defs-lev") == 204
        proc.wait_for(r".*Asked to import definitions for a virtual host.*")
    found = [m.group(2) for m in map(IMPORTING.fullmatch, proc.lines) if m]
    assert found == EXPECTED
    assert messages(proc)[-3] == (  # then "asked to stop", "stopped"
        'Asked to import definitions for a virtual host. Virtual host: <<"ops-defs-lev">>, '
        'acting user: <<"guest">>')


@pytest.mark.rabbitmq
def test_the_import_lines_are_rabbitmqs():
    log = [p for p in Path("/var/log/rabbitmq").glob("rabbit@*.log")
           if not p.name.endswith("_upgrade.log") and os.access(p, os.R_OK)]
    if not rabbitmq_available() or len(log) != 1:
        pytest.skip("needs a RabbitMQ on localhost:5672 and its log file readable")
    tag = uuid.uuid4().hex[:8]
    offset = log[0].stat().st_size
    defs = api_import(tag)
    try:
        assert post_definitions("http://localhost:15672", defs) == 204
    finally:
        for path in (f"/api/vhosts/ops-defs-{tag}", f"/api/users/ops-defs-u-{tag}",
                     f"/api/global-parameters/ops-defs-gp-{tag}"):
            req = urllib.request.Request("http://localhost:15672" + path, method="DELETE",
                                         headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
            try:
                urllib.request.urlopen(req, timeout=30).close()
            except urllib.error.HTTPError:
                pass  # not created
    deadline = time.monotonic() + 10
    while True:  # RabbitMQ writes its log file on its own schedule
        with open(log[0]) as f:
            f.seek(offset)
            by_pid: dict[str, list[str]] = {}
            for m in map(IMPORTING.fullmatch, f.read().splitlines()):
                if m:
                    by_pid.setdefault(m.group(1), []).append(m.group(2))
        if EXPECTED in by_pid.values() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert EXPECTED in by_pid.values(), by_pid

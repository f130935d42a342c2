"""`leveret-ctl` against RabbitMQ's management API, compared with RabbitMQ's own rabbitmqctl and
rabbitmq-diagnostics on the same node: the same objects must list the same way (columns,
values, headers, banners, json), and the same mistakes give the same messages and exit
codes. Each test works in a vhost (and with users) of its own and removes them."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from ctl_helpers import (
    RABBITMQ_MANAGEMENT,
    build_scene,
    eventually,
    json_rows,
    leveret_ctl,
    leveret_ctl_path,
    management_get,
    normalise,
    rabbitmq_diagnostics,
    rabbitmq_tools_work,
    rabbitmqctl,
    run,
)

pytestmark = [pytest.mark.rabbitmq]


@pytest.fixture(scope="module")
def rabbit() -> None:
    if not rabbitmq_tools_work():
        pytest.skip("needs RabbitMQ's rabbitmqctl and management API on this machine")


@pytest.fixture(scope="module")
def scene(rabbit: None) -> Iterator[str]:
    """A vhost with queues (with arguments, messages), exchanges, bindings, a consumer and a
    named connection with three channels, kept open while the module's tests run."""
    vhost = f"ops-ctl-{uuid.uuid4().hex[:8]}"
    assert rabbitmqctl("-q", "add_vhost", vhost).code == 0
    rabbitmqctl("-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    params.client_properties = {"connection_name": "ctl-test-conn"}
    params.heartbeat = 0  # it idles while the module's tests run
    conn = pika.BlockingConnection(params)
    try:
        build_scene(conn)
        yield vhost
    finally:
        if conn.is_open:
            conn.close()
        rabbitmqctl("-q", "delete_vhost", vhost)


def same_as_rabbitmqctl(args: list[str], keep=None, header: bool = True,
                        replace: dict[str, str] | None = None) -> None:
    def check() -> None:
        theirs = rabbitmqctl(*args)
        ours = leveret_ctl(*args)
        assert (ours.code, ours.err) == (theirs.code, theirs.err)
        assert normalise(ours.out, replace, header, keep) == \
            normalise(theirs.out, replace, header, keep)

    eventually(check)


QUEUE_COLUMNS = ["name", "durable", "auto_delete", "arguments", "policy", "exclusive",
                 "exclusive_consumer_tag", "messages_ready", "messages_unacknowledged",
                 "messages", "messages_ready_ram", "messages_persistent", "message_bytes",
                 "message_bytes_ready", "message_bytes_unacknowledged",
                 "message_bytes_persistent", "head_message_timestamp", "consumers", "state",
                 "type"]


@pytest.mark.parametrize("columns", [[], QUEUE_COLUMNS, ["name,messages,consumers"]])
def test_list_queues(scene, columns):
    same_as_rabbitmqctl(["list_queues", "-p", scene, *columns])


def test_list_queues_json(scene):
    def check() -> None:
        args = ["list_queues", "-p", scene, *QUEUE_COLUMNS, "--formatter", "json"]
        ours, theirs = leveret_ctl(*args), rabbitmqctl(*args)
        assert ours.code == theirs.code == 0
        assert json_rows(ours.out) == json_rows(theirs.out)
        assert ours.out.startswith("[\n{") and ours.out.endswith("}\n]\n")

    eventually(check)


@pytest.mark.parametrize("args", [
    ["list_exchanges", "name", "type", "durable", "auto_delete", "internal", "arguments",
     "policy"],
    ["list_bindings"],
    ["list_consumers", "queue_name", "consumer_tag", "ack_required", "prefetch_count",
     "active", "activity_status", "arguments"],
    ["list_permissions"],
])
def test_vhost_lists(scene, args):
    same_as_rabbitmqctl([args[0], "-p", scene, *args[1:]])


@pytest.mark.parametrize("args", [
    ["list_bindings"],
    ["list_consumers", "queue_name", "consumer_tag", "ack_required", "arguments"],
])
def test_vhost_lists_json(scene, args):
    def check() -> None:
        full = [args[0], "-p", scene, *args[1:], "--formatter", "json"]
        ours, theirs = leveret_ctl(*full), rabbitmqctl(*full)
        assert ours.code == theirs.code == 0
        assert json_rows(ours.out) == json_rows(theirs.out)

    eventually(check)


def test_list_connections_and_channels(scene):
    def in_scene(line: str) -> bool:
        return f"\t{scene}\t" in f"\t{line}\t"

    same_as_rabbitmqctl(["list_connections", "name", "user", "vhost", "peer_host", "ssl",
                         "protocol", "auth_mechanism", "state", "channels", "frame_max",
                         "channel_max", "timeout"], keep=in_scene)
    same_as_rabbitmqctl(["list_channels", "name", "number", "user", "vhost", "transactional",
                         "confirm", "consumer_count", "prefetch_count", "global_prefetch_count",
                         "messages_unacknowledged", "messages_uncommitted",
                         "messages_unconfirmed", "acks_uncommitted"], keep=in_scene)
    listed = leveret_ctl("-q", "list_channels", "vhost", "number").out
    assert sorted(ln for ln in listed.splitlines() if in_scene(ln)) == [
        f"{scene}\t1", f"{scene}\t2", f"{scene}\t3"]


def test_list_connections_json_protocol_and_properties(scene):
    def check() -> None:
        args = ["list_connections", "vhost", "protocol", "client_properties", "--formatter",
                "json"]
        ours = [r for r in json.loads(leveret_ctl(*args).out) if r["vhost"] == scene]
        theirs = [r for r in json.loads(rabbitmqctl(*args).out) if r["vhost"] == scene]
        assert len(ours) == len(theirs) == 1
        assert ours[0]["protocol"] == theirs[0]["protocol"] == [0, 9, 1]
        # the API sorts the properties' names; rabbitmqctl keeps the client's order
        assert sorted(ours[0]["client_properties"]) == sorted(theirs[0]["client_properties"])

    eventually(check)


def test_list_vhosts_and_users(scene):
    same_as_rabbitmqctl(["list_vhosts", "name", "tags", "description", "tracing"],
                        keep=lambda line: line.startswith(scene))
    same_as_rabbitmqctl(["list_users"], keep=lambda line: line.startswith("guest\t"))


@pytest.mark.parametrize("flags", [["-q"], ["--silent"], ["--no-table-headers"]])
def test_quiet_silent_and_headers(scene, flags):
    header = flags == ["-q"]
    same_as_rabbitmqctl(["list_queues", "-p", scene, "name", "durable", *flags],
                        header=header)


def test_csv(scene):
    same_as_rabbitmqctl(["list_exchanges", "-p", scene, "name", "type", "--formatter", "csv"])


# ---------------------------------------------------------------------- commands that change

def twin_names() -> tuple[str, str]:
    """One name for what rabbitmqctl changes, one for leveret-ctl: each tool gets the same
    starting point."""
    tag = uuid.uuid4().hex[:8]
    return f"ops-ctl-r-{tag}", f"ops-ctl-mine-{tag}"


def compare_twins(theirs_args: list[str], ours_args: list[str], theirs_name: str,
                  ours_name: str) -> None:
    theirs, ours = rabbitmqctl(*theirs_args), leveret_ctl(*ours_args)
    assert ours.code == theirs.code, (ours, theirs)
    assert ours.out.replace(ours_name, "NAME").replace("leveret-ctl", "rabbitmqctl") == \
        theirs.out.replace(theirs_name, "NAME")
    assert ours.err.replace(ours_name, "NAME") == theirs.err.replace(theirs_name, "NAME")


def test_user_life_cycle(scene):
    r, mine = twin_names()
    names = {r: "NAME", mine: "NAME"}
    try:
        for step in (["add_user", "{}", "s3cret"],
                     ["add_user", "{}", "again"],  # exists: 70
                     ["set_user_tags", "{}", "monitoring", "management"],
                     ["set_permissions", "-p", scene, "{}", "^ctl-.*", "", ".*"],
                     ["change_password", "{}", "n3w"],
                     ["clear_permissions", "-p", scene, "{}"],
                     ["delete_user", "{}"],
                     ["delete_user", "{}"],  # gone: 67
                     ["set_permissions", "-p", scene, "{}", ".*", ".*", ".*"]):
            compare_twins([a.format(r) for a in step], [a.format(mine) for a in step], r, mine)
            if step[0] == "set_user_tags":
                same_as_rabbitmqctl(["list_users"], replace=names,
                                    keep=lambda line: line.startswith("NAME\t"))
            if step[0] == "set_permissions" and step[-2] == "":
                same_as_rabbitmqctl(["list_permissions", "-p", scene], replace=names)
                # the password survived set_user_tags (the API clears one it is not given)
                pika.BlockingConnection(pika.URLParameters(
                    f"amqp://{mine}:s3cret@127.0.0.1:5672/{scene}")).close()
            if step[:3] == ["change_password", "{}", "n3w"]:
                for name in (r, mine):  # the new password works
                    pika.BlockingConnection(pika.URLParameters(
                        f"amqp://{name}:n3w@127.0.0.1:5672/{scene}")).close()
        users = leveret_ctl("-q", "list_users").out
        assert r not in users and mine not in users
    finally:
        rabbitmqctl("-q", "delete_user", r)
        rabbitmqctl("-q", "delete_user", mine)


def test_vhost_life_cycle(rabbit):
    r, mine = twin_names()
    try:
        for step in (["add_vhost", "{}"], ["add_vhost", "{}"], ["delete_vhost", "{}"],
                     ["delete_vhost", "{}"], ["list_permissions", "-p", "{}"],
                     ["set_permissions", "-p", "{}", "guest", ".*", ".*", ".*"]):
            compare_twins([a.format(r) for a in step], [a.format(mine) for a in step], r, mine)
    finally:
        rabbitmqctl("-q", "delete_vhost", r)
        rabbitmqctl("-q", "delete_vhost", mine)


def test_unknown_vhost_lists_nothing_as_rabbitmqctl_does(rabbit):
    r, mine = twin_names()
    for cmd in ("list_queues", "list_consumers"):
        compare_twins([cmd, "-p", r], [cmd, "-p", mine], r, mine)


def test_purge_and_delete_queue(scene):
    r, mine = twin_names()
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/"
                                                      f"{scene}"))
    ch = conn.channel()
    for name in (r, mine):
        ch.queue_declare(name)
        for _ in range(3):
            ch.basic_publish("", name, b"m")
    conn.close()

    def steps(name: str) -> list[list[str]]:
        return [["purge_queue", "-p", scene, name],
                ["delete_queue", "-p", scene, name, "--if-unused"],
                ["purge_queue", "-p", scene, name],  # gone: 69 "not_found"
                ["delete_queue", "-p", scene, name]]  # gone: 64 "Queue not found"

    for i, (theirs, ours) in enumerate(zip(steps(r), steps(mine))):
        compare_twins(theirs, ours, r, mine)
        if i == 0:
            # delete_queue reports the ready count the API has; RabbitMQ's is refreshed
            # every 5 s: wait for it to see the purge
            eventually(lambda: _assert_ready(scene, mine, 0))


def _assert_ready(vhost: str, queue: str, count: int) -> None:
    try:
        found = management_get(RABBITMQ_MANAGEMENT, f"/queues/{quote(vhost, safe='')}/{queue}")
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"not in the API yet: {exc}") from None
    assert isinstance(found, dict) and found.get("messages_ready") == count


def test_delete_queue_if_empty_refuses_a_queue_with_messages(scene):
    r, mine = twin_names()
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/"
                                                      f"{scene}"))
    ch = conn.channel()
    for name in (r, mine):
        ch.queue_declare(name)
        ch.basic_publish("", name, b"m")
    conn.close()

    def check() -> None:  # the API must have seen the message before it refuses
        compare_twins(["delete_queue", "-p", scene, r, "--if-empty"],
                      ["delete_queue", "-p", scene, mine, "--if-empty"], r, mine)

    eventually(check)
    compare_twins(["delete_queue", "-p", scene, r], ["delete_queue", "-p", scene, mine], r, mine)


@pytest.mark.parametrize("args", [
    ["add_user"], ["add_user", "a", "b", "c"], ["delete_user"], ["list_queues", "bogus"],
    ["list_queues", "name", "bogus,other"], ["set_permissions", "guest", ".*"],
    ["list_users", "name"],
])
def test_usage_errors(rabbit, args):
    theirs, ours = rabbitmqctl(*args), leveret_ctl(*args)
    assert ours.code == theirs.code == 64
    strip = "\x1b[1m", "\x1b[0m"
    expected = theirs.err
    for code in strip:
        expected = expected.replace(code, "")
    # the first lines: the complaint and the arguments given
    assert ours.err.splitlines()[:3] == expected.splitlines()[:3]


def test_unknown_command(rabbit):
    theirs, ours = rabbitmqctl("frobnicate"), leveret_ctl("frobnicate")
    assert ours.code == theirs.code == 64
    assert ours.err.splitlines()[1] == theirs.err.splitlines()[1] == \
        "Command 'frobnicate' not found. "


def test_close_connection_by_the_name_list_connections_shows(scene):
    params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/{scene}")
    conn = pika.BlockingConnection(params)
    port = conn._impl._transport._sock.getsockname()[1]

    def listed() -> str:
        out = leveret_ctl("-q", "list_connections", "pid", "peer_port").out
        names = [ln.split("\t")[0] for ln in out.splitlines() if ln.endswith(f"\t{port}")]
        assert names
        return names[0]

    name = eventually(listed)
    done = leveret_ctl("close_connection", str(name), "maintenance")
    assert (done.code, done.out) == (0, f"Closing connection {name}, reason: maintenance...\n")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.channel()
        conn.process_data_events(2)
    assert info.value.reply_code == 320
    assert info.value.reply_text == "CONNECTION_FORCED - maintenance"
    gone = leveret_ctl("close_connection", str(name), "again")
    assert gone.code == 69 and gone.err.startswith("Error:\n")


def test_export_and_import_definitions(scene, tmp_path, readable_dir):
    exported = tmp_path / "defs.json"
    out = leveret_ctl("export_definitions", str(exported))
    assert (out.code, out.out) == (0, f'Exporting definitions in JSON to a file at '
                                      f'"{exported}" ...\n')
    definitions = json.loads(exported.read_text())
    assert {"name": scene} in [{"name": v["name"]} for v in definitions["vhosts"]]
    assert any(q["name"] == "q-args" and q["vhost"] == scene for q in definitions["queues"])
    piped_out = json.loads(leveret_ctl("export_definitions", "-").out)
    assert scene in [v["name"] for v in piped_out["vhosts"]]

    r, mine = twin_names()
    theirs_file, ours_file = readable_dir / "theirs.json", readable_dir / "ours.json"
    theirs_file.write_text(json.dumps({"vhosts": [{"name": r}]}))
    ours_file.write_text(json.dumps({"vhosts": [{"name": mine}]}))
    try:
        compare_twins(["import_definitions", str(theirs_file)],
                      ["import_definitions", str(ours_file)], str(theirs_file),
                      str(ours_file))
        assert mine in leveret_ctl("-q", "list_vhosts").out
        piped = leveret_ctl("-q", "import_definitions", "-",
                            stdin=json.dumps({"vhosts": [{"name": mine + "-piped"}]}))
        assert piped.code == 0
        assert mine + "-piped" in leveret_ctl("-q", "list_vhosts").out
        missing = leveret_ctl("import_definitions", str(readable_dir / "nope.json"))
        theirs_missing = rabbitmqctl("import_definitions", str(readable_dir / "nope.json"))
        assert missing.code == theirs_missing.code == 65
        bad = leveret_ctl("import_definitions", "-", stdin="not json")
        assert bad.code == 65 and "not JSON" in bad.err
    finally:
        for name in (r, mine, mine + "-piped"):
            rabbitmqctl("-q", "delete_vhost", name)


# ---------------------------------------------------------------------- diagnostics

@pytest.mark.parametrize("args", [["ping"], ["-q", "ping"], ["ping", "--formatter", "json"],
                                  ["check_running"], ["-q", "check_running"],
                                  ["check_running", "--formatter", "json"],
                                  ["-q", "check_port_connectivity"]])
def test_diagnostics(rabbit, tmp_path, args):
    diagnostics = tmp_path / "rabbitmq-diagnostics"
    diagnostics.symlink_to(leveret_ctl_path())
    theirs, ours = rabbitmq_diagnostics(*args), leveret_ctl(*args, program=str(diagnostics))
    assert ours.code == theirs.code == 0
    if args[0] == "ping" and "-q" not in args and "json" not in args:
        assert ours.out.splitlines()[1:] == theirs.out.splitlines()[1:]  # the line we skip
        return                                                           # names epmd
    if "check_port_connectivity" in args:
        # RabbitMQ's CLI also reaches its clustering port, which the API does not list

        def ports(text: str) -> set[str]:
            return set(text.split(" ports ")[1].split(" on ")[0].split(", ")) - {"25672"}

        assert ours.out.startswith("Successfully connected to ports ")
        assert ports(ours.out) == ports(theirs.out)
        return
    assert ours.out == theirs.out


def test_status(rabbit):
    theirs, ours = rabbitmqctl("status"), leveret_ctl("status")
    assert ours.code == theirs.code == 0
    plain = theirs.out.replace("\x1b[1m", "").replace("\x1b[0m", "")
    for line in ours.out.splitlines():
        if line.startswith(("Status of node", "RabbitMQ version", "Node name", "OS PID",
                            " * ", "Interface: ")):
            if "25672" not in line and not line.startswith(" * "):
                assert line in plain.splitlines(), line
    status = json.loads(leveret_ctl("status", "--formatter", "json").out)
    reference = json.loads(rabbitmqctl("status", "--formatter", "json").out)
    assert status["rabbitmq_version"] == reference["rabbitmq_version"]
    assert status["pid"] == reference["pid"]


def test_await_startup(rabbit):
    done = leveret_ctl("await_startup")
    assert (done.code, done.out, done.err) == (0, "", "")


def test_a_broker_that_cannot_be_reached(rabbit, unused_tcp_port_url):
    for args in (["ping"], ["list_queues"], ["-t", "1", "await_startup"], ["status"]):
        done = leveret_ctl(*args, url=unused_tcp_port_url)
        assert done.code == 69, (args, done)
        assert done.err.startswith("Error:\n")


def test_wrong_credentials(rabbit):
    done = leveret_ctl("list_users", url="http://guest:wrong@localhost:15672")
    assert done.code == 69
    assert "401" in done.err


def test_management_url_from_the_environment(rabbit):
    # the flag wins over the environment
    done = leveret_ctl("-q", "list_users", url=RABBITMQ_MANAGEMENT,
                       env={"LEVERET_MANAGEMENT_URL": "http://nobody:x@localhost:1"})
    assert done.code == 0
    env_only = run([leveret_ctl_path(), "-q", "list_users"],
                   env={"LEVERET_MANAGEMENT_URL": RABBITMQ_MANAGEMENT})
    assert env_only.code == 0 and "guest\t[administrator]" in env_only.out


def test_the_default_broker_is_guest_on_localhost_15672(rabbit):
    env = {k: v for k, v in os.environ.items() if k != "LEVERET_MANAGEMENT_URL"}
    done = subprocess.run([leveret_ctl_path(), "-q", "list_users"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0 and "guest\t[administrator]" in done.stdout.splitlines()


@pytest.mark.parametrize(("name", "command", "code"), [
    ("rabbitmqctl", "check_running", 64), ("rabbitmq-diagnostics", "add_user", 64),
    ("rabbitmqctl", "list_users", 0), ("rabbitmq-diagnostics", "check_running", 0),
    ("leveret-ctl", "check_running", 0),
])
def test_the_name_it_runs_as_picks_the_tool(rabbit, tmp_path, name, command, code):
    """A symlink named rabbitmqctl offers rabbitmqctl's commands, one named
    rabbitmq-diagnostics those of rabbitmq-diagnostics; leveret-ctl offers both."""
    link = tmp_path / name
    link.symlink_to(leveret_ctl_path())
    args = [command, *(["x", "y"] if command == "add_user" else [])]
    done = leveret_ctl(*args, program=str(link))
    assert done.code == code
    if code == 64:  # the real tool does not know it either
        real = rabbitmqctl if name == "rabbitmqctl" else rabbitmq_diagnostics
        assert real(*args).code == 64
        assert f"Command '{command}' not found" in done.err


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A directory the rabbitmq user can read (rabbitmqctl runs as that user; pytest's
    tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ops-ctl-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


@pytest.fixture
def unused_tcp_port_url() -> str:
    from conftest import free_port

    return f"http://guest:guest@127.0.0.1:{free_port()}"

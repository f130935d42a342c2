"""`leveret-ctl` against a running Leveret (the installed `leveret` script, its management API
on a free port), run as a user runs it: through symlinks named `rabbitmqctl` and
`rabbitmq-diagnostics`. Each command's effect is checked through a real client (pika), and,
where the local RabbitMQ is there, the same scene is built on both brokers and what
`leveret-ctl` prints for Leveret must be what `rabbitmqctl` / `rabbitmq-diagnostics` print for
RabbitMQ: output, errors, exit codes (node names and client ports made alike)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest

from _proc import LeveretProcess
from conftest import free_port
from ctl_helpers import (
    RABBITMQ_MANAGEMENT,
    Run,
    build_scene,
    json_rows,
    leveret_ctl_path,
    rabbitmq_tool,
    rabbitmq_tools_work,
    run,
)

NODE = re.compile(r"\b(?:leveret|rabbit)@[\w-]+")
CLIENT = re.compile(r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+")


@dataclass
class Target:
    """A broker and how to run its tools: ``links`` (Leveret: symlinks to leveret-ctl, given
    ``url``) or RabbitMQ's own tools (``url`` None)."""

    amqp_port: int
    url: str | None
    links: Path | None = None

    def tool(self, name: str, *args: str, stdin: str | None = None,
             env: dict[str, str] | None = None) -> Run:
        if self.links is None:
            return run([rabbitmq_tool(name), *args], stdin, env)
        assert self.url is not None
        return run([str(self.links / name), "--management-url", self.url, *args], stdin, env)

    def ctl(self, *args: str, stdin: str | None = None) -> Run:
        return self.tool("rabbitmqctl", *args, stdin=stdin)

    def diag(self, *args: str) -> Run:
        return self.tool("rabbitmq-diagnostics", *args)

    def connect(self, vhost: str, user: str = "guest", password: str = "guest",
                name: str | None = None) -> pika.BlockingConnection:
        params = pika.ConnectionParameters(
            "127.0.0.1", self.amqp_port, vhost, pika.PlainCredentials(user, password),
            heartbeat=0, client_properties={"connection_name": name} if name else None)
        return pika.BlockingConnection(params)


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rabbitmqctl and rabbitmq-diagnostics as the README makes them: symlinks to leveret-ctl."""
    path = tmp_path_factory.mktemp("links")
    for name in ("rabbitmqctl", "rabbitmq-diagnostics"):
        (path / name).symlink_to(leveret_ctl_path())
    return path


@pytest.fixture(scope="module")
def leveret(links: Path) -> Iterator[Target]:
    management = free_port()
    with LeveretProcess("--management-port", str(management), "--prometheus-port",
                        str(free_port()), script=True) as proc:
        proc.started()
        yield Target(proc.port, f"http://guest:guest@127.0.0.1:{management}", links)


def set_up_scene(target: Target, vhost: str) -> pika.BlockingConnection:
    assert target.ctl("-q", "add_vhost", vhost).code == 0
    assert target.ctl("-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").code == 0
    conn = target.connect(vhost, name="ctl-test-conn")
    build_scene(conn)
    return conn


@pytest.fixture(scope="module")
def scene(leveret: Target) -> Iterator[str]:
    """A vhost on Leveret with ctl_helpers.build_scene's objects, its connection kept open."""
    vhost = f"ops-lev-{uuid.uuid4().hex[:8]}"
    conn = set_up_scene(leveret, vhost)
    yield vhost
    if conn.is_open:
        conn.close()


@pytest.fixture(scope="module")
def rabbit(scene: str) -> Iterator[Target]:
    """The local RabbitMQ with the same scene in a vhost of the same name (made through its
    management API as on Leveret, so both vhosts carry the same metadata)."""
    if not rabbitmq_tools_work():
        pytest.skip("needs RabbitMQ's rabbitmqctl and management API on this machine")
    target = Target(5672, None)
    api_side = Target(5672, RABBITMQ_MANAGEMENT, Path(os.path.dirname(leveret_ctl_path())))
    assert api_side.tool("leveret-ctl", "-q", "add_vhost", scene).code == 0
    conn = None
    try:
        target.ctl("-q", "set_permissions", "-p", scene, "guest", ".*", ".*", ".*")
        conn = target.connect(scene, name="ctl-test-conn")
        build_scene(conn)
        yield target
    finally:
        if conn is not None and conn.is_open:
            conn.close()
        target.ctl("-q", "delete_vhost", scene)


# rabbitmqctl sometimes lets its Erlang logger print on stderr ("\n15:44:57.061 [warning]
# Failed to set permissions for ..."), before its own message: not part of its answer
ERLANG_LOGGER = re.compile(r"\n?\d\d:\d\d:\d\d\.\d+ \[\w+\] [^\n]*\n")


def alike(text: str) -> str:
    return CLIENT.sub("CLIENT", NODE.sub("NODE", ERLANG_LOGGER.sub("", text)))


def table(text: str, keep: Callable[[str], bool] | None = None,
          header: bool = True) -> list[str]:
    """Banner lines and header as printed, data rows sorted (rabbitmqctl lists in no set
    order), only those ``keep`` accepts."""
    lines = alike(text).splitlines()
    head = [ln for ln in lines if ln.endswith("...") or ln.startswith("Timeout:")]
    rest = [ln for ln in lines if ln not in head]
    first, rows = (rest[:1], rest[1:]) if header else ([], rest)
    if keep is not None:
        rows = [ln for ln in rows if keep(ln)]
    return head + first + sorted(rows)


def same(ours: Run, theirs: Run, shape: Callable[[str], object] = alike) -> None:
    assert (ours.code, alike(ours.err)) == (theirs.code, alike(theirs.err)), (ours, theirs)
    assert shape(ours.out) == shape(theirs.out)


# ---------------------------------------------------------------------- lists

def test_list_queues_shows_the_scene(leveret, scene):
    out = leveret.ctl("list_queues", "-p", scene, "name", "messages", "consumers", "durable",
                      "arguments")
    assert out.code == 0 and out.err == ""
    assert table(out.out) == [
        "Timeout: 60.0 seconds ...", f"Listing queues for vhost {scene} ...",
        "name\tmessages\tconsumers\tdurable\targuments",
        'q-args\t2\t0\ttrue\t[{"x-dead-letter-exchange","dlx"},{"x-max-length",100},'
        '{"x-message-ttl",60000}]',
        "q-cons\t0\t1\tfalse\t[]",
        "q-plain\t3\t0\tfalse\t[]",
    ]


# every column both brokers fill the same way; messages_persistent and
# message_bytes_persistent are left out: Leveret's API reports 0 for them
QUEUE_COLUMNS = ["name", "durable", "auto_delete", "arguments", "policy", "exclusive",
                 "exclusive_consumer_tag", "messages_ready", "messages_unacknowledged",
                 "messages", "messages_ready_ram", "message_bytes", "message_bytes_ready",
                 "message_bytes_unacknowledged", "head_message_timestamp", "consumers", "state",
                 "type"]


@pytest.mark.rabbitmq
@pytest.mark.parametrize("args", [
    ["list_queues"],
    ["list_queues", *QUEUE_COLUMNS],
    ["list_queues", "name,messages,consumers"],
    ["list_queues", "name", "durable", "-q"],
    ["list_queues", "name", "durable", "--no-table-headers"],
    ["list_queues", "name", "durable", "--formatter", "table"],
    ["list_exchanges"],
    ["list_exchanges", "name", "type", "durable", "auto_delete", "internal", "arguments",
     "policy"],
    ["list_exchanges", "name", "type", "--formatter", "csv"],
    ["list_bindings"],
    ["list_consumers", "queue_name", "consumer_tag", "ack_required", "prefetch_count",
     "active", "activity_status", "arguments"],
    ["list_permissions"],
])
def test_vhost_lists_match_rabbitmqctl(leveret, rabbit, scene, args):
    full = [args[0], "-p", scene, *args[1:]]
    header = "--no-table-headers" not in args
    same(leveret.ctl(*full), rabbit.ctl(*full), lambda out: table(out, header=header))


@pytest.mark.rabbitmq
@pytest.mark.parametrize("args", [
    ["list_queues", *QUEUE_COLUMNS],
    ["list_bindings"],
    ["list_consumers", "queue_name", "consumer_tag", "ack_required", "arguments"],
    ["list_permissions"],
])
def test_json_lists_match_rabbitmqctl(leveret, rabbit, scene, args):
    full = [args[0], "-p", scene, *args[1:], "--formatter", "json"]
    same(leveret.ctl(*full), rabbit.ctl(*full), json_rows)


@pytest.mark.rabbitmq
def test_connections_channels_vhosts_users_match_rabbitmqctl(leveret, rabbit, scene):
    def in_scene(line: str) -> bool:
        return f"\t{scene}\t" in f"\t{line}\t"

    for args in (["list_connections", "name", "user", "vhost", "peer_host", "ssl", "protocol",
                  "auth_mechanism", "state", "channels", "frame_max", "channel_max",
                  "timeout"],
                 ["list_channels", "name", "number", "user", "vhost", "transactional",
                  "confirm", "consumer_count", "prefetch_count", "global_prefetch_count",
                  "messages_unacknowledged", "messages_uncommitted", "messages_unconfirmed",
                  "acks_uncommitted"]):
        same(leveret.ctl(*args), rabbit.ctl(*args), lambda out: table(out, in_scene))
    same(leveret.ctl("list_vhosts", "name", "tags", "description", "tracing"),
         rabbit.ctl("list_vhosts", "name", "tags", "description", "tracing"),
         lambda out: table(out, lambda line: line.startswith((scene, "/\t"))))
    same(leveret.ctl("list_users"), rabbit.ctl("list_users"),
         lambda out: table(out, lambda line: line.startswith("guest\t")))


def test_lists_of_an_unknown_vhost(leveret):
    for command in ("list_queues", "list_exchanges", "list_bindings", "list_consumers"):
        out = leveret.ctl(command, "-p", "ops-no-such-vhost", "-q")
        assert (out.code, out.out, out.err) == (0, "", ""), command  # nothing, as rabbitmqctl
    refused = leveret.ctl("list_permissions", "-p", "ops-no-such-vhost")
    assert refused.code == 65
    assert refused.err == "Virtual host 'ops-no-such-vhost' does not exist\n"


@pytest.mark.rabbitmq
def test_unknown_vhost_and_bad_columns_match_rabbitmqctl(leveret, rabbit):
    for args in (["list_queues", "-p", "ops-no-such-vhost"],
                 ["list_permissions", "-p", "ops-no-such-vhost"],
                 ["list_queues", "name", "bogus"], ["list_users", "name"], ["frobnicate"]):
        ours, theirs = leveret.ctl(*args), rabbit.ctl(*args)
        assert ours.code == theirs.code, args
        assert ours.out == theirs.out, args
        plain = theirs.err.replace("\x1b[1m", "").replace("\x1b[0m", "")
        assert ours.err.splitlines()[:3] == plain.splitlines()[:3], args


def test_node_flag_is_ignored_and_json_is_rabbitmqctls(leveret, scene):
    plain = leveret.ctl("-q", "list_queues", "-p", scene, "name")
    named = leveret.ctl("-n", "rabbit@elsewhere", "-q", "list_queues", "-p", scene, "name")
    assert named.code == plain.code == 0 and named.out == plain.out
    rows = json.loads(leveret.ctl("list_queues", "-p", scene, "name", "messages",
                                  "--formatter", "json").out)
    assert sorted(rows, key=lambda r: r["name"]) == [
        {"name": "q-args", "messages": 2}, {"name": "q-cons", "messages": 0},
        {"name": "q-plain", "messages": 3}]


# ---------------------------------------------------------------------- users, vhosts

def refused_login(target: Target, vhost: str, user: str, password: str) -> int | None:
    """None if ``user`` may open ``vhost``; else the reply code (403 for a login refused,
    530 for a vhost not allowed or missing)."""
    try:
        target.connect(vhost, user, password).close()
    except pika.exceptions.ProbableAuthenticationError:
        return 403
    except pika.exceptions.ProbableAccessDeniedError:
        return 530
    return None


USER_STEPS = [
    (["add_user", "{u}", "s3cret"], "{u} cannot open {v}: no permissions yet"),
    (["add_user", "{u}", "again"], None),  # exists: 70
    (["set_permissions", "-p", "{v}", "{u}", ".*", ".*", ".*"], "{u} opens {v}"),
    (["set_user_tags", "{u}", "monitoring", "management"], None),
    (["change_password", "{u}", "n3w"], "the new password opens {v}"),
    (["clear_permissions", "-p", "{v}", "{u}"], "{u} cannot open {v} again"),
    (["set_permissions", "-p", "ops-no-such-vhost", "{u}", ".*", ".*", ".*"], None),  # 69
    (["set_permissions", "-p", "{v}", "ops-nobody", ".*", ".*", ".*"], None),  # 67
    (["change_password", "ops-nobody", "x"], None),  # 67
    (["set_user_tags", "ops-nobody", "x"], None),  # 67
    (["delete_user", "{u}"], "{u} cannot log in"),
    (["delete_user", "{u}"], None),  # gone: 67
]


def run_user_steps(target: Target, vhost: str, user: str) -> list[Run]:
    outs = []
    for args, effect in USER_STEPS:
        outs.append(target.ctl(*[a.format(u=user, v=vhost) for a in args]))
        if effect == "{u} cannot open {v}: no permissions yet":
            assert refused_login(target, vhost, user, "s3cret") == 530
        elif effect == "{u} opens {v}":
            assert refused_login(target, vhost, user, "s3cret") is None
        elif effect == "the new password opens {v}":
            assert refused_login(target, vhost, user, "n3w") is None
            assert refused_login(target, vhost, user, "s3cret") == 403
        elif effect == "{u} cannot open {v} again":
            assert refused_login(target, vhost, user, "n3w") == 530
        elif effect == "{u} cannot log in":
            assert refused_login(target, vhost, user, "n3w") == 403
    return outs


def test_user_commands_act_on_leveret(leveret, scene):
    user = f"ops-lev-u-{uuid.uuid4().hex[:6]}"
    outs = run_user_steps(leveret, scene, user)
    assert [o.code for o in outs] == [0, 70, 0, 0, 0, 0, 69, 67, 67, 67, 0, 67]
    assert outs[0].out == (f'Adding user "{user}" ...\nDone. Don\'t forget to grant the user '
                           "permissions to some virtual hosts! See 'rabbitmqctl help "
                           "set_permissions' to learn more.\n")
    assert outs[1].err == f'Error:\nUser "{user}" already exists\n'
    assert outs[6].err == "Error:\nVirtual host ops-no-such-vhost does not exist\n"
    assert outs[7].err == "Error:\nUser ops-nobody does not exist\n"
    assert outs[11].err == f'Error:\nUser "{user}" does not exist\n'


@pytest.mark.rabbitmq
def test_user_commands_match_rabbitmqctl(leveret, rabbit, scene):
    user = f"ops-lev-u-{uuid.uuid4().hex[:6]}"
    try:
        theirs = run_user_steps(rabbit, scene, user)
        ours = run_user_steps(leveret, scene, user)
    finally:
        rabbit.ctl("-q", "delete_user", user)
    for step, o, t in zip(USER_STEPS, ours, theirs):
        assert (o.code, o.out, o.err) == (t.code, t.out, ERLANG_LOGGER.sub("", t.err)), step


def vhost_steps(target: Target, vhost: str) -> list[Run]:
    outs = [target.ctl("add_vhost", vhost), target.ctl("add_vhost", vhost),
            target.ctl("list_permissions", "-p", vhost)]
    # a new vhost grants nobody anything (rabbitmqctl's add_vhost): guest is refused
    assert refused_login(target, vhost, "guest", "guest") == 530
    outs.append(target.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"))
    conn = target.connect(vhost)
    outs.append(target.ctl("delete_vhost", vhost))
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(30):  # deleting the vhost closes its connections: wait for that
            conn.process_data_events(1)
    # RabbitMQ says "is deleted", or "is down" when the vhost's supervisor stops first
    assert closed.value.reply_code == 320
    assert closed.value.reply_text in (f"CONNECTION_FORCED - vhost '{vhost}' is deleted",
                                       f"CONNECTION_FORCED - vhost '{vhost}' is down")
    assert refused_login(target, vhost, "guest", "guest") == 530
    outs += [target.ctl("delete_vhost", vhost), target.ctl("list_permissions", "-p", vhost)]
    return outs


def test_vhost_commands_act_on_leveret(leveret):
    vhost = f"ops-lev-v-{uuid.uuid4().hex[:6]}"
    outs = vhost_steps(leveret, vhost)
    assert [o.code for o in outs] == [0, 0, 0, 0, 0, 65, 65]
    assert outs[2].out == f'Listing permissions for vhost "{vhost}" ...\n\n'  # rabbitmqctl's
    assert outs[5].err == f"Virtual host '{vhost}' does not exist\n"


@pytest.mark.rabbitmq
def test_vhost_commands_match_rabbitmqctl(leveret, rabbit):
    vhost = f"ops-lev-v-{uuid.uuid4().hex[:6]}"
    try:
        theirs = vhost_steps(rabbit, vhost)
    finally:
        rabbit.ctl("-q", "delete_vhost", vhost)
    ours = vhost_steps(leveret, vhost)
    for o, t in zip(ours, theirs):
        assert (o.code, o.out, o.err) == (t.code, t.out, ERLANG_LOGGER.sub("", t.err))


# ---------------------------------------------------------------------- queues, connections

def queue_steps(target: Target, vhost: str, name: str) -> list[Run]:
    conn = target.connect(vhost)
    ch = conn.channel()
    ch.queue_declare(name)
    ch.confirm_delivery()
    for _ in range(3):
        ch.basic_publish("", name, b"m")
    outs = [target.ctl("delete_queue", "-p", vhost, name, "--if-empty")]  # 3 messages: 64
    outs.append(target.ctl("purge_queue", "-p", vhost, name))
    assert ch.basic_get(name)[0] is None  # purged
    consumer = conn.channel()
    consumer.basic_consume(name, lambda *a: None)
    outs.append(target.ctl("delete_queue", "-p", vhost, name, "--if-unused"))  # in use: 64
    consumer.close()
    outs.append(target.ctl("delete_queue", "-p", vhost, name))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as gone:
        ch.queue_declare(name, passive=True)
    assert gone.value.reply_code == 404
    outs += [target.ctl("purge_queue", "-p", vhost, name),  # 69 not_found
             target.ctl("delete_queue", "-p", vhost, name)]  # 64 Queue not found
    conn.close()
    return outs


def test_queue_commands_act_on_leveret(leveret, scene):
    outs = queue_steps(leveret, scene, "ops-lev-q")
    assert [o.code for o in outs] == [64, 0, 64, 0, 69, 64]
    assert outs[0].err == "Error:\nQueue is not empty\n"
    assert outs[2].err == "Error:\nQueue is in use\n"
    assert outs[3].out == (f"Deleting queue 'ops-lev-q' on vhost '{scene}' ...\n"
                           "Queue was successfully deleted with 0 ready messages\n")
    assert outs[5].err == "Error:\nQueue not found\n"


@pytest.mark.rabbitmq
def test_queue_commands_match_rabbitmqctl(leveret, rabbit, scene):
    # RabbitMQ's API refreshes queue counts every 5 s; rabbitmqctl asks the queue itself
    theirs = queue_steps(rabbit, scene, "ops-lev-q-rmq")
    ours = queue_steps(leveret, scene, "ops-lev-q-rmq")
    for o, t in zip(ours, theirs):
        assert (o.code, o.out, o.err) == (t.code, t.out, ERLANG_LOGGER.sub("", t.err))


def test_close_connection_by_its_listed_name(leveret, scene):
    conn = leveret.connect(scene, name="ops-lev-to-close")
    listed = leveret.ctl("-q", "list_connections", "name", "client_properties").out
    names = [ln.split("\t")[0] for ln in listed.splitlines() if "ops-lev-to-close" in ln]
    assert len(names) == 1
    done = leveret.ctl("close_connection", names[0], "going away")
    assert (done.code, done.out) == (0, f"Closing connection {names[0]}, reason: going "
                                        "away...\n")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        conn.channel()
        conn.process_data_events(2)
    assert (closed.value.reply_code, closed.value.reply_text) == (
        320, "CONNECTION_FORCED - going away")
    again = leveret.ctl("close_connection", names[0], "again")
    assert again.code == 69 and again.err.startswith("Error:\n")


# ---------------------------------------------------------------------- definitions

def test_export_and_import_definitions(leveret, scene, tmp_path):
    exported = tmp_path / "defs.json"
    done = leveret.ctl("export_definitions", str(exported))
    assert (done.code, done.out) == (0, f'Exporting definitions in JSON to a file at '
                                        f'"{exported}" ...\n')
    defs = json.loads(exported.read_text())
    assert {(q["vhost"], q["name"]) for q in defs["queues"]} >= {
        (scene, "q-args"), (scene, "q-plain")}
    piped = json.loads(leveret.ctl("export_definitions", "-").out)
    assert piped["queues"] == defs["queues"]

    vhost = f"ops-lev-imp-{uuid.uuid4().hex[:6]}"
    new = {"vhosts": [{"name": vhost}],
           "permissions": [{"user": "guest", "vhost": vhost, "configure": ".*",
                            "write": ".*", "read": ".*"}],
           "queues": [{"name": "imported", "vhost": vhost, "durable": True,
                       "auto_delete": False, "arguments": {"x-max-length": 5}}]}
    source = tmp_path / "new.json"
    source.write_text(json.dumps(new))
    done = leveret.ctl("import_definitions", str(source))
    assert (done.code, done.out) == (0, f'Importing definitions in JSON from a file at '
                                        f'"{source}" ...\nSuccessfully started definition '
                                        "import. This process is asynchronous and can take "
                                        "some time.\n")
    conn = leveret.connect(vhost)
    conn.channel().queue_declare("imported", passive=True)
    conn.close()
    from_stdin = leveret.ctl("-q", "import_definitions", "-",
                             stdin=json.dumps({"vhosts": [{"name": vhost + "-2"}]}))
    assert (from_stdin.code, from_stdin.out) == (0, "")
    assert vhost + "-2" in leveret.ctl("-q", "list_vhosts").out.splitlines()
    missing = leveret.ctl("import_definitions", str(tmp_path / "nope.json"))
    assert (missing.code, missing.err) == (65, f"Bad argument: File {tmp_path / 'nope.json'} "
                                               "does not exist\n")
    assert leveret.ctl("import_definitions", "-", stdin="{not json").code == 65
    clash = leveret.ctl("import_definitions", "-", stdin=json.dumps({"queues": [
        {"name": "imported", "vhost": vhost, "durable": False, "auto_delete": False,
         "arguments": {}}]}))
    assert clash.code == 65 and "inequivalent arg 'durable'" in clash.err

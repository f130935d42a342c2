"""`leveret --config FILE` / RABBITMQ_CONFIG_FILE: RabbitMQ's rabbitmq.conf format, every key
Leveret takes, what it ignores (a warning), what it refuses (file and line), and precedence:
command line over file over environment."""

from __future__ import annotations

import json
import socket
import urllib.request

import pika
import pika.exceptions
import pytest

from _proc import LeveretProcess, run_leveret
from conftest import free_port
from rabbit_hash import definitions_user
from test_loopback import REFUSED, refusal


def write_conf(tmp_path, text: str, name: str = "rabbitmq.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def tuned(url: str) -> tuple[int, int, int]:
    """(frame_max, channel_max, heartbeat) as pika negotiated them (it takes the server's
    proposal when it asks for nothing itself)."""
    params = pika.URLParameters(url)
    params.frame_max = 131072  # pika keeps the smaller of its own and the server's
    params.channel_max = 65535
    params.heartbeat = lambda _conn, server_value: server_value
    conn = pika.BlockingConnection(params)
    try:
        p = conn._impl.params
        return p.frame_max, p.channel_max, p.heartbeat
    finally:
        conn.close()


def test_every_key_leveret_reads(tmp_path):
    port = free_port()
    conf = write_conf(tmp_path, f"""
# a rabbitmq.conf as people write them for development
listeners.tcp.default = 127.0.0.1:{port}
default_user = app          # trailing comments are comments
default_pass = s3cret
default_vhost = dev
heartbeat = 30
frame_max = 65536
channel_max = 100
vm_memory_high_watermark.absolute = 512MiB
log.console.level = debug
log.console.formatter = plaintext
""")
    with LeveretProcess("--config", conf, port=None, host=None) as proc:
        proc.started()
        assert proc.wait_for(r".*started TCP listener on .*").endswith(f"127.0.0.1:{port}")
        proc.wait_for(rf".* config file\(s\) : {conf}")
        proc.wait_for(r".*Memory high watermark set to 512 MiB \(536870912 bytes\).*")
        url = f"amqp://app:s3cret@127.0.0.1:{port}/dev"
        assert tuned(url) == (65536, 100, 30)
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/"))
        proc.wait_for(r".*\[debug\] .*tuned frame_max 65536, channel_max 100, heartbeat 30 s")


def test_consumer_timeout_and_max_message_size(tmp_path):
    conf = write_conf(tmp_path, "consumer_timeout = 300\nmax_message_size = 4096\n")
    with LeveretProcess("--config", conf) as proc:
        proc.started()
        conn = pika.BlockingConnection(pika.URLParameters(
            f"amqp://guest:guest@127.0.0.1:{proc.port}/"))
        ch = conn.channel()
        ch.queue_declare("work")
        ch.basic_publish("", "work", b"x" * 4096)  # at the limit: taken
        ch.basic_consume("work", lambda *a: None)  # never acks
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as timed_out:
            ch.start_consuming()
        assert timed_out.value.reply_code == 406
        assert "Timeout value used: 300 ms" in timed_out.value.reply_text
        big = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as too_big:
            big.basic_publish("", "work", b"x" * 4097)
            big.queue_declare("work", passive=True)
        assert (too_big.value.reply_code, too_big.value.reply_text) == (
            406, "PRECONDITION_FAILED - message size 4097 is larger than configured max size "
                 "4096")
        conn.close()


def test_listener_as_a_bare_port_and_json_logs(tmp_path):
    port = free_port()
    conf = write_conf(tmp_path, f"listeners.tcp.default = {port}\n"
                                "log.console.formatter = json\n")
    with LeveretProcess("--config", conf, port=None, host=None) as proc:
        # a bare port is every address, IPv4 and IPv6, as RabbitMQ logs it
        line = proc.wait_for(r'\{.*"msg": "started TCP listener on .*')
        assert line.endswith(f'[::]:{port}", "pid": "<0.0.0>", "logger": "leveret"}}')
        proc.started()
        pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/")
                                ).close()


def http_get(url: str, auth: bool = True) -> object:
    headers = {"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="} if auth else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        body = r.read()
    return json.loads(body) if auth else body.decode()


@pytest.mark.parametrize("spelling", ["tcp", "listener"])  # management.listener.*: older
def test_management_and_prometheus_listeners_from_the_file(tmp_path, spelling):
    management, prometheus = free_port(), free_port()
    conf = write_conf(tmp_path, f"""
management.{spelling}.port = {management}
management.{spelling}.ip = 127.0.0.1
prometheus.tcp.port = {prometheus}
prometheus.tcp.ip = 127.0.0.1
""")
    with LeveretProcess("--config", conf, host="0.0.0.0", http_off=False) as proc:
        proc.started()
        proc.wait_for(rf".*Management plugin: HTTP \(non-TLS\) listener started on port "
                      rf"{management}")
        proc.wait_for(rf".*Prometheus metrics: HTTP \(non-TLS\) listener started on port "
                      rf"{prometheus}")
        overview = http_get(f"http://127.0.0.1:{management}/api/overview")
        assert isinstance(overview, dict)
        assert [(x["protocol"], x["ip_address"], x["port"]) for x in overview["listeners"]] == [
            ("amqp", "0.0.0.0", proc.port), ("http", "127.0.0.1", management),
            ("http/prometheus", "127.0.0.1", prometheus)]
        assert "rabbitmq_build_info" in str(http_get(f"http://127.0.0.1:{prometheus}/metrics",
                                                     auth=False))


def test_listener_options_win_over_the_file(tmp_path):
    in_file, on_line = free_port(), free_port()
    conf = write_conf(tmp_path, f"management.tcp.port = {in_file}\n"
                                f"prometheus.tcp.port = {free_port()}\n")
    with LeveretProcess("--config", conf, "--management-port", str(on_line),
                        "--no-prometheus", http_off=False) as proc:
        proc.started()
        proc.wait_for(rf".*Management plugin: HTTP \(non-TLS\) listener started on port "
                      rf"{on_line}")
    assert not any("Prometheus metrics" in line for line in proc.lines)


def test_log_level_from_the_file_hides_info(tmp_path):
    conf = write_conf(tmp_path, "log.console.level = warning\nno.such.key = 1\n")
    with LeveretProcess("--config", conf) as proc:
        proc.wait_for(rf".*\[warning\] <0\.0\.0> {tmp_path}/rabbitmq\.conf, line 2: unknown "
                      r"key 'no\.such\.key' ignored")
    assert not any("[info]" in line for line in proc.lines)


@pytest.mark.parametrize("definitions_key", ["load_definitions", "definitions.local.path"])
def test_management_and_metrics_ports_and_definitions_at_boot(tmp_path, definitions_key):
    """What a compose file's rabbitmq.conf for the rabbitmq:3-management image sets: the
    API's and the metrics' ports, and a definitions file to load at boot."""
    import json
    import urllib.request

    defs = tmp_path / "definitions.json"
    # loaded at boot, definitions replace the default user (as RabbitMQ): guest comes from them
    defs.write_text(json.dumps({
        "vhosts": [{"name": "/"}, {"name": "app"}],
        "users": [{"name": "svc", "password_hash": "", "tags": "management"},
                  definitions_user("guest", "guest")],
        "permissions": [{"user": "guest", "vhost": "app", "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "queues": [{"name": "jobs", "vhost": "app", "durable": True, "auto_delete": False,
                    "arguments": {"x-queue-type": "classic"}}]}))
    mport, pport = free_port(), free_port()
    conf = write_conf(tmp_path, f"""
management.tcp.port = {mport}
prometheus.tcp.port = {pport}
definitions.import_backend = local_filesystem
{definitions_key} = {defs}
""")
    with LeveretProcess("--config", conf, http_off=False) as proc:
        proc.started()
        assert not [line for line in proc.lines if "[warning]" in line]
        request = urllib.request.Request(f"http://127.0.0.1:{mport}/api/queues/app")
        request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert [q["name"] for q in json.load(reply)] == ["jobs"]
        with urllib.request.urlopen(f"http://127.0.0.1:{pport}/metrics", timeout=10) as reply:
            assert b"rabbitmq_queues 1" in reply.read()
        conn = pika.BlockingConnection(pika.URLParameters(
            f"amqp://guest:guest@127.0.0.1:{proc.port}/app"))
        conn.channel().queue_declare("jobs", passive=True)
        conn.close()
    # the command line still wins over the file
    with LeveretProcess("--config", conf, "--no-management", "--no-prometheus") as proc:
        proc.started()
        assert not any("Management plugin" in line for line in proc.lines)


def test_unknown_keys_are_warned_about_once_and_not_fatal(tmp_path):
    conf = write_conf(tmp_path, """
cluster_formation.peer_discovery_backend = classic_config
totally.made.up = yes
totally.made.up = again
log.file = false
""")
    with LeveretProcess("--config", conf) as proc:
        proc.started()
    warnings = [line for line in proc.lines if "[warning]" in line]
    assert [w.split("> ", 1)[1] for w in warnings] == [
        f"{conf}, line 2: unknown key 'cluster_formation.peer_discovery_backend' ignored",
        f"{conf}, line 3: unknown key 'totally.made.up' ignored",
    ]


def test_rabbitmq_config_file_environment_variable(tmp_path):
    conf = write_conf(tmp_path, "default_vhost = from-env-file\n")
    with LeveretProcess(env={"RABBITMQ_CONFIG_FILE": conf}) as proc:
        proc.started()
        pika.BlockingConnection(pika.URLParameters(
            f"amqp://guest:guest@127.0.0.1:{proc.port}/from-env-file")).close()


def test_rabbitmq_config_file_without_its_extension(tmp_path):
    # RabbitMQ lets RABBITMQ_CONFIG_FILE name the file without ".conf"
    write_conf(tmp_path, "default_vhost = no-extension\n")
    with LeveretProcess(env={"RABBITMQ_CONFIG_FILE": str(tmp_path / "rabbitmq")}) as proc:
        proc.started()
        pika.BlockingConnection(pika.URLParameters(
            f"amqp://guest:guest@127.0.0.1:{proc.port}/no-extension")).close()


# ---------------------------------------------------------------------- precedence

@pytest.mark.parametrize(("flags", "file_vhost", "env_vhost", "winner"), [
    (["--vhost", "cli"], "file", "env", "cli"),
    ([], "file", "env", "file"),
    ([], None, "env", "env"),
    ([], None, None, "/"),
])
def test_command_line_over_file_over_environment(tmp_path, flags, file_vhost, env_vhost,
                                                 winner):
    conf = write_conf(tmp_path, f"default_vhost = {file_vhost}\n" if file_vhost else "")
    env = {"RABBITMQ_DEFAULT_VHOST": env_vhost} if env_vhost else {}
    with LeveretProcess("--config", conf, *flags, env=env) as proc:
        proc.started()
        vhost = "%2F" if winner == "/" else winner
        pika.BlockingConnection(pika.URLParameters(
            f"amqp://guest:guest@127.0.0.1:{proc.port}/{vhost}")).close()
        assert proc.wait_for(r".*authenticated and granted access to vhost.*").endswith(
            f"vhost '{winner}'")


@pytest.mark.parametrize(("flags", "in_file", "in_env", "winner"), [
    (["--user", "cli", "--password", "cli-pw"], True, True, "cli"),
    ([], True, True, "file"),
    ([], False, True, "env"),
    ([], False, False, "guest"),
])
def test_default_user_precedence(tmp_path, flags, in_file, in_env, winner):
    conf = write_conf(tmp_path, "default_user = file\ndefault_pass = file-pw\n" if in_file
                      else "")
    env = {"RABBITMQ_DEFAULT_USER": "env", "RABBITMQ_DEFAULT_PASS": "env-pw"} if in_env else {}
    with LeveretProcess("--config", conf, *flags, env=env) as proc:
        proc.started()
        for user in ("cli", "file", "env", "guest"):
            password = "guest" if user == "guest" else f"{user}-pw"
            url = f"amqp://{user}:{password}@127.0.0.1:{proc.port}/"
            if user == winner:
                pika.BlockingConnection(pika.URLParameters(url)).close()
            else:
                with pytest.raises(pika.exceptions.ProbableAuthenticationError):
                    pika.BlockingConnection(pika.URLParameters(url))


def test_config_option_over_the_environment_variable(tmp_path):
    named = write_conf(tmp_path, "default_vhost = from-option\n", "option.conf")
    in_env = write_conf(tmp_path, "default_vhost = from-env\n", "env.conf")
    with LeveretProcess("--config", named, env={"RABBITMQ_CONFIG_FILE": in_env}) as proc:
        proc.wait_for(rf".* config file\(s\) : {named}")
        proc.started()
        pika.BlockingConnection(pika.URLParameters(
            f"amqp://guest:guest@127.0.0.1:{proc.port}/from-option")).close()


def test_address_from_the_environment_and_the_file(tmp_path):
    env = {"RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1"}
    with LeveretProcess(env=env, host=None) as proc:
        assert proc.wait_for(r".*started TCP listener.*").endswith(f" 127.0.0.1:{proc.port}")
    port = free_port()
    conf = write_conf(tmp_path, f"listeners.tcp.default = 0.0.0.0:{port}\n")
    with LeveretProcess("--config", conf, env=env, host=None, port=None) as proc:
        assert proc.wait_for(r".*started TCP listener.*").endswith(f" 0.0.0.0:{port}")


def test_port_precedence(tmp_path):
    file_port, env_port, cli_port = free_port(), free_port(), free_port()
    conf = write_conf(tmp_path, f"listeners.tcp.default = {file_port}\n")
    env = {"RABBITMQ_NODE_PORT": str(env_port)}
    with LeveretProcess("--config", conf, env=env, port=cli_port) as proc:
        assert proc.wait_for(r".*started TCP listener.*").endswith(f":{cli_port}")
    with LeveretProcess("--config", conf, env=env, port=None) as proc:
        assert proc.wait_for(r".*started TCP listener.*").endswith(f":{file_port}")
    with LeveretProcess(env=env, port=None) as proc:
        assert proc.wait_for(r".*started TCP listener.*").endswith(f":{env_port}")


# ---------------------------------------------------------------------- errors

def config_error(tmp_path, text: str, name: str = "rabbitmq.conf") -> str:
    conf = write_conf(tmp_path, text, name)
    out = run_leveret(["--in-memory", "--config", conf])
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0].replace(conf, "FILE")


@pytest.mark.parametrize(("text", "error"), [
    ("heartbeat = 60\nthis line has no equals sign\n",
     "FILE, line 2: expected 'key = value', got 'this line has no equals sign'"),
    ("= 5\n", "FILE, line 1: expected 'key = value', got '= 5'"),
    ("bad key = 5\n", "FILE, line 1: expected 'key = value', got 'bad key = 5'"),
    ("\n\nheartbeat =\n", "FILE, line 3: heartbeat has no value"),
    ("heartbeat = often\n", "FILE, line 1: heartbeat: 'often' is not a heartbeat in seconds"),
    ("frame_max = 1024\n", "FILE, line 1: frame_max: 1024 is out of range: a frame size is "
                           "4096 to 4294967295 (AMQP 0-9-1 frames are at least 4096 bytes)"),
    ("channel_max = 70000\n", "FILE, line 1: channel_max: 70000 is out of range: a channel "
                              "count is 0 to 65535"),
    ("listeners.tcp.default = 99999\n", "FILE, line 1: listeners.tcp.default: 99999 is out "
                                        "of range: a port is 0 to 65535"),
    ("listeners.tcp.default = 5672\nlisteners.tcp.other = 5673\n",
     "FILE, line 2: listeners.tcp.other: Leveret listens on one address: set one "
     "listeners.tcp.* key"),
    ("vm_memory_high_watermark.absolute = lots\n",
     "FILE, line 1: vm_memory_high_watermark.absolute: 'lots' is not a size: a number of "
     "bytes, or with kB, MB, GB, KiB, MiB, GiB"),
    ("log.console.level = chatty\n", "FILE, line 1: log.console.level: 'chatty' is not a "
                                     "level: debug, info, warning, error, critical, none"),
    ("max_message_size = 600MiB\n", "FILE, line 1: max_message_size: 629145600 is out of "
                                    "range: a message size is 0 to 536870912 (512 MiB, "
                                    "RabbitMQ's limit)"),
    ("consumer_timeout = -1\n", "FILE, line 1: consumer_timeout: -1 is out of range: a number "
                                "of milliseconds is 0 to 9223372036854775807"),
    ("consumer_timeout = soon\n", "FILE, line 1: consumer_timeout: 'soon' is not a number of "
                                  "milliseconds"),
    ("loopback_users = guest\n", "FILE, line 1: loopback_users: 'guest' is not none (name "
                                 "users as loopback_users.NAME = true)"),
    ("loopback_users.guest = no\n", "FILE, line 1: loopback_users.guest: 'no' is not true or "
                                    "false"),
    ("management.tcp.port = 70000\n", "FILE, line 1: management.tcp.port: 70000 is out of "
                                      "range: a port is 0 to 65535"),
    ("prometheus.tcp.port = metrics\n", "FILE, line 1: prometheus.tcp.port: 'metrics' is not "
                                        "a port"),
    ("management.tcp.ip = localhost\n", "FILE, line 1: management.tcp.ip: 'localhost' is not "
                                        "an IP address"),
    ("prometheus.tcp.ip = 300.1.1.1\n", "FILE, line 1: prometheus.tcp.ip: '300.1.1.1' is not "
                                        "an IP address"),
    ("load_definitions = /no/such/defs.json\n", "FILE, line 1: load_definitions: "
                                                "'/no/such/defs.json' does not exist"),
    ("management.load_definitions = /no/such/defs.json\n",
     "FILE, line 1: management.load_definitions: '/no/such/defs.json' does not exist"),
    ("definitions.import_backend = https\n", "FILE, line 1: definitions.import_backend: "
                                             "'https' is not supported: Leveret reads "
                                             "definitions from local files only "
                                             "(local_filesystem)"),
])
def test_a_bad_line_names_the_file_and_line(tmp_path, text, error):
    assert config_error(tmp_path, text) == f"leveret: {error}"


def test_a_missing_file(tmp_path):
    out = run_leveret(["--in-memory", "--config", str(tmp_path / "nope.conf")])
    assert out.returncode == 1
    assert out.stderr == f"leveret: configuration file {tmp_path / 'nope.conf'} does not exist\n"


def test_the_classic_erlang_format_is_refused_by_name(tmp_path):
    error = config_error(tmp_path, "[{rabbit, [{tcp_listeners, [5672]}]}].\n", "rabbitmq.config")
    assert error == ("leveret: FILE: the classic (Erlang term) format is not supported; use "
                     "the rabbitmq.conf (key = value) format")


# ---------------------------------------------------------------------- loopback_users

@pytest.fixture(scope="module")
def outside_address() -> str:
    """This machine's non-loopback address (as test_loopback finds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))  # a route lookup; nothing is sent
        except OSError:
            pytest.skip("no non-loopback IPv4 address on this machine")
        address = str(probe.getsockname()[0])
    if address.startswith("127.") or address == "0.0.0.0":
        pytest.skip("no non-loopback IPv4 address on this machine")
    return address


@pytest.mark.parametrize(("lines", "user", "outside"), [
    ("", "guest", REFUSED),  # RabbitMQ's default: guest only through loopback
    ("loopback_users.guest = false\n", "guest", None),  # what RabbitMQ's image sets
    ("loopback_users = none\n", "guest", None),
    ("loopback_users.guest = true\nloopback_users = none\n", "guest", None),
    ("default_user = app\ndefault_pass = guest\nloopback_users.app = true\n", "app", REFUSED),
    ("default_user = app\ndefault_pass = guest\n", "app", None),
    # naming users replaces RabbitMQ's default list: guest is no longer in it
    ("loopback_users.app = true\n", "guest", None),
    ("loopback_users.app = false\nloopback_users.guest = true\n", "guest", REFUSED),
])
def test_loopback_users(tmp_path, outside_address, lines, user, outside):
    conf = write_conf(tmp_path, lines)
    with LeveretProcess("--config", conf, host="0.0.0.0") as proc:
        proc.started()
        assert refusal("127.0.0.1", proc.port, user) is None
        assert refusal(outside_address, proc.port, user) == outside

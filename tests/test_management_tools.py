"""Real tools against Leveret's management API: Debian's ``rabbitmqadmin`` (RabbitMQ 3.10's),
Flower's RabbitMQ broker code, and the pytest plugin's external mode on a separate ``leveret``."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import textwrap

import pika
import pytest

import leveret.server  # noqa: F401  (before pytester drops modules: see test_plugin.py)
from _proc import LeveretProcess
from conftest import free_port
from leveret import Broker

from apiclient import API

pytest_plugins = ["pytester"]
RABBITMQADMIN = shutil.which("rabbitmqadmin")


@pytest.fixture(scope="module")
def mbroker():
    with Broker.in_thread(management_port=0) as b:
        yield b


def admin(mbroker, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([RABBITMQADMIN, "-H", "127.0.0.1", "-P", str(mbroker.management_port),
                          "-u", "guest", "-p", "guest", *args],
                         capture_output=True, text=True, timeout=30)
    if check:
        assert out.returncode == 0, out.stderr + out.stdout
        assert "Traceback" not in out.stderr
    return out


def admin_json(mbroker, *args: str) -> list[dict]:
    return json.loads(admin(mbroker, "-f", "raw_json", *args).stdout)


@pytest.mark.skipif(RABBITMQADMIN is None, reason="rabbitmqadmin is not installed")
class TestRabbitmqadmin:
    def test_declare_list_publish_get_purge_delete(self, mbroker):
        admin(mbroker, "declare", "exchange", "name=adm-x", "type=topic")
        admin(mbroker, "declare", "queue", "name=adm-q", "durable=false")
        admin(mbroker, "declare", "binding", "source=adm-x", "destination=adm-q",
              "routing_key=a.#")
        queues = admin_json(mbroker, "list", "queues")
        assert [q["name"] for q in queues if q["name"].startswith("adm")] == ["adm-q"]
        table = admin(mbroker, "list", "queues", "name", "messages").stdout
        assert "adm-q" in table
        assert "adm-x" in admin(mbroker, "list", "exchanges").stdout
        bindings = admin_json(mbroker, "list", "bindings")
        assert {"source": "adm-x", "destination": "adm-q", "routing_key": "a.#"}.items() <= \
            next(b for b in bindings if b["source"] == "adm-x").items()
        out = admin(mbroker, "publish", "exchange=adm-x", "routing_key=a.b", "payload=hello")
        assert "Message published" in out.stdout
        admin(mbroker, "publish", "exchange=adm-x", "routing_key=a.c", "payload=second")
        got = admin_json(mbroker, "get", "queue=adm-q", "count=1", "ackmode=ack_requeue_true")
        assert got[0]["payload"] == "hello" and got[0]["message_count"] == 1
        assert "hello" in admin(mbroker, "get", "queue=adm-q").stdout
        admin(mbroker, "purge", "queue", "name=adm-q")
        assert admin_json(mbroker, "get", "queue=adm-q") == []
        admin(mbroker, "delete", "binding", "source=adm-x", "destination=adm-q",
              "destination_type=queue", "properties_key=a.%23")
        admin(mbroker, "delete", "queue", "name=adm-q")
        admin(mbroker, "delete", "exchange", "name=adm-x")
        assert not [q for q in admin_json(mbroker, "list", "queues") if q["name"] == "adm-q"]

    def test_connections_overview_and_close(self, mbroker):
        conn = pika.BlockingConnection(pika.URLParameters(mbroker.url))
        try:
            [c] = admin_json(mbroker, "list", "connections")
            assert c["user"] == "guest"
            assert "Leveret" in admin(mbroker, "show", "overview").stdout or \
                admin(mbroker, "show", "overview").returncode == 0
            admin(mbroker, "close", "connection", f"name={c['name']}")
            with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
                conn.process_data_events(2)
                conn.process_data_events(2)
        finally:
            if conn.is_open:
                conn.close()

    def test_export_and_import(self, mbroker, tmp_path):
        admin(mbroker, "declare", "queue", "name=exp-q", "durable=true")
        path = tmp_path / "defs.json"
        out = admin(mbroker, "export", str(path))
        assert "Exported definitions" in out.stdout
        defs = json.loads(path.read_text())
        assert any(q["name"] == "exp-q" for q in defs["queues"])
        with Broker.in_thread(management_port=0) as other:
            out = admin(other, "import", str(path))
            assert "Uploaded definitions" in out.stdout
            assert [q["name"] for q in API(other.management_url).json("GET", "/api/queues")
                    ] == ["exp-q"]
        admin(mbroker, "delete", "queue", "name=exp-q")

    def test_users_vhosts_permissions_policies_and_the_node(self, mbroker):
        admin(mbroker, "declare", "vhost", "name=adm-v")
        admin(mbroker, "declare", "user", "name=adm-u", "password=adm-pw", "tags=monitoring")
        admin(mbroker, "declare", "permission", "vhost=adm-v", "user=adm-u", "configure=^a",
              "write=.*", "read=.*")
        admin(mbroker, "-V", "adm-v", "declare", "policy", "name=adm-p", "pattern=^a",
              'definition={"max-length": 3}', "apply-to=queues")
        assert {"name": "adm-u", "tags": ["monitoring"]}.items() <= next(
            u for u in admin_json(mbroker, "list", "users") if u["name"] == "adm-u").items()
        assert "adm-v" in [v["name"] for v in admin_json(mbroker, "list", "vhosts")]
        assert {"user": "adm-u", "vhost": "adm-v", "configure": "^a"}.items() <= next(
            p for p in admin_json(mbroker, "list", "permissions") if p["user"] == "adm-u"
        ).items()
        [policy] = admin_json(mbroker, "-V", "adm-v", "list", "policies")
        assert (policy["name"], policy["definition"]) == ("adm-p", {"max-length": 3})
        # the new user logs in over AMQP with what rabbitmqadmin set
        conn = pika.BlockingConnection(pika.URLParameters(
            mbroker.url_for("adm-v").replace("guest:guest", "adm-u:adm-pw")))
        conn.channel().queue_declare("adm-made")
        conn.close()
        table = admin(mbroker, "-V", "adm-v", "list", "queues", "name", "messages",
                      "message_stats.publish_details.rate").stdout
        assert "adm-made" in table
        [node] = admin_json(mbroker, "list", "nodes")
        assert node["running"] is True and node["mem_used"] > 0
        overview = admin(mbroker, "show", "overview").stdout
        assert "3.10.8" in overview and "object_totals.queues" in overview
        admin(mbroker, "-V", "adm-v", "delete", "policy", "name=adm-p")
        admin(mbroker, "delete", "user", "name=adm-u")
        admin(mbroker, "delete", "vhost", "name=adm-v")
        assert "adm-v" not in [v["name"] for v in admin_json(mbroker, "list", "vhosts")]

    def test_errors_are_reported_not_tracebacks(self, mbroker):
        out = admin(mbroker, "delete", "queue", "name=never-was", check=False)
        assert out.returncode != 0 and "Not found" in out.stdout + out.stderr
        assert "Traceback" not in out.stderr
        admin(mbroker, "declare", "queue", "name=clash", "durable=true")
        out = admin(mbroker, "declare", "queue", "name=clash", "durable=false", check=False)
        assert out.returncode != 0 and "inequivalent arg" in out.stdout + out.stderr
        admin(mbroker, "delete", "queue", "name=clash")


def test_flower_broker_tab_shows_queue_depths(mbroker):
    pytest.importorskip("flower")
    from flower.utils.broker import Broker as FlowerBroker

    conn = pika.BlockingConnection(pika.URLParameters(mbroker.url))
    ch = conn.channel()
    ch.queue_declare("celery")
    ch.queue_declare("other")
    for _ in range(4):
        ch.basic_publish("", "celery", b"task")
    conn.close()
    http_api = f"http://guest:guest@127.0.0.1:{mbroker.management_port}/api/"
    broker = FlowerBroker(mbroker.url, http_api=http_api)
    queues = asyncio.run(broker.queues(["celery"]))
    assert [(q["name"], q["messages"]) for q in queues] == [("celery", 4)]


def test_plugin_external_mode_against_a_separate_leveret(pytester, monkeypatch):
    """The pytest plugin's per-test vhosts through the management API of a ``leveret``
    process, found by the API URL given, as it is against RabbitMQ."""
    mport = free_port()
    with LeveretProcess("--management-port", str(mport)) as proc:
        port = proc.started().port
        pytester.makepyfile(textwrap.dedent("""
            import pika, pytest

            def test_declares(amqp_url, amqp_vhost):
                assert amqp_vhost.startswith("test-test_declares-")
                conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
                conn.channel().queue_declare("shared-name")
                conn.close()

            def test_does_not_see_it(amqp_url):
                conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
                with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                    conn.channel().queue_declare("shared-name", passive=True)
                assert info.value.reply_code == 404
                conn.close()
        """))
        monkeypatch.setenv("LEVERET_EXTERNAL_URL", f"amqp://guest:guest@127.0.0.1:{port}/")
        monkeypatch.setenv("LEVERET_EXTERNAL_MANAGEMENT_URL", f"http://127.0.0.1:{mport}")
        pytester.makeini("[pytest]\nasyncio_mode = auto\n"
                         "asyncio_default_fixture_loop_scope = function\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)
        api = API(f"http://127.0.0.1:{mport}")
        assert [v["name"] for v in api.json("GET", "/api/vhosts")] == ["/"]  # cleaned up
        assert api.json("GET", "/api/queues") == []

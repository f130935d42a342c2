"""Definitions over the management API and ``leveret --definitions FILE``."""

from __future__ import annotations

import json
import subprocess
import sys

import pika
import pika.exceptions
import pytest

from _proc import LeveretProcess
from conftest import free_port
from leveret import Broker
from rabbit_hash import definitions_user

from apiclient import API


@pytest.fixture
def mbroker():
    with Broker.in_thread(management_port=0, vhosts=["side"]) as b:
        yield b


@pytest.fixture
def api(mbroker) -> API:
    return API(mbroker.management_url)


def build_topology(broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.exchange_declare("orders", "topic", durable=True)
    ch.exchange_declare("fan", "fanout", auto_delete=True, internal=True)
    ch.queue_declare("orders.eu", durable=True, arguments={"x-max-length": 10,
                                                           "x-queue-type": "classic"})
    ch.queue_declare("mine", exclusive=True)
    ch.queue_bind("orders.eu", "orders", "eu.#", arguments={"x-note": "hi"})
    ch.exchange_bind("fan", "orders", "all")
    ch.queue_bind("mine", "orders", "#")
    conn.close()


def test_export_has_rabbitmq_format(api, mbroker):
    build_topology(mbroker)
    API(api.base).put("/api/policies/side/p1", {"pattern": ".*", "definition": {"max-length": 1}})
    defs = api.json("GET", "/api/definitions")
    assert list(defs)[:4] == ["rabbit_version", "rabbitmq_version", "product_name",
                              "product_version"]
    for key in ("users", "vhosts", "permissions", "topic_permissions", "parameters",
                "global_parameters", "policies", "queues", "exchanges", "bindings"):
        assert isinstance(defs[key], list), key
    [guest] = defs["users"]
    assert guest["name"] == "guest" and guest["hashing_algorithm"] == \
        "rabbit_password_hashing_sha256" and guest["tags"] == ["administrator"]
    assert sorted(v["name"] for v in defs["vhosts"]) == ["/", "side"]
    assert {"user": "guest", "vhost": "side", "configure": ".*", "write": ".*",
            "read": ".*"} in defs["permissions"]
    assert defs["queues"] == [{"name": "orders.eu", "vhost": "/", "durable": True,
                               "auto_delete": False,
                               "arguments": {"x-max-length": 10, "x-queue-type": "classic"}}]
    assert sorted(e["name"] for e in defs["exchanges"]) == ["fan", "orders"]
    bindings = sorted((b["destination"], b["destination_type"], b["routing_key"])
                      for b in defs["bindings"])
    assert bindings == [("fan", "exchange", "all"), ("orders.eu", "queue", "eu.#")]
    assert defs["policies"][0]["vhost"] == "side"
    one = api.json("GET", "/api/definitions/%2F")
    assert set(one) == {"rabbit_version", "parameters", "policies", "queues", "exchanges",
                        "bindings"}
    assert "vhost" not in one["queues"][0] and one["policies"] == []


def test_round_trip_into_another_broker(api, mbroker):
    build_topology(mbroker)
    defs = api.json("GET", "/api/definitions")
    with Broker.in_thread(management_port=0) as other:
        oapi = API(other.management_url)
        assert oapi.post("/api/definitions", defs).status == 204
        again = oapi.json("GET", "/api/definitions")
        for key in ("queues", "exchanges", "bindings", "policies", "parameters"):
            assert sorted(map(json.dumps, again[key])) == sorted(map(json.dumps, defs[key])), key
        assert sorted(v["name"] for v in again["vhosts"]) == ["/", "side"]
        # the topology works for clients
        conn = pika.BlockingConnection(pika.URLParameters(other.url))
        ch = conn.channel()
        ch.basic_publish("orders", "eu.fr", b"x")
        assert ch.basic_get("orders.eu", auto_ack=True)[2] == b"x"
        conn.close()
        # importing the same file again changes nothing and is no error
        assert oapi.post("/api/definitions", defs).status == 204


def test_server_named_queues_come_back_under_their_names(api, mbroker):
    """RabbitMQ exports a non-exclusive server-named queue, and its import restores it (no
    reserved-prefix rule there); over AMQP the name stays reserved."""
    defs = {"queues": [{"name": "amq.gen-AbCdEf", "vhost": "/", "durable": False,
                        "auto_delete": False, "arguments": {}}]}
    assert api.post("/api/definitions", defs).status == 204
    conn = pika.BlockingConnection(pika.URLParameters(mbroker.url))
    conn.channel().queue_declare("amq.gen-AbCdEf", passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare("amq.gen-other")
    assert info.value.reply_code == 403
    conn.close()
    assert api.put("/api/queues/%2F/amq.gen-x").status == 400


def test_per_vhost_import_and_errors(api):
    defs = {"queues": [{"name": "q1", "durable": False, "auto_delete": False,
                        "arguments": {}}],
            "exchanges": [{"name": "x1", "type": "direct", "durable": False,
                           "auto_delete": False, "internal": False, "arguments": {}}],
            "bindings": [{"source": "x1", "destination": "q1", "destination_type": "queue",
                          "routing_key": "k", "arguments": {}}]}
    assert api.post("/api/definitions/side", defs).status == 204
    assert [q["name"] for q in api.json("GET", "/api/queues/side")] == ["q1"]
    clash = {"queues": [{"name": "q1", "vhost": "side", "durable": True, "auto_delete": False,
                         "arguments": {}}]}
    reply = api.post("/api/definitions", clash)
    assert reply.status == 400 and "inequivalent arg 'durable'" in reply.json()["reason"]
    missing = {"bindings": [{"source": "nope", "vhost": "side", "destination": "q1",
                             "destination_type": "queue", "routing_key": "", "arguments": {}}]}
    assert api.post("/api/definitions", missing).status == 400
    assert api.post("/api/definitions", raw=b"{not json").status == 400
    assert api.post("/api/definitions", {"queues": "many"}).status == 400
    assert api.post("/api/definitions", {"queues": [{"name": "x", "vhost": "nope"}]}
                    ).status == 400


def test_definitions_file_at_boot(tmp_path):
    # definitions loaded at boot replace the default user: the file brings guest itself
    path = tmp_path / "defs.json"
    path.write_text(json.dumps({
        "users": [definitions_user("guest", "guest")],
        "vhosts": [{"name": "/"}, {"name": "boot"}],
        "permissions": [{"user": "guest", "vhost": "boot", "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "queues": [{"name": "preloaded", "vhost": "boot", "durable": True,
                    "auto_delete": False, "arguments": {}}],
        "exchanges": [], "bindings": [],
        "policies": [{"vhost": "boot", "name": "kept", "pattern": ".*", "apply-to": "all",
                      "definition": {"max-length": 5}, "priority": 0}]}))
    mport = free_port()
    with LeveretProcess("--management-port", str(mport), "--definitions", str(path)) as proc:
        proc.started()
        port = proc.port
        api = API(f"http://127.0.0.1:{mport}")
        assert [q["name"] for q in api.json("GET", "/api/queues/boot")] == ["preloaded"]
        assert api.json("GET", "/api/policies/boot/kept")["definition"] == {"max-length": 5}
        conn = pika.BlockingConnection(pika.URLParameters(
            f"amqp://guest:guest@127.0.0.1:{port}/boot"))
        conn.channel().queue_declare("preloaded", passive=True)
        conn.close()
        assert proc.stop() == 0


@pytest.mark.parametrize("content", ["{broken", '{"queues": [{"name": "q", "vhost": "none"}]}'])
def test_bad_definitions_file_is_one_line_and_exit_1(tmp_path, content):
    path = tmp_path / "defs.json"
    path.write_text(content)
    out = subprocess.run([sys.executable, "-m", "leveret", "--port", str(free_port()),
                          "--in-memory", "--no-management", "--no-prometheus",
                          "--definitions", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in out.stderr

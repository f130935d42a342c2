"""The same calls on the local RabbitMQ 3.10 (localhost:15672) and on Leveret: field names,
value types and status codes must agree; definitions move between them both ways.

Skipped cleanly without a RabbitMQ. Its state is made in a vhost of our own, removed after.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import uuid
from typing import Any

import pika
import pytest

from leveret import Broker

from apiclient import API, rabbitmq_api

pytestmark = pytest.mark.rabbitmq

RMQ = rabbitmq_api()
if RMQ is None:
    pytest.skip("no RabbitMQ management API on localhost:15672", allow_module_level=True)

VHOST = f"leveret-api-{uuid.uuid4().hex[:8]}"
Q = urllib.parse.quote(VHOST, safe="")


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def assert_same_shape(ours: Any, theirs: Any, where: str = "", ignore: set[str] = frozenset()
                      ) -> None:
    """Every field RabbitMQ gives, Leveret gives with the same JSON type (recursively)."""
    if theirs == [] and isinstance(ours, dict):
        return  # an empty Erlang proplist: RabbitMQ's "no details yet" (a consumer's channel)
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: {ours!r} is not an object"
        missing = set(theirs) - set(ours) - ignore
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key, value in theirs.items():
            if key in ours and key not in ignore:
                assert_same_shape(ours[key], value, f"{where}.{key}", ignore)
    elif isinstance(theirs, list) and theirs and isinstance(theirs[0], dict):
        assert isinstance(ours, list) and ours, f"{where}: {ours!r}"
        assert_same_shape(ours[0], theirs[0], f"{where}[0]", ignore)
    elif theirs is not None and ours is not None:
        assert kind(ours) == kind(theirs), f"{where}: {ours!r} vs RabbitMQ's {theirs!r}"


def make_state(url: str) -> pika.BlockingConnection:
    """The same topology and traffic on either broker; the connection stays open."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare("dx", "topic", durable=True)
    ch.queue_declare("dq", durable=True, arguments={"x-max-length": 100})
    ch.queue_declare("dq2")
    ch.queue_bind("dq", "dx", "a.#")
    for i in range(3):
        ch.basic_publish("dx", "a.b", b"m%d" % i)
    ch.basic_get("dq", auto_ack=False)
    ch.basic_consume("dq2", lambda *a: None)
    conn.process_data_events(0)
    return conn


@pytest.fixture(scope="module")
def both():
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", VHOST], check=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*",
                    ".*"], check=True, timeout=60)
    try:
        with Broker.in_thread(management_port=0, vhosts=[VHOST]) as lev:
            rconn = make_state(f"amqp://guest:guest@127.0.0.1:5672/{Q}")
            lconn = make_state(lev.url_for(VHOST))
            ours = API(lev.management_url)
            # RabbitMQ emits queue statistics every 5 s: wait for the first
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                q = RMQ.get(f"/api/queues/{Q}/dq").json()
                if "message_stats" in q and q.get("messages") == 3:
                    break
                time.sleep(0.5)
            yield ours, RMQ
            rconn.close()
            lconn.close()
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], timeout=60)


@pytest.mark.parametrize("path", [
    "/api/overview",
    f"/api/queues/{Q}",
    f"/api/queues/{Q}/dq",
    f"/api/queues/{Q}?page=1&page_size=1",
    f"/api/queues/{Q}/dq/bindings",
    f"/api/exchanges/{Q}",
    f"/api/exchanges/{Q}/dx",
    f"/api/exchanges/{Q}/amq.default",
    f"/api/exchanges/{Q}/dx/bindings/source",
    f"/api/bindings/{Q}",
    f"/api/bindings/{Q}/e/dx/q/dq",
    f"/api/vhosts/{Q}",
    f"/api/consumers/{Q}",
    f"/api/vhosts/{Q}/connections",
    f"/api/vhosts/{Q}/channels",
    f"/api/definitions/{Q}",
    "/api/whoami",
    "/api/nodes",
    "/api/health/checks/alarms",
    "/api/health/checks/local-alarms",
    "/api/health/checks/virtual-hosts",
    f"/api/aliveness-test/{Q}",
    "/api/health/checks/port-listener/1",
])
def test_same_fields_and_types(both, path):
    ours, theirs = both
    r_ours, r_theirs = ours.get(path), theirs.get(path)
    assert r_ours.status == r_theirs.status, (r_ours, r_theirs)
    # values that are RabbitMQ's own and not about the broker's state are not compared
    ignore = {"erlang_version", "contexts", "listeners", "applications", "config_files",
              "log_files", "enabled_plugins", "cluster_links", "ra_open_file_metrics",
              "exchange_types", "sample_retention_policies", "ports", "cluster_state",
              # RabbitMQ's queue-process internals
              "backing_queue_status", "garbage_collection"}
    if path.startswith("/api/vhosts/"):
        ignore.add("tags")  # RabbitMQ 3.10 gives [] in the list and "" here for the same vhost
    assert_same_shape(r_ours.json(), r_theirs.json(), path, ignore)


def _first_listed(api: Any, path: str, timeout: float = 20.0) -> Any:
    """The first item of a list RabbitMQ fills as its stats agents report (every 5 s): a
    connection opened a moment ago may not be listed yet."""
    deadline = time.monotonic() + timeout
    while True:
        items = api.json("GET", path)
        if items or time.monotonic() > deadline:
            assert items, f"{path} stayed empty"
            return items[0]
        time.sleep(0.5)


def test_one_connection_one_channel_and_the_rest_have_the_same_fields(both):
    """Paths whose names differ per broker (a connection is named by its ports), and the
    per-vhost and per-user forms of the lists."""
    ours, theirs = both
    ignore = {"garbage_collection", "reductions", "reductions_details"}
    for kind in ("connections", "channels"):
        names = []
        for api in (ours, theirs):
            item = _first_listed(api, f"/api/vhosts/{Q}/{kind}")
            names.append(urllib.parse.quote(item["name"], safe=""))
        mine, rabbits = (ours.get(f"/api/{kind}/{names[0]}"),
                         theirs.get(f"/api/{kind}/{names[1]}"))
        assert mine.status == rabbits.status == 200
        assert_same_shape(mine.json(), rabbits.json(), kind, ignore)
        if kind == "connections":
            mine, rabbits = (ours.get(f"/api/connections/{names[0]}/channels"),
                             theirs.get(f"/api/connections/{names[1]}/channels"))
            assert_same_shape(mine.json(), rabbits.json(), "connection channels", ignore)
    for path in (f"/api/exchanges/{Q}/amq.topic/bindings/destination",
                 f"/api/queues/{Q}/dq2/bindings", "/api/users/guest",
                 f"/api/permissions/{Q}/guest", f"/api/vhosts/{Q}/permissions",
                 "/api/users/guest/permissions", f"/api/policies/{Q}",
                 f"/api/vhost-limits/{Q}", "/api/health/checks/node-is-quorum-critical",
                 "/api/health/checks/protocol-listener/amqp"):
        mine, rabbits = ours.get(path), theirs.get(path)
        assert mine.status == rabbits.status, path
        assert_same_shape(mine.json(), rabbits.json(), path, ignore)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", f"/api/queues/{Q}/missing", None),
    ("GET", "/api/queues/no-such-vhost", None),
    ("GET", "/api/no-such-endpoint", None),
    ("GET", f"/api/queues/{Q}?page=0", None),
    ("GET", f"/api/queues/{Q}?page=50", None),
    ("PUT", f"/api/queues/{Q}/dq", {"durable": False}),
    ("DELETE", f"/api/queues/{Q}/dq?if-empty=true", None),
    ("DELETE", f"/api/exchanges/{Q}/missing", None),
    ("POST", f"/api/bindings/{Q}/e/missing/q/dq", {"routing_key": "x"}),
    ("PATCH", "/api/queues", None),
])
def test_same_errors(both, method, path, body):
    ours, theirs = both
    r_ours = ours.request(method, path, body)
    r_theirs = theirs.request(method, path, body)
    assert r_ours.status == r_theirs.status, (method, path, r_ours, r_theirs)
    if r_theirs.body:
        assert set(r_ours.json()) == set(r_theirs.json())
        if r_theirs.status == 404:
            assert r_ours.json() == r_theirs.json()


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", f"/api/queues/{Q}/dq/get", {"count": 1, "ackmode": "nope", "encoding": "auto"}, 400),
    ("GET", "/api/nodes/rabbit@nowhere", None, 404),
])
def test_where_rabbitmq_crashes_leveret_answers(both, method, path, body, status):
    """RabbitMQ 3.10 answers these with an empty 500; Leveret says what is wrong."""
    ours, theirs = both
    assert theirs.request(method, path, body).status == 500
    reply = ours.request(method, path, body)
    assert reply.status == status and set(reply.json()) == {"error", "reason"}


def test_same_authentication_answers(both):
    ours, theirs = both
    for api in (ours, theirs):
        assert api.get("/api/overview", auth=False).status == 401
    wrong_ours = API(ours.base, "guest", "wrong").get("/api/overview")
    wrong_theirs = API(theirs.base, "guest", "wrong").get("/api/overview")
    assert wrong_ours.status == wrong_theirs.status == 401
    assert wrong_ours.json() == wrong_theirs.json()
    assert wrong_ours.headers["www-authenticate"] == wrong_theirs.headers["www-authenticate"]


def test_get_and_publish_answer_alike(both):
    ours, theirs = both
    for api in (ours, theirs):
        api.post(f"/api/exchanges/{Q}/amq.default/publish",
                 {"routing_key": "dq2-no-consumer", "payload": "x",
                  "payload_encoding": "string", "properties": {}})
    routed = [api.json("POST", f"/api/exchanges/{Q}/dx/publish",
                       {"routing_key": "a.z", "payload": "p", "payload_encoding": "string",
                        "properties": {"headers": {"h": 1}}}) for api in (ours, theirs)]
    assert routed[0] == routed[1] == {"routed": True}
    got = [api.json("POST", f"/api/queues/{Q}/dq/get",
                    {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto",
                     "truncate": 50000}) for api in (ours, theirs)]
    assert_same_shape(got[0], got[1], "get")
    assert got[0][0]["payload"] == got[1][0]["payload"]
    assert got[0][0]["properties"] == got[1][0]["properties"]


# ---------------------------------------------------------------------- definitions both ways

def amqp_login(port: int, user: str, password: str, vhost: str) -> None:
    """Open and close a connection as ``user`` (raises if the login or vhost is refused)."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials(user, password),
        connection_attempts=1))
    conn.channel().exchange_declare("amq.direct", passive=True)
    conn.close()


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="no rabbitmqctl")
def test_leveret_export_imports_into_rabbitmq():
    vhost = f"leveret-imp-{uuid.uuid4().hex[:8]}"
    user = f"leveret-imp-user-{uuid.uuid4().hex[:8]}"
    qv = urllib.parse.quote(vhost, safe="")
    with Broker.in_thread(management_port=0, vhosts=[vhost]) as lev:
        api = API(lev.management_url)
        # a user made on Leveret: its password hash must log in to RabbitMQ
        assert api.put(f"/api/users/{user}", {"password": "moved-ü", "tags": "monitoring"}
                       ).status == 201
        assert api.put(f"/api/permissions/{qv}/{user}",
                       {"configure": "^imp", "write": ".*", "read": ".*"}).status == 201
        conn = pika.BlockingConnection(pika.URLParameters(lev.url_for(vhost)))
        ch = conn.channel()
        ch.exchange_declare("imp-x", "headers", durable=True)
        ch.queue_declare("imp-q", durable=True, arguments={"x-message-ttl": 60000})
        ch.queue_bind("imp-q", "imp-x", "", arguments={"x-match": "any", "k": "v"})
        conn.close()
        api.put(f"/api/policies/{qv}/imp-p", {"pattern": "^imp", "definition": {"max-length": 9}})
        defs = api.json("GET", "/api/definitions")
    # only what belongs to this test goes to the shared RabbitMQ: its vhost and its user
    defs["users"] = [u for u in defs["users"] if u["name"] == user]
    defs["permissions"] = [p for p in defs["permissions"] if p["vhost"] == vhost]
    defs["topic_permissions"] = [p for p in defs["topic_permissions"] if p["vhost"] == vhost]
    defs["vhosts"] = [v for v in defs["vhosts"] if v["name"] == vhost]
    defs["global_parameters"] = []
    [exported_user] = defs["users"]
    try:
        # on stdin: the node reads a named file itself, as the rabbitmq user
        subprocess.run(["rabbitmqctl", "-q", "import_definitions"], input=json.dumps(defs),
                       check=True, timeout=60, capture_output=True, text=True)
        deadline = time.monotonic() + 30  # the import is asynchronous
        while RMQ.get(f"/api/queues/{qv}/imp-q").status != 200:
            assert time.monotonic() < deadline, "RabbitMQ never imported the queue"
            time.sleep(0.2)
        q = RMQ.json("GET", f"/api/queues/{qv}/imp-q")
        assert q["durable"] is True and q["arguments"] == {"x-message-ttl": 60000}
        [b] = [b for b in RMQ.json("GET", f"/api/bindings/{qv}") if b["source"] == "imp-x"]
        assert b["arguments"] == {"x-match": "any", "k": "v"}
        assert RMQ.json("GET", f"/api/exchanges/{qv}/imp-x")["type"] == "headers"
        assert RMQ.json("GET", f"/api/policies/{qv}/imp-p")["definition"] == {"max-length": 9}
        # the user came with its hash, tags and permissions, and logs in with its password
        seen = RMQ.json("GET", f"/api/users/{user}")
        assert (seen["password_hash"], seen["hashing_algorithm"], seen["tags"]) == (
            exported_user["password_hash"], "rabbit_password_hashing_sha256", ["monitoring"])
        assert RMQ.json("GET", f"/api/permissions/{qv}/{user}")["configure"] == "^imp"
        amqp_login(5672, user, "moved-ü", vhost)
        assert API(RMQ.base, user, "moved-ü").get("/api/whoami").json() == {
            "name": user, "tags": ["monitoring"]}
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            amqp_login(5672, user, "moved-u", vhost)
    finally:
        RMQ.delete(f"/api/users/{user}")
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60)


def test_rabbitmq_export_imports_into_leveret():
    vhost = f"leveret-exp-{uuid.uuid4().hex[:8]}"
    user = f"leveret-exp-user-{uuid.uuid4().hex[:8]}"
    qv = urllib.parse.quote(vhost, safe="")
    assert RMQ.put(f"/api/vhosts/{qv}").status == 201
    try:
        assert RMQ.put(f"/api/users/{user}", {"password": "from-rabbit-ß",
                                               "tags": "management"}).status == 201
        RMQ.put(f"/api/permissions/{qv}/{user}", {"configure": "", "write": "^exp",
                                                   "read": ".*"})
        RMQ.put(f"/api/exchanges/{qv}/exp-x", {"type": "fanout", "durable": True})
        RMQ.put(f"/api/queues/{qv}/exp-q", {"durable": True,
                                             "arguments": {"x-max-priority": 5}})
        RMQ.post(f"/api/bindings/{qv}/e/exp-x/q/exp-q", {"routing_key": "", "arguments": {}})
        RMQ.put(f"/api/policies/{qv}/exp-p", {"pattern": "^exp", "apply-to": "queues",
                                               "definition": {"message-ttl": 5000}})
        exported = RMQ.json("GET", f"/api/definitions/{qv}")
        full = RMQ.json("GET", "/api/definitions")
    finally:
        RMQ.delete(f"/api/vhosts/{qv}")
        RMQ.delete(f"/api/users/{user}")
    with Broker.in_thread(management_port=0, vhosts=[vhost]) as lev:
        api = API(lev.management_url)
        assert api.post(f"/api/definitions/{qv}", exported).status == 204
        assert api.json("GET", f"/api/queues/{qv}/exp-q")["arguments"] == {"x-max-priority": 5}
        assert api.json("GET", f"/api/exchanges/{qv}/exp-x")["type"] == "fanout"
        assert api.json("GET", f"/api/policies/{qv}/exp-p")["definition"] == \
            {"message-ttl": 5000}
        conn = pika.BlockingConnection(pika.URLParameters(lev.url_for(vhost)))
        ch = conn.channel()
        ch.basic_publish("exp-x", "", b"through")
        assert ch.basic_get("exp-q", auto_ack=True)[2] == b"through"
        conn.close()
    # RabbitMQ's whole-broker file (other users' vhosts included) imports as a whole, and
    # its users log in to Leveret with their RabbitMQ passwords
    with Broker.in_thread(management_port=0) as lev:
        api = API(lev.management_url)
        assert api.post("/api/definitions", full).status == 204
        names = {v["name"] for v in api.json("GET", "/api/vhosts")}
        assert {v["name"] for v in full["vhosts"]} <= names
        assert {u["name"] for u in full["users"]} <= {
            u["name"] for u in api.json("GET", "/api/users")}
        assert api.json("GET", f"/api/permissions/{qv}/{user}")["write"] == "^exp"
        amqp_login(lev.port, user, "from-rabbit-ß", vhost)
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            amqp_login(lev.port, user, "from-rabbit-ss", vhost)
        assert API(lev.management_url, user, "from-rabbit-ß").get("/api/whoami").json() == {
            "name": user, "tags": ["management"]}
        # RabbitMQ's write permission, now Leveret's: ^exp only
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", lev.port, vhost, pika.PlainCredentials(user, "from-rabbit-ß")))
        ch = conn.channel()
        ch.basic_publish("exp-x", "", b"allowed")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.basic_publish("amq.direct", "", b"refused")
            ch.queue_declare("exp-q", passive=True)
        assert refused.value.reply_code == 403
        conn.close()

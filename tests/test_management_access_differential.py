"""Who may call what, and what bad calls are answered with: the same requests, as users of each
management tag and as an administrator with bad input, on the local RabbitMQ 3.10
(localhost:15672) and on Leveret; the status codes and the error bodies must be the same.

Skipped cleanly without a RabbitMQ. On it, everything is made in a vhost and by users of this
module's own (random names), removed afterwards.
"""

from __future__ import annotations

import re
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

TAG = uuid.uuid4().hex[:8]
VHOST = f"leveret-acl-{TAG}"
V = urllib.parse.quote(VHOST, safe="")
# one user of each kind; RabbitMQ's users are broker-wide, so their names are this run's own
USERS = {"mgmt": "management", "mon": "monitoring", "pol": "policymaker", "notag": ""}
NAME = {kind: f"leveret-acl-{kind}-{TAG}" for kind in USERS}
PASSWORD = "pw-acl"
ADDRESS = re.compile(r"[0-9.]+:\d+")  # connections and channels are named by their ends


def setup_broker(api: API) -> None:
    """The same users, permissions and policy on either broker, over its API."""
    for kind, tags in USERS.items():
        assert api.put(f"/api/users/{NAME[kind]}",
                       {"password": PASSWORD, "tags": tags}).status in (201, 204)
    api.put(f"/api/permissions/{V}/{NAME['mgmt']}",
            {"configure": "^m-", "write": "^m-", "read": "^m-"})
    api.put(f"/api/permissions/{V}/{NAME['pol']}",
            {"configure": ".*", "write": ".*", "read": ".*"})
    assert api.put(f"/api/policies/{V}/acl-policy",
                   {"pattern": "^nothing", "definition": {"max-length": 1}}).status == 201


def make_traffic(url: str) -> pika.BlockingConnection:
    """A guest connection with a queue, an exchange and a consumer in the vhost."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare("dx", "direct")
    ch.queue_declare("dq")
    ch.queue_bind("dq", "dx", "k")
    ch.basic_publish("", "dq", b"one")
    ch.basic_consume("dq", lambda *a: None, auto_ack=False)
    conn.process_data_events(0)
    return conn


def first_name(api: API, path: str, timeout: float = 30) -> str:
    """The percent-encoded name of the first item ``path`` lists (RabbitMQ lists a
    connection once its statistics arrive)."""
    deadline = time.monotonic() + timeout
    while True:
        items = api.json("GET", path)
        if items:
            return urllib.parse.quote(items[0]["name"], safe="")
        assert time.monotonic() < deadline, f"nothing at {path}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def both():
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", VHOST], check=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*",
                    ".*"], check=True, timeout=60)
    try:
        setup_broker(RMQ)
        with Broker.in_thread(management_port=0, vhosts=[VHOST]) as lev:
            ours = API(lev.management_url)
            setup_broker(ours)
            rconn = make_traffic(f"amqp://guest:guest@127.0.0.1:5672/{V}")
            lconn = make_traffic(lev.url_for(VHOST))
            names = {}
            for key, api in (("lev", ours), ("rmq", RMQ)):
                names[key] = {"conn": first_name(api, f"/api/vhosts/{V}/connections"),
                              "chan": first_name(api, f"/api/vhosts/{V}/channels")}
            yield ours, names
            rconn.close()
            lconn.close()
    finally:
        for name in NAME.values():
            RMQ.delete(f"/api/users/{name}")
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], timeout=60)


def as_user(api: API, kind: str) -> API:
    return API(api.base, NAME[kind], PASSWORD) if kind != "admin" else api


def about_this_run(body: Any) -> Any:
    """What a listing says about this module's vhost and users: other users of the shared
    RabbitMQ have theirs too."""
    if isinstance(body, dict):  # one object: its fields are the shape tests' business
        return "an object"
    if not isinstance(body, list):
        return body
    mine = set(NAME.values()) | {VHOST}
    return sorted({(str(it.get("vhost", "")),
                    ADDRESS.sub("ADDRESS", str(it.get("name", it.get("user", "")))))
                   for it in body if isinstance(it, dict)
                   and (it.get("vhost") == VHOST or it.get("name") in mine
                        or it.get("user") in mine)})


def compare(ours: API, names: dict[str, dict[str, str]], kind: str, method: str, path: str,
            body: Any = None, same_body: bool = True) -> None:
    replies = {}
    for key, api in (("lev", ours), ("rmq", RMQ)):
        full = path.format(v=V, **names[key])
        replies[key] = as_user(api, kind).request(method, full, body)
    lev, rmq = replies["lev"], replies["rmq"]
    assert lev.status == rmq.status, (kind, method, path, lev, rmq)
    if rmq.status >= 400 and rmq.body:
        if same_body:
            assert lev.json() == rmq.json(), (kind, method, path)
        else:
            assert set(lev.json()) == set(rmq.json()), (kind, method, path)
    elif rmq.status == 200 and same_body:
        assert about_this_run(lev.json()) == about_this_run(rmq.json()), (kind, method, path)


# (user kind, method, path, body); {v} is the vhost, {conn}/{chan} a guest's connection and
# channel there. In order: later calls see what earlier ones made.
CALLS = [
    (kind, "GET", path, None) for kind in ("mgmt", "mon", "pol", "notag") for path in (
        "/api/whoami", "/api/nodes", "/api/users", "/api/permissions", "/api/definitions",
        "/api/vhosts/{v}", "/api/queues", "/api/queues/{v}", "/api/queues/%2F",
        "/api/queues/{v}/dq", "/api/exchanges/{v}", "/api/exchanges/{v}/dx",
        "/api/bindings/{v}", "/api/queues/{v}/dq/bindings", "/api/policies",
        "/api/policies/{v}", "/api/policies/{v}/acl-policy", "/api/parameters",
        "/api/global-parameters", "/api/operator-policies", "/api/vhost-limits",
        "/api/user-limits", "/api/connections/{conn}", "/api/connections/{conn}/channels",
        "/api/channels/{chan}", "/api/vhosts/{v}/connections", "/api/vhosts/{v}/channels",
        "/api/consumers/{v}", "/api/health/checks/alarms", "/api/aliveness-test/{v}",
        "/api/definitions/{v}")
] + [
    ("mgmt", "PUT", "/api/queues/{v}/m-made", {}),
    ("mgmt", "PUT", "/api/queues/{v}/not-mine", {}),
    ("mgmt", "PUT", "/api/exchanges/{v}/m-x", {"type": "fanout"}),
    ("mgmt", "POST", "/api/bindings/{v}/e/m-x/q/m-made", {"routing_key": "", "arguments": {}}),
    ("mgmt", "POST", "/api/bindings/{v}/e/dx/q/m-made", {"routing_key": "", "arguments": {}}),
    ("mgmt", "POST", "/api/exchanges/{v}/m-x/publish",
     {"routing_key": "", "payload": "p", "payload_encoding": "string", "properties": {}}),
    ("mgmt", "POST", "/api/exchanges/{v}/amq.default/publish",
     {"routing_key": "dq", "payload": "p", "payload_encoding": "string", "properties": {}}),
    ("mgmt", "POST", "/api/queues/{v}/m-made/get",
     {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    ("mgmt", "POST", "/api/queues/{v}/dq/get",
     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    ("mgmt", "DELETE", "/api/queues/{v}/dq/contents", None),
    ("mgmt", "DELETE", "/api/queues/{v}/dq", None),
    ("mgmt", "PUT", "/api/policies/{v}/m-policy", {"pattern": "^m", "definition": {}}),
    ("mgmt", "DELETE", "/api/connections/{conn}", None),
    ("mon", "DELETE", "/api/connections/{conn}", None),
    ("mon", "PUT", "/api/queues/{v}/m-mon", {}),
    ("mon", "POST", "/api/queues/{v}/dq/get",
     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    ("pol", "PUT", "/api/policies/{v}/pol-policy",
     {"pattern": "^p", "definition": {"max-length": 2}}),
    ("pol", "GET", "/api/policies/{v}/pol-policy", None),
    ("pol", "DELETE", "/api/policies/{v}/pol-policy", None),
    ("pol", "PUT", "/api/global-parameters/leveret-acl-" + TAG, {"value": {"a": 1}}),
    ("pol", "DELETE", "/api/global-parameters/leveret-acl-" + TAG, None),
    ("pol", "PUT", "/api/vhosts/leveret-acl-never-" + TAG, {}),
    ("mgmt", "DELETE", "/api/queues/{v}/m-made", None),
    ("mgmt", "DELETE", "/api/exchanges/{v}/m-x", None),
]


def test_each_tag_may_do_what_it_may_in_rabbitmq(both):
    ours, names = both
    for kind, method, path, body in CALLS:
        # a listing's items are RabbitMQ's own where it runs queue processes and statistics
        # (node, memory, ...): the differential shape tests compare those, here only who sees
        # which objects
        compare(ours, names, kind, method, path, body,
                same_body=not path.startswith(("/api/nodes", "/api/definitions")))


def test_overview_shows_node_figures_to_monitoring_users_only(both):
    ours, _ = both
    for kind in ("mgmt", "mon", "pol", "admin"):
        lev = as_user(ours, kind).json("GET", "/api/overview")
        rmq = as_user(RMQ, kind).json("GET", "/api/overview")
        for key in ("node", "listeners", "contexts"):
            assert (key in lev) == (key in rmq), (kind, key)
        assert set(lev["object_totals"]) == set(rmq["object_totals"]), kind


def test_sort_filter_page_and_columns_give_the_same_lists(both):
    """The same queues on both brokers, listed through every list parameter."""
    ours, _ = both
    names = ["Zeta", "alpha", "Alpha-2", "beta", "b.eta", "gamma"]
    for api in (ours, RMQ):
        for i, name in enumerate(names):
            api.put(f"/api/queues/{V}/{name}", {"durable": False,
                                                 "arguments": {"x-max-length": 10 + i}})
    queries = [
        "columns=name", "sort=name&columns=name", "sort=name&sort_reverse=true&columns=name",
        "sort=arguments.x-max-length&sort_reverse=true&columns=name",
        "sort=&columns=name,durable", "columns=name,arguments.x-max-length",
        "page=1&page_size=2&columns=name", "page=2&page_size=4&columns=name",
        "page=1&name=ALPHA&columns=name", "page=1&name=^[ab]&use_regex=true&columns=name",
        "page=1&name=b.eta&use_regex=false&columns=name",
        "page=1&name=b.eta&use_regex=true&columns=name",
        "page=1&page_size=3&name=a&sort=name&sort_reverse=true&columns=name",
    ]
    try:
        for query in queries:
            lev = ours.json("GET", f"/api/queues/{V}?{query}")
            rmq = RMQ.json("GET", f"/api/queues/{V}?{query}")
            if query.startswith("sort=&"):  # unsorted: the same items, in any order
                key = lambda q: q["name"]  # noqa: E731
                lev, rmq = sorted(lev, key=key), sorted(rmq, key=key)
            if isinstance(rmq, list):  # not paged: the queues of the traffic fixture too
                rmq = [q for q in rmq if q["name"] in names]
                lev = [q for q in lev if q["name"] in names]
            else:
                for reply in (lev, rmq):
                    reply["items"] = [q for q in reply["items"] if q["name"] in names]
            assert lev == rmq, query
    finally:
        for api in (ours, RMQ):
            for name in names:
                api.delete(f"/api/queues/{V}/{name}")


# (method, path, body): bad input as an administrator, answered with the same status and the
# same error body
BAD_INPUT = [
    ("PUT", "/api/queues/{v}/q", "{not json"),
    ("PUT", "/api/queues/{v}/q", '"doubly encoded"'),
    ("PUT", "/api/queues/{v}/q", {"durable": True, "arguments": {"x-max-length": "many"}}),
    ("PUT", "/api/queues/leveret-acl-nowhere/q", {}),
    ("PUT", "/api/exchanges/leveret-acl-nowhere/x", {"type": "direct"}),
    ("POST", "/api/bindings/leveret-acl-nowhere/e/a/q/b", {}),
    ("POST", "/api/bindings/{v}/e/dx/q/missing", {}),
    ("GET", "/api/bindings/{v}/e/missing/q/dq", None),
    ("PUT", "/api/policies/leveret-acl-nowhere/p",
     {"pattern": ".*", "definition": {"max-length": 1}}),
    ("GET", "/api/definitions/leveret-acl-nowhere", None),
    ("POST", "/api/definitions/leveret-acl-nowhere", {}),
    ("PUT", "/api/permissions/{v}/" + NAME["mgmt"], {"configure": ".*"}),
    ("PUT", "/api/permissions/leveret-acl-nowhere/" + NAME["mgmt"],
     {"configure": ".*", "write": ".*", "read": ".*"}),
    ("GET", "/api/queues/{v}?page=1&name=(&use_regex=true", None),
    ("GET", "/api/queues/{v}?page=0", None),
    ("GET", "/api/queues/{v}?page=1&page_size=501", None),
    ("GET", "/api/queues/{v}?page=1&page_size=x", None),
    ("GET", "/api/queues/{v}?page=7", None),
    ("POST", "/api/exchanges/{v}/dx/publish", {}),
    ("POST", "/api/exchanges/{v}/dx/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string"}),
    ("POST", "/api/exchanges/{v}/missing/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {}}),
    ("POST", "/api/exchanges/leveret-acl-nowhere/x/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {}}),
    ("POST", "/api/queues/{v}/missing/get",
     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    ("POST", "/api/queues/{v}/dq/get", {}),
    ("POST", "/api/queues/{v}/dq/get",
     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "zip"}),
    ("POST", "/api/users/bulk-delete", {}),
    ("PUT", "/api/users/" + NAME["mgmt"], {"password": "x"}),
    ("GET", "/api/health/checks/port-listener/abc", None),
    ("GET", "/api/health/checks/certificate-expiration/x/days", None),
    ("GET", "/api/health/checks/certificate-expiration/1/fortnights", None),
    ("GET", "/api/health/checks/node-is-quorum-critical", None),
    ("GET", "/api/health/checks/node-is-mirror-sync-critical", None),
    ("GET", "/api/vhost-limits/leveret-acl-nowhere", None),
    ("GET", "/api/user-limits/leveret-acl-nowhere", None),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_INPUT)
def test_bad_input_is_answered_as_rabbitmq_answers_it(both, method, path, body):
    ours, names = both
    replies = []
    for key, api in (("lev", ours), ("rmq", RMQ)):
        full = path.format(v=V, **names[key])
        if isinstance(body, str):
            replies.append(api.request(method, full, raw=body.encode()))
        else:
            replies.append(api.request(method, full, body))
    lev, rmq = replies
    assert lev.status == rmq.status, (lev, rmq)
    assert lev.json() == rmq.json()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/api/permissions/{v}/" + NAME["mgmt"],
     {"configure": "(", "write": ".*", "read": ".*"}),
    ("PUT", "/api/topic-permissions/{v}/" + NAME["mgmt"],
     {"exchange": "amq.topic", "write": "[", "read": ".*"}),
    ("PUT", "/api/policies/{v}/bad", {"pattern": "(", "definition": {}}),
    ("POST", "/api/exchanges/{v}/dx/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string",
      "properties": {"delivery_mode": "2"}}),
    ("PUT", "/api/queues/{v}/q", {"durable": "maybe"}),
])
def test_bad_expressions_and_values_get_rabbitmqs_status(both, method, path, body):
    """RabbitMQ's reasons here are Erlang terms (["invalid_regexp", [40], ...]); Leveret says
    the same in words, with the same status and error."""
    ours, names = both
    lev = ours.request(method, path.format(v=V, **names["lev"]), body)
    rmq = RMQ.request(method, path.format(v=V, **names["rmq"]), body)
    assert lev.status == rmq.status == 400
    assert lev.json()["error"] == rmq.json()["error"] == "bad_request"
    assert isinstance(lev.json()["reason"], str) and lev.json()["reason"]

"""The management API's endpoints over HTTP, with pika clients making the state they show."""

from __future__ import annotations

import time
import urllib.parse

import pika
import pika.exceptions
import pytest

from leveret import Broker

from apiclient import API


@pytest.fixture
def mbroker():
    with Broker.in_thread(management_port=0, vhosts=["other"]) as b:
        yield b


@pytest.fixture
def api(mbroker) -> API:
    return API(mbroker.management_url)


@pytest.fixture
def channel(mbroker):
    conn = pika.BlockingConnection(pika.URLParameters(mbroker.url))
    yield conn.channel()
    if conn.is_open:
        conn.close()


def wait_for(fetch, check, timeout: float = 10.0):
    """Poll the API until ``check(fetch())`` holds (rates need a sample or two)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {value!r}")
        time.sleep(0.1)


# ---------------------------------------------------------------------- queues

QUEUE_FIELDS = {
    "arguments": dict, "auto_delete": bool, "durable": bool, "exclusive": bool, "name": str,
    "node": str, "type": str, "vhost": str, "state": str, "consumers": int, "messages": int,
    "messages_ready": int, "messages_unacknowledged": int, "message_bytes": int,
    "messages_details": dict, "message_stats": dict, "memory": int, "messages_ram": int,
    "consumer_utilisation": (int, float), "idle_since": str, "policy": type(None),
}


def test_queue_listing_has_rabbitmq_fields_and_counts(api, channel):
    channel.queue_declare("work", durable=False, arguments={"x-max-length": 100})
    channel.queue_declare("idle")
    for i in range(3):
        channel.basic_publish("", "work", b"m%d" % i)
    channel.basic_get("work", auto_ack=False)
    queues = {q["name"]: q for q in api.json("GET", "/api/queues")}
    assert set(queues) == {"work", "idle"}
    work = queues["work"]
    for name, kind in QUEUE_FIELDS.items():
        assert isinstance(work[name], kind), (name, work[name])
    assert (work["messages"], work["messages_ready"], work["messages_unacknowledged"]) == (3, 2, 1)
    assert work["arguments"] == {"x-max-length": 100}
    assert work["vhost"] == "/" and work["type"] == "classic" and work["state"] == "running"
    # RabbitMQ's message_bytes counts the unacknowledged body too (test_queue_sizes.py)
    assert (work["message_bytes"], work["message_bytes_ready"],
            work["message_bytes_unacknowledged"]) == (6, 4, 2)
    stats = work["message_stats"]
    assert stats["publish"] == 3 and stats["get"] == 1 and stats["deliver_get"] == 1
    assert isinstance(stats["publish_details"]["rate"], float)


def test_rates_follow_the_traffic(api, channel):
    channel.queue_declare("busy")
    for _ in range(50):
        channel.basic_publish("", "busy", b"x")
    q = wait_for(lambda: api.json("GET", "/api/queues/%2F/busy"),
                 lambda q: q["message_stats"]["publish_details"]["rate"] > 0)
    assert q["message_stats"]["publish"] == 50
    assert q["messages_details"]["rate"] > 0
    overview = wait_for(lambda: api.json("GET", "/api/overview"),
                        lambda o: o["message_stats"]["publish_details"]["rate"] > 0)
    assert overview["message_stats"]["publish"] == 50
    assert overview["queue_totals"]["messages"] == 50
    got = 0
    for method, _props, _body in channel.consume("busy", inactivity_timeout=1):
        if method is None:
            break
        channel.basic_ack(method.delivery_tag)
        got += 1
        if got == 50:
            break
    channel.cancel()
    q = wait_for(lambda: api.json("GET", "/api/queues/%2F/busy"),
                 lambda q: q["message_stats"]["ack_details"]["rate"] > 0
                 and q["message_stats"]["ack"] == 50)
    assert q["message_stats"]["deliver_get_details"]["rate"] > 0
    assert q["messages"] == 0


def test_vhost_paths_percent_2f_and_empty_segment(api, channel, mbroker):
    channel.queue_declare("here")
    other = pika.BlockingConnection(pika.URLParameters(mbroker.url_for("other")))
    other.channel().queue_declare("there")
    names = lambda path: sorted(q["name"] for q in api.json("GET", path))  # noqa: E731
    assert names("/api/queues") == ["here", "there"]
    assert names("/api/queues/%2F") == ["here"]
    assert names("/api/queues//") == ["here"]  # Flower's form
    assert names("/api/queues/other") == ["there"]
    assert api.get("/api/queues//here").json()["name"] == "here"
    assert api.get("/api/queues/nope").status == 404
    assert api.get("/api/queues/%2F/nope").json() == {"error": "Object Not Found",
                                                    "reason": "Not Found"}
    other.close()


def test_pagination_filter_sort_columns(api, channel):
    for name in ("alpha", "beta", "gamma", "delta", "Alphabet"):
        channel.queue_declare(name)
    channel.basic_publish("", "gamma", b"1")
    page = api.json("GET", "/api/queues?page=1&page_size=2")
    assert {k: v for k, v in page.items() if k != "items"} == {
        "filtered_count": 5, "item_count": 2, "page": 1, "page_count": 3, "page_size": 2,
        "total_count": 5}
    assert [q["name"] for q in page["items"]] == ["Alphabet", "alpha"]
    page3 = api.json("GET", "/api/queues?page=3&page_size=2")
    assert [q["name"] for q in page3["items"]] == ["gamma"]
    filtered = api.json("GET", "/api/queues?page=1&name=ALPHA")
    assert [q["name"] for q in filtered["items"]] == ["Alphabet", "alpha"]
    assert filtered["filtered_count"] == 2 and filtered["total_count"] == 5
    regex = api.json("GET", "/api/queues?page=1&name=^[bd]&use_regex=true")
    assert [q["name"] for q in regex["items"]] == ["beta", "delta"]
    by_messages = api.json("GET", "/api/queues?sort=messages&sort_reverse=true")
    assert by_messages[0]["name"] == "gamma"
    cols = api.json("GET", "/api/queues?columns=name,message_stats.publish&sort=name")
    assert cols[0] == {"name": "Alphabet", "message_stats": {"publish": 0}}
    out_of_range = api.get("/api/queues?page=9&page_size=2")
    assert out_of_range.status == 400
    assert out_of_range.json() == {
        "error": "page_out_of_range", "reason": "Page out of range, page: 9 page size: 2, len: 5"}
    for bad in ("page=abc", "page=0", "page=1&page_size=501", "page=1&name=(&use_regex=true"):
        reply = api.get("/api/queues?" + bad)
        assert reply.status == 400 and set(reply.json()) == {"error", "reason"}, bad


def test_put_and_delete_queue(api, channel):
    assert api.put("/api/queues/%2F/made", {"durable": True, "auto_delete": False,
                                            "arguments": {"x-message-ttl": 5000}}).status == 201
    assert api.put("/api/queues/%2F/made", {"durable": True,
                                            "arguments": {"x-message-ttl": 5000}}).status == 204
    clash = api.put("/api/queues/%2F/made", {"durable": False})
    assert clash.status == 400
    assert clash.json() == {"error": "bad_request", "reason": "inequivalent arg 'durable' for "
                            "queue 'made' in vhost '/': received 'false' but current is 'true'"}
    channel.queue_declare("made", passive=True)  # a real queue for AMQP clients
    channel.basic_publish("", "made", b"x")
    wait_for(lambda: api.json("GET", "/api/queues/%2F/made"), lambda q: q["messages"] == 1)
    not_empty = api.delete("/api/queues/%2F/made?if-empty=true")
    assert not_empty.status == 400
    assert not_empty.json()["reason"] == "queue 'made' in vhost '/' not empty"
    assert api.delete("/api/queues/%2F/made/contents").status == 204
    assert api.json("GET", "/api/queues/%2F/made")["messages"] == 0
    channel.basic_consume("made", lambda *a: None)
    assert api.delete("/api/queues/%2F/made?if-unused=true").status == 400
    assert api.delete("/api/queues/%2F/made").status == 204
    assert api.delete("/api/queues/%2F/made").status == 404
    assert api.put("/api/queues/nope/q").status == 404
    assert api.put("/api/queues/%2F/amq.reserved").status == 400


def test_queue_consumers_and_bindings(api, channel):
    channel.queue_declare("cq")
    channel.exchange_declare("cx", "topic")
    channel.queue_bind("cq", "cx", "a.*")
    channel.basic_qos(prefetch_count=7)
    tag = channel.basic_consume("cq", lambda *a: None)
    q = api.json("GET", "/api/queues/%2F/cq")
    assert q["consumers"] == 1
    [detail] = q["consumer_details"]
    assert detail["consumer_tag"] == tag and detail["prefetch_count"] == 7
    assert detail["queue"] == {"name": "cq", "vhost": "/"}
    assert detail["channel_details"]["number"] == 1
    bindings = api.json("GET", "/api/queues/%2F/cq/bindings")
    assert [(b["source"], b["routing_key"]) for b in bindings] == [("", "cq"), ("cx", "a.*")]
    consumers = api.json("GET", "/api/consumers")
    assert [c["consumer_tag"] for c in consumers] == [tag]


# ---------------------------------------------------------------------- overview, nodes

def test_overview_has_what_tools_read(api, channel, mbroker):
    channel.queue_declare("ov")
    channel.basic_publish("", "ov", b"hello")
    o = api.json("GET", "/api/overview")
    for key in ("rabbitmq_version", "product_name", "product_version", "cluster_name", "node",
                "erlang_version", "erlang_full_version", "management_version"):
        assert isinstance(o[key], str) and o[key], key
    assert o["object_totals"] == {"channels": 1, "connections": 1, "consumers": 0,
                                  "exchanges": 14, "queues": 1}  # 7 per vhost, as RabbitMQ
    assert o["queue_totals"]["messages"] == 1 and o["queue_totals"]["messages_ready"] == 1
    assert o["message_stats"]["publish"] == 1
    churn = o["churn_rates"]
    assert churn["connection_created"] == 1 and churn["queue_created"] == 1
    assert churn["channel_created"] == 1 and "rate" in churn["queue_declared_details"]
    assert {"protocol": "amqp", "port": mbroker.port}.items() <= o["listeners"][0].items()
    assert [t["name"] for t in o["exchange_types"]] == ["direct", "fanout", "headers", "topic"]


def test_nodes_whoami_extensions_cluster_name(api):
    [node] = api.json("GET", "/api/nodes")
    assert node["name"] == api.json("GET", "/api/overview")["node"]
    assert node["running"] is True and node["mem_used"] > 0 and node["fd_used"] > 0
    assert api.json("GET", "/api/nodes/" + urllib.parse.quote(node["name"]))["name"] == \
        node["name"]
    assert api.get("/api/nodes/rabbit@elsewhere").status == 404
    assert api.json("GET", "/api/whoami") == {"name": "guest", "tags": ["administrator"]}
    assert api.json("GET", "/api/extensions") == []
    assert api.put("/api/cluster-name", {"name": "dev-broker"}).status == 204
    assert api.json("GET", "/api/cluster-name") == {"name": "dev-broker"}


def test_health_checks(api, mbroker):
    assert api.json("GET", "/api/health/checks/alarms") == {"status": "ok"}
    assert api.json("GET", "/api/health/checks/local-alarms") == {"status": "ok"}
    assert api.json("GET", "/api/health/checks/virtual-hosts") == {"status": "ok"}
    port = mbroker.port
    assert api.json("GET", f"/api/health/checks/port-listener/{port}") == {"status": "ok",
                                                                           "port": port}
    missing = api.get("/api/health/checks/port-listener/1")
    assert missing.status == 503
    body = missing.json()
    assert body["status"] == "failed" and body["missing"] == 1 and port in body["ports"]
    assert api.json("GET", "/api/aliveness-test/%2F") == {"status": "ok"}
    assert api.get("/api/aliveness-test/nope").status == 404


# ---------------------------------------------------------------------- exchanges, bindings

def test_exchanges_and_default_exchange(api, channel):
    channel.exchange_declare("ex1", "fanout", durable=True)
    exchanges = {(e["vhost"], e["name"]): e for e in api.json("GET", "/api/exchanges")}
    assert ("/", "") in exchanges and ("other", "amq.topic") in exchanges
    assert exchanges[("/", "ex1")]["type"] == "fanout"
    default = api.json("GET", "/api/exchanges/%2F/amq.default")
    assert default["name"] == "" and default["type"] == "direct" and default["durable"] is True
    assert api.put("/api/exchanges/%2F/ex2", {"type": "topic", "durable": False,
                                              "arguments": {"alternate-exchange": "ex1"}}
                   ).status == 201
    assert api.put("/api/exchanges/%2F/ex2", {"type": "topic", "arguments": {
        "alternate-exchange": "ex1"}}).status == 204
    assert api.put("/api/exchanges/%2F/ex2", {"type": "direct"}).status == 400
    channel.exchange_declare("ex2", "topic", passive=True)
    channel.queue_declare("bq")
    channel.queue_bind("bq", "ex2", "k")
    assert api.delete("/api/exchanges/%2F/ex2?if-unused=true").status == 400
    assert api.delete("/api/exchanges/%2F/ex2").status == 204
    assert api.get("/api/exchanges/%2F/ex2").status == 404
    assert api.delete("/api/exchanges/%2F/amq.direct").status == 400


def test_bindings_create_list_delete(api, channel):
    channel.exchange_declare("src", "direct")
    channel.exchange_declare("dst", "fanout")
    channel.queue_declare("bound")
    reply = api.post("/api/bindings/%2F/e/src/q/bound", {"routing_key": "r k/1",
                                                         "arguments": {}})
    assert reply.status == 201
    location = reply.headers["location"]
    one = api.json("GET", "/api/bindings/%2F/e/src/q/bound/" + location.split("/", 1)[1])
    assert one["routing_key"] == "r k/1" and one["destination_type"] == "queue"
    assert api.post("/api/bindings/%2F/e/src/e/dst", {"routing_key": "x",
                                                      "arguments": {"a": 1}}).status == 201
    channel.basic_publish("src", "r k/1", b"routed")
    wait_for(lambda: api.json("GET", "/api/queues/%2F/bound"), lambda q: q["messages"] == 1)
    listed = api.json("GET", "/api/bindings/%2F")
    kinds = {(b["source"], b["destination"], b["destination_type"]) for b in listed}
    assert kinds == {("", "bound", "queue"), ("src", "bound", "queue"),
                     ("src", "dst", "exchange")}
    e2e = api.json("GET", "/api/bindings/%2F/e/src/e/dst")
    assert api.json("GET", "/api/exchanges/%2F/src/bindings/source")[0]["source"] == "src"
    assert api.json("GET", "/api/exchanges/%2F/dst/bindings/destination")[0]["destination"] \
        == "dst"
    key = urllib.parse.quote(e2e[0]["properties_key"], safe="")
    assert api.delete(f"/api/bindings/%2F/e/src/e/dst/{key}").status == 204
    assert api.delete(f"/api/bindings/%2F/e/src/e/dst/{key}").status == 404
    qkey = urllib.parse.quote(one["properties_key"], safe="")
    assert api.delete(f"/api/bindings/%2F/e/src/q/bound/{qkey}").status == 204
    assert api.json("GET", "/api/queues/%2F/bound/bindings") == [
        {"source": "", "vhost": "/", "destination": "bound", "destination_type": "queue",
         "routing_key": "bound", "arguments": {}, "properties_key": "bound"}]
    assert api.post("/api/bindings/%2F/e/nope/q/bound", {}).status == 404
    assert api.post("/api/bindings/%2F/e/src/x/bound", {}).status == 404


# ---------------------------------------------------------------------- connections

def test_connections_channels_and_closing_one(api, mbroker):
    params = pika.URLParameters(mbroker.url)
    params.client_properties = {"connection_name": "my-app"}
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("cc")
    ch.basic_publish("", "cc", b"x")
    [c] = api.json("GET", "/api/connections")
    assert c["user_provided_name"] == "my-app" and c["user"] == "guest" and c["vhost"] == "/"
    assert c["channels"] == 1 and c["protocol"] == "AMQP 0-9-1" and c["state"] == "running"
    assert c["recv_oct"] > 0 and c["send_oct"] > 0 and c["peer_host"] == "127.0.0.1"
    assert c["port"] == mbroker.port
    [chan] = api.json("GET", "/api/channels")
    assert chan["confirm"] is True and chan["number"] == 1
    assert chan["connection_details"]["name"] == c["name"]
    assert chan["message_stats"]["publish"] == 1 and chan["message_stats"]["confirm"] == 1
    name = urllib.parse.quote(c["name"], safe="")
    assert api.json("GET", f"/api/connections/{name}")["name"] == c["name"]
    assert len(api.json("GET", f"/api/connections/{name}/channels")) == 1
    assert api.json("GET", "/api/channels/" + urllib.parse.quote(chan["name"], safe=""))[
        "name"] == chan["name"]
    assert api.json("GET", "/api/vhosts/%2F/connections")[0]["name"] == c["name"]
    assert api.json("GET", "/api/vhosts/other/connections") == []
    assert api.delete(f"/api/connections/{name}", headers={"X-Reason": "go away"}).status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.process_data_events(2)
        conn.process_data_events(2)
    assert (info.value.reply_code, info.value.reply_text) == (320, "CONNECTION_FORCED - go away")
    wait_for(lambda: api.json("GET", "/api/connections"), lambda cs: cs == [])
    assert api.delete(f"/api/connections/{name}").status == 404
    churn = api.json("GET", "/api/overview")["churn_rates"]
    assert churn["connection_closed"] == 1 and churn["channel_closed"] == 1

"""Publishing and getting messages over the management API, vhosts, parameters and policies."""

from __future__ import annotations

import base64

import pika
import pytest

from leveret import Broker

from apiclient import API


@pytest.fixture
def mbroker():
    with Broker.in_thread(management_port=0) as b:
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


def test_publish_routes_and_a_client_receives_it(api, channel):
    channel.queue_declare("inbox")
    channel.exchange_declare("topics", "topic")
    channel.queue_bind("inbox", "topics", "a.*")
    reply = api.post("/api/exchanges/%2F/topics/publish", {
        "routing_key": "a.b", "payload": "hello", "payload_encoding": "string",
        "properties": {"content_type": "text/plain", "delivery_mode": 2, "priority": 3,
                       "headers": {"n": 1, "s": "x", "l": [1, "two"]}, "type": "kind",
                       "message_id": "m-1", "timestamp": 1700000000,
                       "not-a-property": "ignored, as RabbitMQ ignores it"}})
    assert reply.status == 200 and reply.json() == {"routed": True}
    assert api.json("POST", "/api/exchanges/%2F/topics/publish",
                    {"routing_key": "nowhere", "payload": "", "payload_encoding": "string",
                     "properties": {}}) == {"routed": False}
    raw = base64.b64encode(b"\x00\xffbin").decode()
    assert api.json("POST", "/api/exchanges/%2F/amq.default/publish",
                    {"routing_key": "inbox", "payload": raw, "payload_encoding": "base64",
                     "properties": {}}) == {"routed": True}
    method, props, body = channel.basic_get("inbox", auto_ack=True)
    assert body == b"hello" and method.routing_key == "a.b" and method.exchange == "topics"
    assert props.content_type == "text/plain" and props.delivery_mode == 2
    assert props.priority == 3 and props.type == "kind" and props.message_id == "m-1"
    assert props.headers == {"n": 1, "s": "x", "l": [1, "two"]}
    assert props.timestamp == 1700000000
    assert channel.basic_get("inbox", auto_ack=True)[2] == b"\x00\xffbin"
    stats = api.json("GET", "/api/exchanges/%2F/topics")["message_stats"]
    assert stats["publish_in"] == 2 and stats["publish_out"] == 1


@pytest.mark.parametrize(("body", "reason"), [
    ({"routing_key": "x", "payload": "!!", "payload_encoding": "base64", "properties": {}},
     "payload is not base64"),
    ({"routing_key": "x", "payload": "a", "payload_encoding": "rot13", "properties": {}},
     "payload_encoding must be string or base64, not 'rot13'"),
    # RabbitMQ's to_basic_properties: integers must be JSON integers, others strings
    ({"routing_key": "x", "payload": "a", "payload_encoding": "string",
      "properties": {"delivery_mode": "2"}}, "delivery_mode must be an integer (not_int)"),
    ({"routing_key": "x", "payload": "a", "payload_encoding": "string",
      "properties": {"message_id": 5}}, "message_id must be a string (not_string)"),
    ({"routing_key": "x", "payload": 5, "payload_encoding": "string", "properties": {}},
     "payload_not_string"),
    # every key is required, and each missing one is named
    ({"routing_key": "x", "payload": "a"},
     "[{key_missing,properties},{key_missing,payload_encoding}]"),
])
def test_publish_refuses_bad_bodies(api, body, reason):
    reply = api.post("/api/exchanges/%2F/amq.direct/publish", body)
    assert reply.status == 400 and reply.json() == {"error": "bad_request", "reason": reason}


def test_publish_and_get_where_nothing_is_answer_as_rabbitmq(api):
    publish = {"routing_key": "x", "payload": "a", "payload_encoding": "string",
               "properties": {}}
    get = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
    # RabbitMQ 3.10 publishes on a channel and sees it close: 400 with the channel's error
    assert api.post("/api/exchanges/%2F/missing/publish", publish).json() == {
        "error": "bad_request", "reason": "404 NOT_FOUND - no exchange 'missing' in vhost '/'"}
    assert api.post("/api/queues/%2F/missing/get", get).json() == {
        "error": "not_found", "reason": "NOT_FOUND - no queue 'missing' in vhost '/'"}
    # a vhost that is not there refuses the channel's connection
    for path, body in (("/api/exchanges/nowhere/amq.direct/publish", publish),
                       ("/api/queues/nowhere/q/get", get)):
        reply = api.post(path, body)
        assert reply.status == 401 and reply.json() == {"error": "not_authorised",
                                                        "reason": "Access refused."}


def test_get_ackmodes_encodings_truncate(api, channel):
    channel.queue_declare("box")
    channel.basic_publish("", "box", b"first message",
                          pika.BasicProperties(headers={"k": "v"}, content_type="text/plain"))
    channel.basic_publish("", "box", b"\xff\xfe binary")
    got = api.json("POST", "/api/queues/%2F/box/get",
                   {"count": "5", "ackmode": "ack_requeue_true", "encoding": "auto",
                    "truncate": "5"})
    assert [m["payload"] for m in got] == ["first", base64.b64encode(b"\xff\xfe bi").decode()]
    assert [m["payload_encoding"] for m in got] == ["string", "base64"]
    assert [m["payload_bytes"] for m in got] == [13, 9]
    assert [m["message_count"] for m in got] == [1, 0]
    assert got[0]["properties"] == {"content_type": "text/plain", "headers": {"k": "v"}}
    assert got[1]["properties"] == []  # RabbitMQ 3.10's empty proplist
    assert got[0]["redelivered"] is False and got[0]["exchange"] == ""
    again = api.json("POST", "/api/queues/%2F/box/get",
                     {"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"})
    assert again[0]["redelivered"] is True
    assert again[0]["payload"] == base64.b64encode(b"first message").decode()
    rejected = api.json("POST", "/api/queues/%2F/box/get",
                        {"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"})
    assert len(rejected) == 1
    assert api.json("GET", "/api/queues/%2F/box")["messages"] == 0
    assert api.json("POST", "/api/queues/%2F/box/get",
                    {"count": 1, "ackmode": "reject_requeue_true", "encoding": "auto"}) == []
    for bad in ({"count": 1, "ackmode": "keep", "encoding": "auto"},
                {"count": 1, "ackmode": "ack_requeue_true", "encoding": "utf-32"},
                {"count": "many", "ackmode": "ack_requeue_true", "encoding": "auto"},
                {"ackmode": "ack_requeue_true", "encoding": "auto"}):
        assert api.post("/api/queues/%2F/box/get", bad).status == 400, bad
    assert api.post("/api/queues/%2F/nobox/get", {"count": 1, "ackmode": "ack_requeue_true",
                                                  "encoding": "auto"}).status == 404


def test_get_reject_dead_letters(api, channel):
    channel.queue_declare("dead")
    channel.queue_declare("live", arguments={"x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": "dead"})
    channel.basic_publish("", "live", b"doomed")
    api.json("POST", "/api/queues/%2F/live/get",
             {"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"})
    method, props, body = channel.basic_get("dead", auto_ack=True)
    assert body == b"doomed" and props.headers["x-death"][0]["reason"] == "rejected"


def test_vhosts_create_list_delete(api, mbroker):
    assert api.put("/api/vhosts/dev", {"description": "for dev"}).status == 201
    assert api.put("/api/vhosts/dev", {}).status == 204
    names = [v["name"] for v in api.json("GET", "/api/vhosts")]
    assert names == ["/", "dev"]
    dev = api.json("GET", "/api/vhosts/dev")
    assert dev["messages"] == 0 and dev["cluster_state"] == {
        api.json("GET", "/api/overview")["node"]: "running"}
    conn = pika.BlockingConnection(pika.URLParameters(mbroker.url_for("dev")))
    conn.channel().queue_declare("in-dev")
    assert api.json("GET", "/api/queues/dev")[0]["name"] == "in-dev"
    assert api.delete("/api/vhosts/dev").status == 204
    assert api.get("/api/vhosts/dev").status == 404
    assert api.delete("/api/vhosts/dev").status == 404
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
        conn.process_data_events(2)
        conn.process_data_events(2)


def test_parameters_and_policies_are_kept(api):
    policy = {"pattern": "^ttl\\.", "definition": {"message-ttl": 1000}, "priority": 1,
              "apply-to": "queues"}
    assert api.put("/api/policies/%2F/short", policy).status == 201
    assert api.put("/api/policies/%2F/short", policy).status == 204
    assert api.json("GET", "/api/policies") == [
        {"vhost": "/", "name": "short", "pattern": "^ttl\\.", "apply-to": "queues",
         "definition": {"message-ttl": 1000}, "priority": 1}]
    assert api.json("GET", "/api/policies/%2F/short")["priority"] == 1
    bad = api.put("/api/policies/%2F/bad", {"pattern": "(", "definition": {}})
    assert bad.status == 400 and bad.json()["reason"].startswith(
        "Validation failed\n\npattern should be regular expression but is invalid: ")
    assert api.put("/api/policies/%2F/bad", {"pattern": "x"}).status == 400
    assert api.delete("/api/policies/%2F/short").status == 204
    assert api.get("/api/policies/%2F/short").status == 404
    assert api.put("/api/parameters/shovel/%2F/s1", {"value": {"src-uri": "amqp://"}}
                   ).status == 201
    assert api.json("GET", "/api/parameters/shovel") == [
        {"value": {"src-uri": "amqp://"}, "vhost": "/", "component": "shovel", "name": "s1"}]
    assert api.put("/api/global-parameters/cluster_tags", {"value": {"env": "dev"}}
                   ).status == 201
    names = {p["name"] for p in api.json("GET", "/api/global-parameters")}
    assert names == {"internal_cluster_id", "cluster_tags"}
    assert api.put("/api/policies/nope/p", policy).json() == {"error": "not_found",
                                                              "reason": "vhost_not_found"}


def test_streams_refuse_get_and_purge_as_rabbitmq(tmp_path):
    with Broker.in_thread(management_port=0, data_dir=str(tmp_path)) as b:
        api = API(b.management_url)
        assert api.put("/api/queues/%2F/s1", {"durable": True,
                                              "arguments": {"x-queue-type": "stream"}}
                       ).status == 201
        assert api.json("GET", "/api/queues/%2F/s1")["type"] == "stream"
        got = api.post("/api/queues/%2F/s1/get", {"count": 1, "ackmode": "ack_requeue_true",
                                                  "encoding": "auto"})
        assert got.status == 400 and got.json() == {
            "error": "bad_request",
            "reason": "540 basic.get not supported by stream queues queue 's1' in vhost '/'"}
        purged = api.delete("/api/queues/%2F/s1/contents")
        assert purged.status == 400 and purged.json() == {
            "error": "bad_request",
            "reason": "queue.purge not supported by stream queues queue 's1' in vhost '/'"}
        assert api.delete("/api/queues/%2F/s1").status == 204

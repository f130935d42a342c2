"""Users, permissions and RabbitMQ's management tags over the API, with AMQP logins to show
what each change does."""

from __future__ import annotations

import socket

import pika
import pika.exceptions
import pytest

from leveret import Broker

from apiclient import API, rabbitmq_api


@pytest.fixture
def mbroker():
    with Broker.in_thread(management_port=0, vhosts=["team", "other"]) as b:
        yield b


@pytest.fixture
def api(mbroker) -> API:
    return API(mbroker.management_url)


def amqp(mbroker, user: str, password: str, vhost: str = "/") -> pika.BlockingConnection:
    url = mbroker.url_for(vhost).replace("guest:guest@", f"{user}:{password}@")
    return pika.BlockingConnection(pika.URLParameters(url))


def test_users_and_permissions_decide_amqp_logins(api, mbroker):
    assert api.put("/api/users/ann", {"password": "s3cret", "tags": "management"}).status == 201
    assert api.put("/api/users/ann", {"password": "s3cret", "tags": ["management"]}
                   ).status == 204
    ann = api.json("GET", "/api/users/ann")
    assert ann["tags"] == ["management"] and ann["limits"] == {}
    assert ann["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert [u["name"] for u in api.json("GET", "/api/users/without-permissions")] == ["ann"]
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        amqp(mbroker, "ann", "s3cret", "team")  # no permissions there yet: 530
    assert api.put("/api/permissions/team/ann", {"configure": "^ann\\.", "write": ".*",
                                                 "read": ".*"}).status == 201
    assert api.json("GET", "/api/permissions/team/ann") == {
        "user": "ann", "vhost": "team", "configure": "^ann\\.", "write": ".*", "read": ".*"}
    conn = amqp(mbroker, "ann", "s3cret", "team")
    ch = conn.channel()
    ch.queue_declare("ann.jobs")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("someone-else")
    assert info.value.reply_code == 403
    assert [p["vhost"] for p in api.json("GET", "/api/users/ann/permissions")] == ["team"]
    assert [p["user"] for p in api.json("GET", "/api/vhosts/team/permissions")] == [
        "ann", "guest"]
    # deleting the user closes their connection (320), as RabbitMQ
    assert api.delete("/api/users/ann").status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
        conn.process_data_events(2)
        conn.process_data_events(2)
    assert api.get("/api/users/ann").status == 404
    assert api.delete("/api/users/ann").status == 404


def test_user_and_permission_errors_as_rabbitmq(api):
    assert api.put("/api/users/bob", {}).json() == {"error": "bad_request",
                                                   "reason": "tags_not_present"}
    api.put("/api/users/bob", {"password": "pw", "tags": ""})
    for path in ("/api/permissions/nope/bob", "/api/permissions/%2F/nobody"):
        reply = api.put(path, {"configure": ".*", "write": ".*", "read": ".*"})
        assert reply.status == 400
        assert reply.json() == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
    assert api.put("/api/permissions/%2F/bob", {"configure": "(", "write": ".*", "read": ".*"}
                   ).status == 400
    assert api.put("/api/permissions/%2F/bob", {"configure": ".*"}).json() == {
        "error": "bad_request", "reason": "[{key_missing,write},{key_missing,read}]"}
    assert api.get("/api/permissions/%2F/bob").status == 404
    assert api.delete("/api/permissions/%2F/bob").status == 404
    assert api.put("/api/users/bob", {"password": 5, "tags": ""}).status == 400
    assert api.put("/api/users/bob", {"password_hash": "not base64!", "tags": ""}
                   ).status == 400
    # users go in order; one that is not there stops it with 400, as RabbitMQ
    api.put("/api/users/carl", {"password": "pw", "tags": ""})
    assert api.post("/api/users/bulk-delete", {"users": ["bob", "nobody", "carl"]}).status == 400
    assert api.get("/api/users/bob").status == 404 and api.get("/api/users/carl").status == 200
    assert api.post("/api/users/bulk-delete", {"users": ["carl"]}).status == 204
    assert api.post("/api/users/bulk-delete", {}).json()["reason"] == "[{key_missing,users}]"


def test_password_cleared_when_a_put_has_none(api):
    api.put("/api/users/cy", {"password": "pw", "tags": "administrator"})
    assert API(api.base, "cy", "pw").get("/api/whoami").json() == {
        "name": "cy", "tags": ["administrator"]}
    api.put("/api/users/cy", {"tags": "administrator"})  # RabbitMQ clears the password
    assert API(api.base, "cy", "pw").get("/api/whoami").status == 401
    hashed = api.json("GET", "/api/users/guest")
    api.put("/api/users/cy", {"password_hash": hashed["password_hash"],
                              "hashing_algorithm": hashed["hashing_algorithm"],
                              "tags": "monitoring"})
    assert API(api.base, "cy", "guest").get("/api/whoami").json()["tags"] == ["monitoring"]


def test_topic_permissions(api):
    api.put("/api/users/dee", {"password": "pw", "tags": ""})
    assert api.put("/api/topic-permissions/%2F/dee", {"exchange": "amq.topic",
                                                      "write": "^a", "read": ".*"}
                   ).status == 201
    assert api.json("GET", "/api/topic-permissions/%2F/dee") == [
        {"user": "dee", "vhost": "/", "exchange": "amq.topic", "write": "^a", "read": ".*"}]
    assert len(api.json("GET", "/api/topic-permissions")) == 1
    assert api.json("GET", "/api/users/dee/topic-permissions")[0]["exchange"] == "amq.topic"
    assert api.delete("/api/topic-permissions/%2F/dee").status == 204
    assert api.get("/api/topic-permissions/%2F/dee").status == 404


def test_management_tag_sees_only_its_vhosts(api, mbroker):
    api.put("/api/users/mo", {"password": "pw", "tags": "management"})
    api.put("/api/permissions/team/mo", {"configure": ".*", "write": ".*", "read": ".*"})
    guest_conn = pika.BlockingConnection(pika.URLParameters(mbroker.url_for("other")))
    guest_conn.channel().queue_declare("in-other")
    mo_conn = amqp(mbroker, "mo", "pw", "team")
    mo_conn.channel().queue_declare("in-team")
    mo = API(api.base, "mo", "pw")
    assert mo.json("GET", "/api/whoami") == {"name": "mo", "tags": ["management"]}
    assert [q["name"] for q in mo.json("GET", "/api/queues")] == ["in-team"]
    assert [v["name"] for v in mo.json("GET", "/api/vhosts")] == ["team"]
    assert [c["user"] for c in mo.json("GET", "/api/connections")] == ["mo"]
    assert mo.json("GET", "/api/overview")["object_totals"]["queues"] == 1
    denied = mo.get("/api/queues/other")
    assert denied.status == 401 and denied.json() == {
        "error": "not_authorised", "reason": "User not authorised to access virtual host"}
    assert mo.get("/api/exchanges/other/amq.direct").status == 401
    assert mo.json("GET", "/api/policies") == []
    for path, reason in (("/api/users", "Not administrator user"),
                         ("/api/definitions", "Not administrator user"),
                         ("/api/nodes", "Not monitor user")):
        reply = mo.get(path)
        assert reply.status == 401 and reply.json() == {"error": "not_authorised",
                                                         "reason": reason}, path
    assert mo.put("/api/vhosts/mine").status == 401
    assert mo.put("/api/queues/team/made-by-mo").status == 201
    guest_conn.close()
    mo_conn.close()


def test_monitoring_sees_all_and_no_tags_is_refused(api, mbroker):
    api.put("/api/users/watcher", {"password": "pw", "tags": "monitoring"})
    api.put("/api/users/plain", {"password": "pw", "tags": ""})
    conn = pika.BlockingConnection(pika.URLParameters(mbroker.url_for("other")))
    conn.channel().queue_declare("seen")
    watcher = API(api.base, "watcher", "pw")
    # every vhost, connection and channel; but queues, exchanges and bindings only of the
    # vhosts it may log in to, as RabbitMQ's filter_vhost shows them
    assert {v["name"] for v in watcher.json("GET", "/api/vhosts")} == {"/", "team", "other"}
    assert watcher.json("GET", "/api/queues") == []
    assert watcher.get("/api/queues/other").json() == {
        "error": "not_authorised", "reason": "User not authorised to access virtual host"}
    api.put("/api/permissions/other/watcher", {"configure": "", "write": "", "read": ""})
    assert [q["name"] for q in watcher.json("GET", "/api/queues")] == ["seen"]
    assert len(watcher.json("GET", "/api/connections")) == 1
    assert watcher.get("/api/nodes").status == 200
    assert watcher.get("/api/users").status == 401
    plain = API(api.base, "plain", "pw").get("/api/overview")
    assert plain.status == 401 and plain.json() == {"error": "not_authorised",
                                                    "reason": "Not management user"}
    conn.close()


def test_users_round_trip_through_definitions(api, mbroker):
    api.put("/api/users/eve", {"password": "moved", "tags": "policymaker"})
    api.put("/api/permissions/team/eve", {"configure": "", "write": ".*", "read": ".*"})
    defs = api.json("GET", "/api/definitions")
    with Broker.in_thread(management_port=0) as other:
        oapi = API(other.management_url)
        assert oapi.post("/api/definitions", defs).status == 204
        assert API(oapi.base, "eve", "moved").json("GET", "/api/whoami")["tags"] == [
            "policymaker"]
        assert oapi.json("GET", "/api/permissions/team/eve")["configure"] == ""
        conn = amqp(other, "eve", "moved", "team")
        conn.close()


def test_api_calls_need_the_users_amqp_permissions(api):
    """The API acts as its caller: RabbitMQ 3.10's answers when an operation is refused."""
    api.put("/api/users/pe", {"password": "pw", "tags": "management"})
    api.put("/api/permissions/%2F/pe", {"configure": "^mine", "write": "^mine", "read": "^mine"})
    api.put("/api/queues/%2F/other-q")
    pe = API(api.base, "pe", "pw")
    refused = pe.put("/api/queues/%2F/notmine")
    assert refused.status == 401
    assert refused.json() == {"error": "not_authorised", "reason": "Access refused."}
    assert pe.put("/api/queues/%2F/mine-q").status == 201
    assert pe.delete("/api/queues/%2F/other-q").status == 401
    assert pe.delete("/api/queues/%2F/other-q/contents").status == 401
    assert pe.put("/api/exchanges/%2F/notmine-x", {"type": "direct"}).status == 401
    assert pe.post("/api/bindings/%2F/e/amq.direct/q/mine-q", {"routing_key": "k"}
                   ).status == 401  # read on amq.direct is refused
    published = pe.post("/api/exchanges/%2F/amq.default/publish",
                        {"routing_key": "x", "payload": "x", "payload_encoding": "string",
                         "properties": {}})
    assert published.status == 400 and published.json() == {
        "error": "bad_request", "reason": "403 ACCESS_REFUSED - access to exchange "
        "'amq.default' in vhost '/' refused for user 'pe'"}
    got = pe.post("/api/queues/%2F/other-q/get",
                  {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert got.status == 401 and got.json() == {
        "error": "not_authorised",
        "reason": "ACCESS_REFUSED - access to queue 'other-q' in vhost '/' refused for user 'pe'"}
    assert pe.delete("/api/queues/%2F/mine-q").status == 204


def test_guest_only_through_a_loopback_address(mbroker):
    """loopback_users hold for the API too: RabbitMQ refuses guest's login there as well."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.254.254.254", 9))  # a route lookup; nothing is sent
            outside = probe.getsockname()[0]
    except OSError:
        pytest.skip("no non-loopback IPv4 address on this machine")
    if outside.startswith("127."):
        pytest.skip("no non-loopback IPv4 address on this machine")
    with Broker.in_thread(host="0.0.0.0", management_port=0, users={"app": "pw"}) as b:
        api = API(f"http://127.0.0.1:{b.management_port}")
        assert api.get("/api/whoami").status == 200
        api.put("/api/users/app", {"password": "pw", "tags": "administrator"})
        far = f"http://{outside}:{b.management_port}"
        refused = API(far).get("/api/whoami")
        assert refused.status == 401 and refused.json() == {
            "error": "not_authorised", "reason": "User can only log in via localhost"}
        assert API(far, "app", "pw").get("/api/whoami").status == 200
    theirs = rabbitmq_api()
    if theirs is not None:
        try:
            reply = API(f"http://{outside}:15672").get("/api/whoami", timeout=3)
        except OSError:
            return  # RabbitMQ's API does not listen there
        assert reply.status == 401 and reply.json() == {
            "error": "not_authorised", "reason": "User can only log in via localhost"}

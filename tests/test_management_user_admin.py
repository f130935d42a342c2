"""Creating, changing and deleting users and permissions over the management API (what the web
UI's Admin page does), with pika logging in as the users made; the same calls against the local
RabbitMQ give the same status codes and error reasons."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from leveret import Broker

from apiclient import API, rabbitmq_api


@pytest.fixture(scope="module")
def mbroker() -> Iterator:
    with Broker.in_thread(management_port=0) as b:
        yield b


@pytest.fixture
def api(mbroker) -> API:
    return API(mbroker.management_url)


def amqp_login(broker, user: str, password: str) -> pika.BlockingConnection:
    params = pika.URLParameters(broker.url)
    params.credentials = pika.PlainCredentials(user, password)
    return pika.BlockingConnection(params)


def test_put_user_creates_updates_and_its_password_logs_in(api, mbroker):
    assert api.put("/api/users/ann", {"password": "pw1", "tags": "management"}).status == 201
    assert api.put("/api/permissions/%2F/ann",
                   {"configure": ".*", "write": ".*", "read": ".*"}).status == 201
    amqp_login(mbroker, "ann", "pw1").close()
    assert API(mbroker.management_url, "ann", "pw1").get("/api/whoami").json() == {
        "name": "ann", "tags": ["management"]}
    # a new password and tags (a list this time)
    assert api.put("/api/users/ann", {"password": "pw2", "tags": ["monitoring"]}).status == 204
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_login(mbroker, "ann", "pw1")
    amqp_login(mbroker, "ann", "pw2").close()
    user = api.get("/api/users/ann").json()
    assert user["tags"] == ["monitoring"]
    # the hash kept as it is: the password still works (what the UI sends to change tags)
    assert api.put("/api/users/ann", {"password_hash": user["password_hash"],
                                      "tags": "management"}).status == 204
    amqp_login(mbroker, "ann", "pw2").close()
    # neither: the password is cleared, as RabbitMQ does
    assert api.put("/api/users/ann", {"tags": ""}).status == 204
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_login(mbroker, "ann", "pw2")
    assert api.get("/api/users/ann").json()["password_hash"] == ""
    assert api.delete("/api/users/ann").status == 204


def test_deleting_a_user_closes_their_connections_and_permissions(api, mbroker):
    api.put("/api/users/bob", {"password": "pw", "tags": ""})
    api.put("/api/permissions/%2F/bob", {"configure": ".*", "write": ".*", "read": ".*"})
    conn = amqp_login(mbroker, "bob", "pw")
    assert api.delete("/api/users/bob").status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(50):
            conn.process_data_events(time_limit=0.1)
    assert closed.value.reply_code == 320
    assert [p for p in api.get("/api/permissions").json() if p["user"] == "bob"] == []
    assert api.get("/api/users/bob").status == 404
    assert api.delete("/api/users/bob").status == 404


def test_clearing_a_permission_refuses_the_vhost(api, mbroker):
    api.put("/api/users/cy", {"password": "pw", "tags": ""})
    api.put("/api/permissions/%2F/cy", {"configure": ".*", "write": ".*", "read": ".*"})
    amqp_login(mbroker, "cy", "pw").close()
    assert api.delete("/api/permissions/%2F/cy").status == 204
    assert api.delete("/api/permissions/%2F/cy").status == 404
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        amqp_login(mbroker, "cy", "pw")
    api.delete("/api/users/cy")


def test_only_administrators_manage_users(api, mbroker):
    api.put("/api/users/dee", {"password": "pw", "tags": "monitoring"})
    dee = API(mbroker.management_url, "dee", "pw")
    reply = dee.put("/api/users/eve", {"password": "x", "tags": "administrator"})
    assert reply.status == 401
    assert api.get("/api/users/eve").status == 404
    api.delete("/api/users/dee")


# the same calls on both brokers: (method, path, body) -> status and reason
CALLS = [
    ("PUT", "/api/users/{u}", {}),
    ("PUT", "/api/users/{u}", {"password": "x", "tags": "management"}),
    ("PUT", "/api/users/{u}", {"password": "x", "tags": ["monitoring"]}),
    ("PUT", "/api/users/{u}", {"password": "x", "password_hash": "abc", "tags": ""}),
    ("DELETE", "/api/permissions/%2F/{u}", None),
    ("PUT", "/api/permissions/%2F/{u}", {"configure": ".*", "write": ".*", "read": ".*"}),
    ("DELETE", "/api/permissions/%2F/{u}", None),
    ("DELETE", "/api/users/{u}", None),
    ("DELETE", "/api/users/{u}", None),
    ("DELETE", "/api/permissions/%2F/{u}", None),
]


def test_status_codes_and_reasons_are_rabbitmqs(api):
    rabbit = rabbitmq_api()
    if rabbit is None:
        pytest.skip("no RabbitMQ management API on 127.0.0.1:15672")
    user = f"leveret-test-{uuid.uuid4().hex[:8]}"
    try:
        for method, path, body in CALLS:
            ours = api.request(method, path.format(u=user), body)
            theirs = rabbit.request(method, path.format(u=user), body)
            assert ours.status == theirs.status, (method, path, body)
            if theirs.status >= 400 and theirs.body:
                assert ours.json() == theirs.json(), (method, path, body)
    finally:
        rabbit.delete(f"/api/users/{user}")

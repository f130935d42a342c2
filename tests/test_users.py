"""Users, password hashes, tags and vhost access (``leveret.auth``), through real logins, and
against the local RabbitMQ where it is there: hashes made by one broker log in to the other,
both refuse the same bad permission expressions and the same logins."""

from __future__ import annotations

import ast
import hashlib
import uuid

import pika
import pika.exceptions
import pytest

from leveret import Broker
from leveret.auth import AccessError, InvalidRegex, NoSuchUser, NoSuchVhost, UserExists
from leveret.passwords import MD5, SHA256, SHA512, hash_password, verify_password

RABBITMQ_HOST = "127.0.0.1:5672"


def unique(prefix: str) -> str:
    return f"leveret-{prefix}-{uuid.uuid4().hex[:10]}"


def connect(port: int | str, user: str, password: str, vhost: str = "/",
            host: str = "127.0.0.1") -> pika.BlockingConnection:
    params = pika.ConnectionParameters(host, int(port), vhost,
                                       pika.PlainCredentials(user, password),
                                       connection_attempts=1)
    return pika.BlockingConnection(params)


def login_error(port: int | str, user: str, password: str, vhost: str = "/") -> tuple | None:
    """None if the login and connection.open work, else (kind of error, code, text)."""
    try:
        conn = connect(port, user, password, vhost)
    except pika.exceptions.ProbableAuthenticationError as exc:
        return ("auth", *_code_text(exc))
    except pika.exceptions.ProbableAccessDeniedError as exc:
        return ("access", *_code_text(exc))
    conn.close()
    return None


def _code_text(exc: Exception) -> tuple[int, str]:
    # pika wraps the connection.close it got: ("ConnectionClosedByBroker: (530) 'text'",)
    inner = str(exc.args[0]) if exc.args else ""
    code = int(inner.split("(", 1)[1].split(")", 1)[0]) if "(" in inner else 0
    text = ast.literal_eval(inner.split(") ", 1)[1]) if ") " in inner else inner
    return code, text


# ---------------------------------------------------------------------- hashes


@pytest.mark.parametrize(("algorithm", "digest"), [(SHA256, hashlib.sha256),
                                                   (SHA512, hashlib.sha512),
                                                   (MD5, hashlib.md5)])
def test_hash_is_salt_then_digest_of_salt_and_utf8_password(algorithm, digest):
    import base64

    salt = b"\x01\x02\x03\x04"
    raw = base64.b64decode(hash_password("pässword", algorithm, salt))
    assert raw == salt + digest(salt + "pässword".encode()).digest()
    made = hash_password("pässword", algorithm)
    assert verify_password(made, algorithm, "pässword")
    assert not verify_password(made, algorithm, "password")
    assert not verify_password(made, algorithm, "")
    assert hash_password("x", algorithm) != hash_password("x", algorithm)  # a fresh salt each


def test_a_hash_rabbitmq_made_logs_in_to_leveret(rabbitmq_admin):
    name = unique("hash-in")
    status, _ = rabbitmq_admin("PUT", f"/users/{name}", {"password": "s3cret-ü", "tags": ""})
    assert status in (201, 204)
    try:
        status, exported = rabbitmq_admin("GET", f"/users/{name}")
    finally:
        rabbitmq_admin("DELETE", f"/users/{name}")
    assert status == 200 and isinstance(exported, dict)
    with Broker.in_thread() as broker:
        broker.call(lambda: broker.broker.access.put_user(
            name, password_hash=exported["password_hash"],
            hashing_algorithm=exported["hashing_algorithm"]))
        broker.set_permissions(name, "/")
        conn = connect(broker.port, name, "s3cret-ü")
        conn.channel().queue_declare("works")
        conn.close()
        assert login_error(broker.port, name, "s3cret-u")[0] == "auth"


@pytest.mark.parametrize("algorithm", [SHA256, SHA512, MD5])
def test_a_hash_leveret_made_logs_in_to_rabbitmq_after_import(rabbitmq_admin, algorithm):
    name, vhost = unique("hash-out"), unique("vh")
    with Broker.in_thread() as broker:
        user = broker.call(lambda: broker.broker.access.add_user(
            name, tags=["monitoring"], password_hash=hash_password("pw-ß", algorithm),
            hashing_algorithm=algorithm))
        broker.set_permissions(name, "/")
        assert login_error(broker.port, name, "pw-ß") is None
    definitions = {
        "users": [user.as_definition()],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": name, "vhost": vhost, "configure": ".*", "write": ".*",
                         "read": ".*"}],
    }
    status, reply = rabbitmq_admin("POST", "/definitions", definitions)
    try:
        assert status in (201, 204), reply
        assert login_error(RABBITMQ_HOST.split(":")[1], name, "pw-ß", vhost) is None
        assert login_error(RABBITMQ_HOST.split(":")[1], name, "pw-ss", vhost)[0] == "auth"
        status, seen = rabbitmq_admin("GET", f"/users/{name}")
        assert seen["tags"] == ["monitoring"] and seen["hashing_algorithm"] == algorithm
    finally:
        rabbitmq_admin("DELETE", f"/users/{name}")
        rabbitmq_admin("DELETE", f"/vhosts/{vhost}")


def test_a_bad_hash_is_refused():
    with Broker.in_thread() as broker:
        access = broker.broker.access
        for bad_hash, algorithm in (("not base64!", SHA256), ("AAAA", SHA256),
                                    (hash_password("x", MD5), SHA256),
                                    (hash_password("x"), "rabbit_password_hashing_foo")):
            with pytest.raises(AccessError):
                broker.call(lambda h=bad_hash, a=algorithm: access.add_user(
                    "u", password_hash=h, hashing_algorithm=a))
        assert broker.call(lambda: access.user("u")) is None


# ---------------------------------------------------------------------- logins


def test_no_password_or_a_blank_one_never_logs_in(rabbitmq_admin):
    """A user without a password, or a blank password, is refused by both brokers."""
    name = unique("nopw")
    status, _ = rabbitmq_admin("PUT", f"/users/{name}", {"password_hash": "", "tags": ""})
    assert status in (201, 204)
    rabbitmq_admin("PUT", f"/permissions/%2F/{name}",
                   {"configure": ".*", "write": ".*", "read": ".*"})
    try:
        rabbit = [login_error(5672, name, pw) for pw in ("", "x")]
    finally:
        rabbitmq_admin("DELETE", f"/users/{name}")
    with Broker.in_thread() as broker:
        broker.add_user(name, None)
        broker.set_permissions(name, "/")
        broker.add_user("blank", "")  # a hash of the empty password, still refused
        broker.set_permissions("blank", "/")
        ours = [login_error(broker.port, name, pw) for pw in ("", "x")]
        assert login_error(broker.port, "blank", "")[0] == "auth"
    assert ours == rabbit
    assert ours[0] == ("auth", 403, "ACCESS_REFUSED - Login was refused using authentication "
                                    "mechanism PLAIN. For details see the broker logfile.")


def test_vhost_refusals_match_rabbitmq(rabbitmq_admin):
    """No permissions on a vhost: 530 at connection.open; a vhost that is not there: 530 too,
    with RabbitMQ's texts."""
    name, vhost = unique("vh-user"), unique("vh")
    rabbitmq_admin("PUT", f"/users/{name}", {"password": "pw", "tags": ""})
    rabbitmq_admin("PUT", f"/vhosts/{vhost}", {})
    try:
        rabbit = [login_error(5672, name, "pw", vhost), login_error(5672, name, "pw", "nope")]
    finally:
        rabbitmq_admin("DELETE", f"/users/{name}")
        rabbitmq_admin("DELETE", f"/vhosts/{vhost}")
    with Broker.in_thread() as broker:
        broker.add_user(name, "pw")
        broker.call(lambda: broker.broker.access.add_vhost(vhost))
        ours = [login_error(broker.port, name, "pw", vhost),
                login_error(broker.port, name, "pw", "nope")]
        # empty expressions still open the vhost: they grant nothing else
        broker.set_permissions(name, vhost, "", "", "")
        assert login_error(broker.port, name, "pw", vhost) is None
    assert ours == rabbit
    assert ours[0] == ("access", 530, f"NOT_ALLOWED - access to vhost '{vhost}' refused for "
                                      f"user '{name}'")


def test_deleting_a_user_closes_their_connections_and_ends_their_logins():
    with Broker.in_thread() as broker:
        broker.add_user("leaving", "pw")
        broker.set_permissions("leaving", "/")
        conn = connect(broker.port, "leaving", "pw")
        other = pika.BlockingConnection(pika.URLParameters(broker.url))
        broker.delete_user("leaving")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            conn.channel()
        assert (info.value.reply_code, info.value.reply_text) == (
            320, "CONNECTION_FORCED - user 'leaving' is deleted")
        assert other.channel().is_open  # others are untouched
        other.close()
        assert login_error(broker.port, "leaving", "pw")[0] == "auth"
        assert broker.call(lambda: broker.broker.access.list_permissions(user="leaving")) == []


# ---------------------------------------------------------------------- the model


def test_put_user_replaces_tags_and_clears_the_password_when_none_is_given():
    """As RabbitMQ's PUT /api/users and definitions import (put_user)."""
    with Broker.in_thread() as broker:
        access = broker.broker.access
        user, created = broker.call(lambda: access.put_user(
            "app", "pw", tags="administrator, management ,custom"))
        assert created and user.tags == ("administrator", "management", "custom")
        broker.set_permissions("app", "/")
        assert login_error(broker.port, "app", "pw") is None
        user, created = broker.call(lambda: access.put_user("app", tags=["monitoring"]))
        assert not created and user.tags == ("monitoring",) and not user.has_password
        assert login_error(broker.port, "app", "pw")[0] == "auth"
        broker.call(lambda: access.change_password("app", "new"))
        assert login_error(broker.port, "app", "new") is None
        with pytest.raises(UserExists):
            broker.call(lambda: access.add_user("app", "x"))
        with pytest.raises(AccessError):
            broker.call(lambda: access.put_user("app", "x", password_hash=hash_password("x")))
        with pytest.raises(NoSuchUser):
            broker.call(lambda: access.set_tags("ghost", ["x"]))


def test_invalid_expressions_are_refused_as_rabbitmq_refuses_them(rabbitmq_admin):
    """The same expressions are refused by both when set; PCRE spellings Python writes
    otherwise are accepted."""
    patterns = ["*", "(", "a{2,1}", "[", "\\", "(?<n>x)", "\\Qa.b\\E", "[[:alpha:]]", "a(?i)b",
                "\\z", "x{,3}", "\\h", "a++", "(?>a)", "^amq\\.gen-.*$", ""]
    name, vhost = unique("re"), unique("vh")
    rabbitmq_admin("PUT", f"/users/{name}", {"password": "pw", "tags": ""})
    rabbitmq_admin("PUT", f"/vhosts/{vhost}", {})
    try:
        rabbit = {p: rabbitmq_admin("PUT", f"/permissions/{vhost}/{name}",
                                    {"configure": p, "write": ".*", "read": ".*"})[0] < 400
                  for p in patterns}
    finally:
        rabbitmq_admin("DELETE", f"/users/{name}")
        rabbitmq_admin("DELETE", f"/vhosts/{vhost}")
    ours = {}
    with Broker.in_thread() as broker:
        broker.add_user(name, "pw")
        for p in patterns:
            try:
                broker.set_permissions(name, "/", p, ".*", ".*")
                ours[p] = True
            except InvalidRegex:
                ours[p] = False
            try:
                broker.set_topic_permissions(name, "/", "amq.topic", p, ".*")
            except InvalidRegex:
                assert not ours[p]
    assert ours == rabbit


def test_vhosts_and_permissions_listing():
    with Broker.in_thread(vhosts=["other"]) as broker:
        access = broker.broker.access
        assert broker.call(access.vhost_names) == ["/", "other"]
        info = broker.call(lambda: access.vhost("/"))
        assert info.as_definition() == {"name": "/", "limits": [], "metadata": {
            "description": "Default virtual host", "tags": []}}
        guest = broker.call(lambda: access.user("guest"))
        assert guest.tags == ("administrator",) and guest.check_password("guest")
        assert sorted(p.vhost for p in broker.call(
            lambda: access.list_permissions(user="guest"))) == ["/", "other"]
        broker.add_user("dev", "pw")
        _, created = broker.call(lambda: access.add_vhost("team", description="d",
                                                          tags="a,b", grant_to="dev"))
        assert created
        assert [p.as_dict() for p in broker.call(lambda: access.list_permissions(
            vhost="team"))] == [{"user": "dev", "vhost": "team", "configure": ".*",
                                 "write": ".*", "read": ".*"}]
        assert login_error(broker.port, "dev", "pw", "team") is None
        with pytest.raises(NoSuchVhost):
            broker.call(lambda: access.set_permissions("dev", "nope", ".*", ".*", ".*"))
        with pytest.raises(NoSuchUser):
            broker.call(lambda: access.set_permissions("nobody", "team", ".*", ".*", ".*"))
        broker.set_topic_permissions("dev", "team", "amq.topic", "^a", "^b")
        assert [t.as_dict() for t in broker.call(lambda: access.list_topic_permissions(
            user="dev"))] == [{"user": "dev", "vhost": "team", "exchange": "amq.topic",
                               "write": "^a", "read": "^b"}]
        broker.delete_vhost("team")
        assert broker.call(lambda: access.list_permissions(user="dev")) == []
        assert broker.call(lambda: access.list_topic_permissions()) == []


def test_default_user_and_extra_users_of_a_broker():
    with Broker.in_thread(user="app", password="pw", vhost="prod", users={"ci": "ci"},
                          vhosts=["staging"]) as broker:
        access = broker.broker.access
        assert broker.call(lambda: access.user("app")).tags == ("administrator",)
        assert broker.call(lambda: access.user("ci")).tags == ()
        assert broker.call(lambda: access.user("guest")) is None
        broker.add_vhost("later")  # the broker's users may use the vhosts it adds
        for user, password in (("app", "pw"), ("ci", "ci")):
            for vhost in ("prod", "staging", "later"):
                assert login_error(broker.port, user, password, vhost) is None

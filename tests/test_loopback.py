"""``loopback_users``: guest logs in only through a loopback address, as on RabbitMQ, unless
the restriction is lifted. Tested with real connections to this machine's non-loopback
address (skipped when it has none)."""

from __future__ import annotations

import socket

import pika
import pika.exceptions
import pytest

from _proc import LeveretProcess
from conftest import rabbitmq_available
from leveret import Broker

REFUSED = (403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                "For details see the broker logfile.")


@pytest.fixture(scope="module")
def outside_address() -> str:
    """An address of this machine that is not a loopback one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.254.254.254", 9))  # a route lookup; nothing is sent
            address = probe.getsockname()[0]
    except OSError:
        pytest.skip("no non-loopback IPv4 address on this machine")
    if address.startswith("127.") or address == "0.0.0.0":
        pytest.skip("no non-loopback IPv4 address on this machine")
    return str(address)


def refusal(host: str, port: int, user: str = "guest", password: str = "guest") -> object:
    """None if the connection opened; REFUSED if it was refused with RabbitMQ's login
    refusal; else what pika said."""
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            host, port, "/", pika.PlainCredentials(user, password), connection_attempts=1))
    except pika.exceptions.ProbableAuthenticationError as exc:
        # pika wraps the connection.close: "ConnectionClosedByBroker: (403) 'ACCESS_REFUSED...'"
        said = str(exc.args[0]) if exc.args else str(exc)
        return REFUSED if f"({REFUSED[0]}) '{REFUSED[1]}'" in said else said
    conn.close()
    return None


def test_guest_only_through_a_loopback_address(outside_address):
    with Broker.in_thread(host="0.0.0.0", users={"app": "pw"}) as broker:
        assert refusal("127.0.0.1", broker.port) is None
        assert refusal(outside_address, broker.port) == REFUSED
        # another user is not restricted, and a refused guest harms nobody else
        assert refusal(outside_address, broker.port, "app", "pw") is None


def test_rabbitmq_refuses_guest_from_outside_the_same_way(outside_address):
    if not rabbitmq_available():
        pytest.skip("no RabbitMQ on localhost:5672")
    try:
        socket.create_connection((outside_address, 5672), timeout=1).close()
    except OSError:
        pytest.skip("the local RabbitMQ does not listen on the non-loopback address")
    assert refusal(outside_address, 5672) == REFUSED


def test_the_restriction_can_be_lifted_or_moved(outside_address):
    with Broker.in_thread(host="0.0.0.0", loopback_users=[]) as broker:
        assert refusal(outside_address, broker.port) is None
    with Broker.in_thread(host="0.0.0.0", users={"app": "pw"},
                          loopback_users=["app"]) as broker:
        assert refusal(outside_address, broker.port) is None
        assert refusal(outside_address, broker.port, "app", "pw") == REFUSED


def test_command_line_options(outside_address):
    with LeveretProcess("--no-loopback-users", host="0.0.0.0") as proc:
        proc.started()
        assert refusal(outside_address, proc.port) is None
    with LeveretProcess(host="0.0.0.0") as proc:
        proc.started()
        assert refusal(outside_address, proc.port) == REFUSED
        proc.wait_for(r".*PLAIN login refused: user 'guest' can only connect via localhost.*")
    with LeveretProcess("--loopback-users", "none", host="0.0.0.0") as proc:
        proc.started()
        assert refusal(outside_address, proc.port) is None

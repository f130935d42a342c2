"""Shared fixtures: a real broker per test, in-process, on a free port.

``broker`` runs a ``leveret.Broker`` in a background thread (for pika's blocking API);
``abroker`` runs one on the test's own event loop (for aio-pika). Both listen on 127.0.0.1
on an ephemeral port, so tests talk to it over a real socket.

``LEVERET_TEST_TARGET=rabbitmq python -m pytest tests/test_exchanges.py`` runs the same
pika tests against a local RabbitMQ (a fresh vhost per test) to check our expectations against
the reference broker; tests marked ``leveret_only`` are skipped there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pika
import pytest

from leveret import Broker
from leveret.broker import ThreadedBroker

RABBITMQ_URL = os.environ.get("LEVERET_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


TARGET = os.environ.get("LEVERET_TEST_TARGET", "leveret")


class RabbitMQTarget:
    """Stands in for the ``broker`` fixture when LEVERET_TEST_TARGET=rabbitmq: a fresh vhost on
    the local RabbitMQ, so the same end-to-end tests show what RabbitMQ itself does."""

    host = "127.0.0.1"
    port = 5672

    def __init__(self) -> None:
        self.vhost = f"leveret-test-{uuid.uuid4().hex[:12]}"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.vhost], check=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest",
                        ".*", ".*", ".*"], check=True)
        self.url = f"amqp://guest:guest@127.0.0.1:5672/{urllib.parse.quote(self.vhost, safe='')}"

    def close(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], check=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TARGET != "rabbitmq":
        return
    skip = pytest.mark.skip(reason="uses Leveret's own API; not run against RabbitMQ")
    for item in items:
        if "leveret_only" in item.keywords or "abroker" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture
def broker() -> Iterator[ThreadedBroker]:
    if TARGET == "rabbitmq":
        if not rabbitmq_available():
            pytest.skip("no RabbitMQ on localhost:5672")
        target = RabbitMQTarget()
        yield target  # type: ignore[misc]
        target.close()
        return
    with Broker.in_thread() as b:
        yield b


@pytest.fixture
async def abroker() -> AsyncIterator[Broker]:
    async with Broker() as b:
        yield b


@pytest.fixture
def connection(broker: ThreadedBroker) -> Iterator[pika.BlockingConnection]:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def channel(connection: pika.BlockingConnection):
    return connection.channel()


def rabbitmq_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """URL of a real RabbitMQ for differential tests; skips cleanly when none is running."""
    if not rabbitmq_available():
        pytest.skip("no RabbitMQ on localhost:5672")
    return RABBITMQ_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RABBITMQ_API = os.environ.get("LEVERET_RABBITMQ_API", "http://127.0.0.1:15672/api")


def rabbitmq_api(method: str, path: str, body: object = None) -> tuple[int, object]:
    """Call the local RabbitMQ's management API as guest: (status, decoded JSON or text)."""
    import base64
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(RABBITMQ_API + path, method=method, data=data)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    try:
        return status, json.loads(text) if text.strip() else None
    except ValueError:
        return status, text.decode("utf-8", "replace")


@pytest.fixture(scope="session")
def rabbitmq_admin() -> Callable[..., tuple[int, object]]:
    """``rabbitmq_admin(method, path, body)`` on the local RabbitMQ's management API; skips
    cleanly when RabbitMQ or its management plugin is not there."""
    if not rabbitmq_available():
        pytest.skip("no RabbitMQ on localhost:5672")
    try:
        status, _ = rabbitmq_api("GET", "/whoami")
    except OSError:
        status = 0
    if status != 200:
        pytest.skip("no RabbitMQ management API on localhost:15672")
    return rabbitmq_api


# ---------------------------------------------------------------- the same test on both brokers


@dataclass
class Target:
    """A broker one test runs against: Leveret, or a fresh vhost of the local RabbitMQ, so the
    same assertions (RabbitMQ's behaviour, written out) are checked on both."""

    name: str  # "leveret" or "rabbitmq"
    host: str
    port: int
    vhost: str
    broker: ThreadedBroker | None = None  # Leveret's, for its inspection API

    @property
    def url(self) -> str:
        return (f"amqp://guest:guest@{self.host}:{self.port}/"
                f"{urllib.parse.quote(self.vhost, safe='')}")

    @property
    def is_rabbitmq(self) -> bool:
        return self.name == "rabbitmq"


def _management(method: str, path: str, body: object = None) -> None:
    status, reply = rabbitmq_api(method, path, body)
    if status >= 300:
        raise OSError(f"RabbitMQ management API: {method} {path}: {status} {reply}")


def add_rabbitmq_vhost(vhost: str) -> None:
    """A vhost on the local RabbitMQ with guest's permissions: through the management API
    (fast), else rabbitmqctl. Skips the test when neither works."""
    quoted = urllib.parse.quote(vhost, safe="")
    try:
        _management("PUT", f"/vhosts/{quoted}", {})
        _management("PUT", f"/permissions/{quoted}/guest",
                    {"configure": ".*", "write": ".*", "read": ".*"})
        return
    except OSError:
        pass
    try:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=30,
                       capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*",
                        ".*", ".*"], check=True, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot make a vhost on the local RabbitMQ")


def delete_rabbitmq_vhost(vhost: str) -> None:
    try:
        _management("DELETE", f"/vhosts/{urllib.parse.quote(vhost, safe='')}")
    except OSError:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=30,
                       capture_output=True)


@pytest.fixture(params=["leveret", "rabbitmq"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Leveret, then the local RabbitMQ 3.10 (skipped when absent); a test using it asserts
    what RabbitMQ does and so checks Leveret against it."""
    if request.param == "leveret":
        if TARGET == "rabbitmq":
            pytest.skip("LEVERET_TEST_TARGET=rabbitmq: the rabbitmq case covers it")
        with Broker.in_thread() as b:
            yield Target("leveret", b.host, b.port, "/", b)
        return
    if not rabbitmq_available():
        pytest.skip("no RabbitMQ on localhost:5672")
    vhost = f"leveret-target-{uuid.uuid4().hex[:12]}"
    add_rabbitmq_vhost(vhost)
    try:
        yield Target("rabbitmq", "127.0.0.1", 5672, vhost)
    finally:
        delete_rabbitmq_vhost(vhost)

"""pytest plugin: a real AMQP broker as cheap as a fixture (installed with leveret, nothing to
configure).

Fixtures:

``amqp_broker`` (session)
    The broker every test shares: a ``leveret.Broker`` running in a background thread, started
    on first use. Its inspection API (``queues``, ``peek``, ``purge_all``,
    ``wait_for_messages``) works from sync and async tests alike.
``amqp_vhost`` (function)
    A fresh virtual host for this test, deleted afterwards with everything in it, so tests
    never see each other's queues. The broker is not restarted.
``amqp_url`` (function)
    ``amqp://guest:guest@127.0.0.1:PORT/<amqp_vhost>``: hand it to pika, aio-pika, kombu...

Pointing the same fixtures at an external broker: set ``LEVERET_EXTERNAL_URL`` to an AMQP URL
(for example your CI's RabbitMQ) and no embedded broker is started. Per-test vhosts are then
created through the RabbitMQ management API when ``LEVERET_EXTERNAL_MANAGEMENT_URL`` is set
(``http://guest:guest@localhost:15672``); without it every test gets the external URL's own
vhost and ``amqp_vhost`` is that vhost's name.

This module imports nothing heavy: the broker (uvloop, pamqp) loads only when a fixture
asks for it.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

EXTERNAL_URL = "LEVERET_EXTERNAL_URL"
EXTERNAL_MANAGEMENT_URL = "LEVERET_EXTERNAL_MANAGEMENT_URL"


class ExternalBroker:
    """Stands in for the embedded broker when ``LEVERET_EXTERNAL_URL`` is set."""

    embedded = False

    def __init__(self, url: str, management_url: str | None) -> None:
        self.base_url = url
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 5672
        self.default_vhost = urllib.parse.unquote(parts.path[1:]) if parts.path[1:] else "/"
        self.management_url = management_url.rstrip("/") if management_url else None

    @property
    def url(self) -> str:
        return self.base_url

    def url_for(self, vhost: str | None = None) -> str:
        if vhost is None or vhost == self.default_vhost:
            return self.base_url
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, "/" + urllib.parse.quote(vhost, safe=""), parts.query,
             ""))

    def _api(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        assert self.management_url is not None
        parts = urllib.parse.urlsplit(self.management_url)
        url = urllib.parse.urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 15672}",
                                       "/api" + path, "", ""))
        req = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        creds = f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()
        req.add_header("Authorization", "Basic " + base64.b64encode(creds).decode())
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def add_vhost(self, name: str) -> bool:
        if self.management_url is None:
            return False
        quoted = urllib.parse.quote(name, safe="")
        self._api("PUT", f"/vhosts/{quoted}", {})
        user = urllib.parse.unquote(urllib.parse.urlsplit(self.base_url).username or "guest")
        self._api("PUT", f"/permissions/{quoted}/{urllib.parse.quote(user, safe='')}",
                  {"configure": ".*", "write": ".*", "read": ".*"})
        return True

    def delete_vhost(self, name: str) -> None:
        if self.management_url is not None:
            self._api("DELETE", f"/vhosts/{urllib.parse.quote(name, safe='')}")


def _test_vhost_name(node: pytest.Item | Any) -> str:
    base = getattr(node, "name", "test")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in base)[:60]
    return f"test-{safe}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def amqp_broker() -> Iterator[Any]:
    """The session's broker: embedded (a ThreadedBroker) unless LEVERET_EXTERNAL_URL is set."""
    external = os.environ.get(EXTERNAL_URL)
    if external:
        yield ExternalBroker(external, os.environ.get(EXTERNAL_MANAGEMENT_URL))
        return
    from leveret.broker import Broker

    broker = Broker.in_thread()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def amqp_vhost(amqp_broker: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A virtual host of this test's own, deleted (with its queues) after the test."""
    name = _test_vhost_name(request.node)
    if isinstance(amqp_broker, ExternalBroker) and not amqp_broker.add_vhost(name):
        yield amqp_broker.default_vhost  # no management API: share the external vhost
        return
    if not isinstance(amqp_broker, ExternalBroker):
        amqp_broker.add_vhost(name)
    try:
        yield name
    finally:
        amqp_broker.delete_vhost(name)


@pytest.fixture
def amqp_url(amqp_broker: Any, amqp_vhost: str) -> str:
    """AMQP URL of this test's own vhost."""
    return str(amqp_broker.url_for(amqp_vhost))


@pytest.fixture
def amqp_wait(amqp_broker: Any, amqp_vhost: str) -> Any:
    """``await amqp_wait(queue, count, timeout=5)``: wait in an async test until ``queue`` of
    this test's vhost holds ``count`` ready messages (embedded broker only)."""

    import asyncio

    async def wait(queue: str, count: int, timeout: float = 5.0) -> Any:
        return await asyncio.wrap_future(
            amqp_broker.wait_for_messages_future(queue, count, amqp_vhost, timeout))

    return wait

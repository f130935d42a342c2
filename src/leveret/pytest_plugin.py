"""pytest plugin: a real AMQP broker as cheap as a fixture (installed with leveret through the
``pytest11`` entry point; nothing to configure).

Fixtures (sync fixtures: they serve sync tests and async ones, pytest-asyncio or anyio, alike):

``amqp_broker`` (session)
    The broker every test shares: a ``leveret.Broker`` running in a background thread
    (``ThreadedBroker``), started on first use on 127.0.0.1 and an ephemeral port, in memory.
    Override this fixture in a ``conftest.py`` to start it with other options.
``amqp_vhost`` (function)
    The name of a fresh virtual host for this test, deleted afterwards with everything in it
    (its connections are closed with 320), so tests never see each other's queues. The broker
    is not restarted.
``amqp_url`` (function)
    ``amqp://guest:guest@127.0.0.1:PORT/<amqp_vhost>``: hand it to pika, aio-pika, kombu...
``amqp_prefix`` (function)
    A name prefix unique to this test (``test_name-1a2b3c4d.``), for queue and exchange names
    that must not collide when tests share a vhost (an external broker without management API).
``amqp_inspect`` (function)
    The inspection API on this test's vhost (``leveret.broker.VhostView``): ``queues()``,
    ``queue(name)``, ``queue_names()``, ``peek(queue)``, ``purge()``,
    ``wait_for_messages(queue, n)`` and ``await wait_for_messages_async(queue, n)``.
``amqp_wait`` (function)
    ``await amqp_wait(queue, n, timeout=5)``: the async wait of ``amqp_inspect``.

External broker: set ``LEVERET_EXTERNAL_URL`` to an AMQP URL (a RabbitMQ in CI, say) and the
same fixtures use it; no embedded broker is started or even imported. Per-test vhosts are then
made through the RabbitMQ management API: at ``LEVERET_EXTERNAL_MANAGEMENT_URL`` if set
(``http://guest:guest@rabbitmq:15672``; ``off`` turns it off), else at ``http://HOST:15672``
with the AMQP URL's credentials if that answers for the same broker (its overview lists the
URL's AMQP port) and the user is an administrator. Without it
every test gets the URL's own vhost (``amqp_vhost`` is its name) and only ``amqp_prefix``
keeps names apart; nothing is cleaned up for you. ``amqp_inspect`` and ``amqp_wait`` read the
embedded broker's memory, so tests that use them are skipped on an external broker.

This module imports nothing heavy: the broker (asyncio, uvloop, pamqp) is loaded only when a
fixture asks for it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

EXTERNAL_URL = "LEVERET_EXTERNAL_URL"
EXTERNAL_MANAGEMENT_URL = "LEVERET_EXTERNAL_MANAGEMENT_URL"
_OFF = ("", "0", "off", "no", "none", "false")


class ExternalBroker:
    """Stands in for the embedded broker when ``LEVERET_EXTERNAL_URL`` is set."""

    embedded = False

    def __init__(self, url: str, management_url: str | None = None) -> None:
        from urllib.parse import unquote, urlsplit

        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        self.user = unquote(parts.username or "guest")
        self.password = unquote(parts.password or "guest")
        self.default_vhost = unquote(parts.path[1:]) if parts.path[1:] else "/"
        self.management_url = management_url.rstrip("/") if management_url else None

    @classmethod
    def from_environment(cls, url: str) -> ExternalBroker:
        """The broker at ``url``, with the management API as ``LEVERET_EXTERNAL_MANAGEMENT_URL``
        says, or found at the AMQP host's port 15672."""
        setting = os.environ.get(EXTERNAL_MANAGEMENT_URL)
        if setting is not None:
            return cls(url, None if setting.strip().lower() in _OFF else setting.strip())
        broker = cls(url)
        guess = f"http://{broker.host}:15672"
        try:
            who = broker._api("GET", "/whoami", base=guess, timeout=2)
            # the API on 15672 must be this broker's: another broker on the same host (a
            # RabbitMQ beside a Leveret on another port) lists other AMQP ports
            overview = broker._api("GET", "/overview", base=guess, timeout=2)
        except Exception:
            return broker  # no management API: shared vhost, unique prefixes
        ports = {listener.get("port") for listener in overview.get("listeners", ())
                 if str(listener.get("protocol", "")).startswith("amqp")}
        if "administrator" in str(who.get("tags", "")) and broker.port in ports:
            broker.management_url = guess
        return broker

    def url_for(self, vhost: str | None = None) -> str:
        from urllib.parse import quote, urlsplit, urlunsplit

        if vhost is None or vhost == self.default_vhost:
            return self.url
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query,
                           ""))

    def describe(self) -> str:
        """The URL without its password, and the isolation tests get."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.username is not None:
            netloc = f"{parts.username}:***@{netloc}"
        where = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        how = ("a vhost per test via " + self.management_url if self.management_url
               else "one shared vhost, amqp_prefix for names")
        return f"{where} ({how})"

    def _api(self, method: str, path: str, body: dict[str, Any] | None = None,
             base: str | None = None, timeout: float = 10) -> Any:
        import base64
        import json
        import urllib.request
        from urllib.parse import unquote, urlsplit, urlunsplit

        parts = urlsplit(base or self.management_url or "")
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/api" + path, "", ""))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, method=method, data=data)
        user = unquote(parts.username) if parts.username else self.user
        password = unquote(parts.password) if parts.password else self.password
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None

    def add_vhost(self, name: str) -> bool:
        """Create ``name`` with full permissions for the URL's user; False without the API."""
        if self.management_url is None:
            return False
        from urllib.parse import quote

        vhost = quote(name, safe="")
        self._api("PUT", f"/vhosts/{vhost}", {})
        self._api("PUT", f"/permissions/{vhost}/{quote(self.user, safe='')}",
                  {"configure": ".*", "write": ".*", "read": ".*"})
        return True

    def delete_vhost(self, name: str) -> None:
        if self.management_url is not None:
            from urllib.parse import quote

            self._api("DELETE", f"/vhosts/{quote(name, safe='')}")


def _test_name(node: Any, limit: int = 40) -> str:
    name = getattr(node, "name", "test")
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:limit]


def pytest_report_header(config: pytest.Config) -> str | None:
    url = os.environ.get(EXTERNAL_URL)
    if url:
        from urllib.parse import urlsplit

        host = urlsplit(url).netloc.rsplit("@", 1)[-1]
        return f"leveret: {EXTERNAL_URL} is set, amqp_* fixtures use the broker at {host}"
    return None


@pytest.fixture(scope="session")
def amqp_broker() -> Iterator[Any]:
    """The session's broker: embedded (a ``ThreadedBroker``) unless LEVERET_EXTERNAL_URL is
    set, then an ``ExternalBroker``. Both have ``url``, ``url_for(vhost)``, ``add_vhost``,
    ``delete_vhost`` and ``embedded``."""
    external = os.environ.get(EXTERNAL_URL)
    if external:
        yield ExternalBroker.from_environment(external)
        return
    from leveret.broker import Broker

    with Broker.in_thread() as broker:
        yield broker


@pytest.fixture
def amqp_vhost(amqp_broker: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A virtual host of this test's own, deleted (with its queues) after the test."""
    name = f"test-{_test_name(request.node, 60)}-{uuid.uuid4().hex[:8]}"
    if not amqp_broker.embedded and not amqp_broker.add_vhost(name):
        yield amqp_broker.default_vhost  # no management API: the external URL's own vhost
        return
    if amqp_broker.embedded:
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
def amqp_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix for queue and exchange names, unique to this test."""
    return f"{_test_name(request.node)}-{uuid.uuid4().hex[:8]}."


@pytest.fixture
def amqp_inspect(amqp_broker: Any, amqp_vhost: str) -> Any:
    """The inspection API bound to this test's vhost (a ``leveret.broker.VhostView``);
    skips the test on an external broker."""
    if not amqp_broker.embedded:
        pytest.skip(f"amqp_inspect needs the embedded broker ({EXTERNAL_URL} is set)")
    return amqp_broker.vhost(amqp_vhost)


@pytest.fixture
def amqp_wait(amqp_inspect: Any) -> Callable[..., Awaitable[Any]]:
    """``await amqp_wait(queue, count, timeout=5)``: wait until ``queue`` of this test's
    vhost holds ``count`` ready messages; returns its ``QueueInfo``."""
    return amqp_inspect.wait_for_messages_async  # type: ignore[no-any-return]

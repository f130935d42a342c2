"""Shared fixtures: a real broker per test, in-process, on a free port.

``broker`` runs a ``leveret.Broker`` in a background thread (for pika's blocking API);
``abroker`` runs one on the test's own event loop (for aio-pika). Both listen on 127.0.0.1
on an ephemeral port, so tests talk to it over a real socket.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator

import pika
import pytest

from leveret import Broker
from leveret.broker import ThreadedBroker

RABBITMQ_URL = os.environ.get("LEVERET_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def broker() -> Iterator[ThreadedBroker]:
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

"""Leveret: an AMQP 0-9-1 message broker in Python, a drop-in development RabbitMQ.

``import leveret`` is light: the server, uvloop and pamqp are imported only when a
broker is started (``leveret.Broker``) or a server module is imported directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _speedups

# before any data-plane module is imported: LEVERET_NO_EXTENSIONS takes their Python source
_speedups.install()

__version__ = "0.1.0"

# The RabbitMQ release whose behaviour Leveret follows (the one its differential tests run
# against): clients are told they talk to this RabbitMQ, so they take their RabbitMQ code paths
# (kombu, Spring). Leveret names itself in ``platform``, ``information``, ``leveret_version``.
RABBITMQ_VERSION = "3.10.8"

if TYPE_CHECKING:
    from .broker import Broker

__all__ = ["Broker", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Broker":
        from .broker import Broker

        return Broker
    raise AttributeError(f"module 'leveret' has no attribute {name!r}")

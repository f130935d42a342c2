"""Socket addresses as RabbitMQ writes them (rabbit_misc:ntoa/ntoab).

A listener on ``[::]`` (the default, dual-stack) sees IPv4 clients as ``::ffff:127.0.0.1``;
RabbitMQ shows them as plain IPv4 and puts an IPv6 address in brackets before a port, so
connection names, log lines and the management API read ``127.0.0.1:35372 -> 127.0.0.1:5672``
or ``[::1]:35372 -> [::1]:5672`` whichever way the socket was bound.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def host_text(host: str) -> str:
    """``host`` with an IPv4-mapped IPv6 address given as its IPv4 address."""
    if host.startswith("::ffff:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host


def endpoint(address: Any) -> str:
    """``host:port`` of a socket address (``[host]:port`` for IPv6); str() of anything else
    (a Unix socket's path)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = host_text(str(address[0]))
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)

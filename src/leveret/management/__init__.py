"""The management HTTP API (RabbitMQ's, on port 15672): reads and changes the broker's model.

Loaded only when the API is on, after the AMQP port listens (``leveret.Broker`` imports this
package then), so neither start-up time nor idle memory pays for it otherwise. Nothing in the
broker's model imports it.

    api = await start_management(server, host, port)   # port 0: an ephemeral one
    api.port                                           # the bound port
    await api.stop()
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..server import _bound_socket
from .app import ManagementAPI
from .http import MAX_BODY_SIZE, HTTPProtocol

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["ManagementServer", "start_management"]

# the RabbitMQ plugins whose work the API does ("Server startup complete; 3 plugins started.")
PLUGINS = ("rabbitmq_management", "rabbitmq_management_agent", "rabbitmq_web_dispatch")


class ManagementServer:
    """The API's HTTP listener and its statistics sampler."""

    def __init__(self, api: ManagementAPI, listener: asyncio.base_events.Server) -> None:
        self.api = api
        self.listener = listener
        self.connections: set[HTTPProtocol] = set()

    @property
    def port(self) -> int:
        return int(self.listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server = self.api.server
        server.listeners = [x for x in server.listeners if x.protocol != "http"]
        self.listener.close()
        for conn in list(self.connections):
            conn.close()
        await self.api.sampler.stop()
        await self.listener.wait_closed()


async def start_management(server: Server, host: str, port: int,
                           max_body_size: int = MAX_BODY_SIZE) -> ManagementServer:
    """Listen for the API on ``host:port`` (OSError if that cannot be done)."""
    api = ManagementAPI(server)
    connections: set[HTTPProtocol] = set()
    loop = asyncio.get_running_loop()

    def protocol() -> HTTPProtocol:
        return HTTPProtocol(api, max_body_size, connections)

    sock = _bound_socket(host, port)
    if sock is not None:  # a numeric address: no getaddrinfo, no resolver threads
        try:
            listener = await loop.create_server(protocol, sock=sock, backlog=128)
        except BaseException:
            sock.close()
            raise
    else:
        listener = await loop.create_server(protocol, host=host or None, port=port,
                                            reuse_address=True, backlog=128)
    managed = ManagementServer(api, listener)
    managed.connections = connections
    from ..server import Listener

    for sock in listener.sockets:
        address = sock.getsockname()
        api.listeners.append({"host": address[0], "port": address[1]})
        # the start-up lines and leveret-ctl name it as RabbitMQ's management plugin
        server.listeners.append(Listener("http", address[0], address[1], PLUGINS))
    api.sampler.start()
    return managed

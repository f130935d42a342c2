"""A bare AMQP client over a plain socket, for sending what well-behaved clients never send."""

from __future__ import annotations

import select
import socket
from typing import Any

from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_method(self, channel: int, method: Any) -> None:
        self.send(pframe.marshal(method, channel))

    def recv_frame(self) -> tuple[int, Any]:
        """The next frame as (channel, pamqp frame); raises EOFError when the server closed."""
        while True:
            if self.buf:
                try:
                    used, channel, frame = pframe.unmarshal(self.buf)
                except Exception:
                    used = 0
                if used:
                    self.buf = self.buf[used:]
                    return channel, frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk

    def recv_until(self, kind: type) -> tuple[int, Any]:
        """Skip frames (heartbeats, ...) until one of ``kind`` arrives."""
        while True:
            channel, frame = self.recv_frame()
            if isinstance(frame, kind):
                return channel, frame

    def read_to_eof(self) -> bytes:
        data = self.buf
        self.buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/",
                  heartbeat: int = 0, frame_max: int = 131072,
                  channel_max: int | None = None) -> spec.Connection.Start:
        self.send(PROTOCOL_HEADER)
        _, start = self.recv_until(spec.Connection.Start)
        self.send_method(0, spec.Connection.StartOk(
            client_properties={"product": "rawamqp",
                               "capabilities": {"authentication_failure_close": True,
                                                "consumer_cancel_notify": True}},
            mechanism="PLAIN", response=f"\0{user}\0{password}", locale="en_US"))
        _, tune = self.recv_until(spec.Connection.Tune)
        if channel_max is None:
            channel_max = tune.channel_max
        self.send_method(0, spec.Connection.TuneOk(channel_max=channel_max,
                                                   frame_max=frame_max, heartbeat=heartbeat))
        self.send_method(0, spec.Connection.Open(virtual_host=vhost))
        self.recv_until(spec.Connection.OpenOk)
        return start

    def open_channel(self, channel: int = 1) -> None:
        self.send_method(channel, spec.Channel.Open())
        self.recv_until(spec.Channel.OpenOk)


def heartbeat_frame() -> bytes:
    return pheartbeat.Heartbeat().marshal()


def blocked_capable_publisher(host: str, port: int) -> RawClient:
    """A logged-in client with channel 1 open that declared the connection.blocked capability."""
    client = RawClient(host, port)
    client.send(PROTOCOL_HEADER)
    client.recv_until(spec.Connection.Start)
    client.send_method(0, spec.Connection.StartOk(
        client_properties={"capabilities": {"connection.blocked": True}},
        mechanism="PLAIN", response="\0guest\0guest", locale="en_US"))
    client.recv_until(spec.Connection.Tune)
    client.send_method(0, spec.Connection.TuneOk(channel_max=10, frame_max=131072,
                                                 heartbeat=0))
    client.send_method(0, spec.Connection.Open(virtual_host="/"))
    client.recv_until(spec.Connection.OpenOk)
    client.open_channel(1)
    return client


def publish_frames(queue: str, body: bytes) -> bytes:
    """basic.publish to the default exchange on channel 1, with its header and body."""
    return (pframe.marshal(spec.Basic.Publish(exchange="", routing_key=queue), 1)
            + pframe.marshal(pheader.ContentHeader(0, len(body), spec.Basic.Properties()), 1)
            + pframe.marshal(pbody.ContentBody(body), 1))


def flood_until_the_broker_speaks(client: RawClient, queue: str, body: bytes,
                                  most: int = 20_000) -> tuple[int, bytes]:
    """Publish ``body`` to ``queue`` over and over, never blocking in a send (once the broker
    stops reading, a blocking send would not return), until the broker sends something (a
    connection.blocked). Returns (messages begun, the unsent rest of the last one)."""
    sent, pending = 0, b""
    while True:
        readable, writable, _ = select.select([client.sock], [client.sock], [], 10)
        if readable or client.buf:
            return sent, pending
        assert writable, "neither readable nor writable for 10 s"
        if not pending:
            pending = publish_frames(queue, body)
            sent += 1
            assert sent < most, f"the broker said nothing after {most} messages"
        pending = pending[client.sock.send(pending):]

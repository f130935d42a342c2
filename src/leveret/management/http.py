"""HTTP/1.1 for the management API: h11 (a sans-IO parser) under an asyncio protocol.

h11 keeps the protocol honest (keep-alive, pipelining, chunked and Content-Length bodies,
HEAD, ``Connection: close``) and costs ~15 ms and ~0.3 MB to import on top of the broker,
loaded only after the AMQP port listens. Handlers are plain functions run on the broker's
loop: they read and change the model directly, so a request never waits on anything.

Bad input never reaches a handler as an exception: garbage HTTP gets 400 and the socket is
closed, a body over the limit gets 400 "Exceeded HTTP request body size limit" and a closed socket
(RabbitMQ's ``management.http.max_body_size``, 20 MiB by default, and its answer since 3.11:
3.10 crashed with an empty 500), and a handler that fails answers 500 with a logged
traceback, never a dead listener.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import h11

log = logging.getLogger("leveret.management")

MAX_BODY_SIZE = 20 * 1024 * 1024  # RabbitMQ's management.http.max_body_size default
MAX_HEADER_SIZE = 64 * 1024
LINGER = 2.0  # seconds input is still read (and dropped) after an error answer
IDLE_TIMEOUT = 300.0  # seconds a keep-alive connection may sit idle (cowboy's idle_timeout)


class Request:
    """One HTTP request as handlers see it."""

    __slots__ = ("method", "target", "path", "query", "headers", "body", "peer", "local_host")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes,
                 peer: str, local_host: str = "") -> None:
        self.method = method
        self.target = target
        path, _, qs = target.partition("?")
        self.path = path
        self.query = dict(parse_qsl(qs, keep_blank_values=True))
        self.headers = headers  # lower-case names
        self.body = body
        self.peer = peer
        self.local_host = local_host  # the address the client reached (loopback_users)

    def json(self) -> Any:
        """The body as JSON (RabbitMQ: an empty body or ``null`` is ``{}``); HTTPError 400
        ``not_json`` otherwise."""
        body = self.body.strip()
        if body in (b"", b"null", b"undefined"):
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "bad_request", "not_json") from None


class Response:
    """Status, headers and body (JSON for anything that is not bytes)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int = 200, body: Any = b"",
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.headers = list(headers or [])
        if isinstance(body, bytes):
            self.body = body
        else:
            self.body = json.dumps(body, separators=(",", ":")).encode("utf-8")
            self.headers.append(("content-type", "application/json"))
            self.headers.append(("cache-control", "no-cache"))


class HTTPError(Exception):
    """An error answer in RabbitMQ's shape: ``{"error": error, "reason": reason}``."""

    def __init__(self, status: int, error: str, reason: str,
                 headers: list[tuple[str, str]] | None = None, empty: bool = False) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = headers or []
        self.empty = empty  # RabbitMQ sends some (405, 401 without credentials) with no body

    def response(self) -> Response:
        if self.empty:
            return Response(self.status, b"", self.headers)
        return Response(self.status, {"error": self.error, "reason": self.reason}, self.headers)


Handler = Callable[[Request], Response]


class HTTPProtocol(asyncio.Protocol):
    """One HTTP client connection; ``handler`` answers each complete request."""

    def __init__(self, handler: Handler, max_body_size: int = MAX_BODY_SIZE,
                 connections: set[HTTPProtocol] | None = None) -> None:
        self.handler = handler
        self.max_body_size = max_body_size
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_SIZE)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.local_host = ""
        self.connections = connections
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._idle: asyncio.TimerHandle | None = None
        self._draining = False  # answered and closing: what else arrives is dropped

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        local = transport.get_extra_info("sockname")
        self.local_host = str(local[0]) if isinstance(local, tuple) else ""
        if self.connections is not None:
            self.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connections is not None:
            self.connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        self._arm_idle()
        try:
            self.conn.receive_data(data)
        except h11.RemoteProtocolError:
            self._fail(400, "bad_request", "malformed HTTP request")
            return
        self._process()

    def eof_received(self) -> bool | None:
        if self._draining:
            return None
        try:
            self.conn.receive_data(b"")
        except h11.RemoteProtocolError:
            pass
        self._process()
        return None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(IDLE_TIMEOUT, self.close)

    # ------------------------------------------------------------------ requests

    def _process(self) -> None:
        while self.transport is not None:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(exc.error_status_hint, "bad_request", "malformed HTTP request")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body = []
                self._body_size = 0
                length = _header(event.headers, b"content-length")
                if length is not None and length.isdigit() and int(length) > self.max_body_size:
                    self._too_large()
                    return
                if self.conn.they_are_waiting_for_100_continue:  # curl's Expect: 100-continue
                    assert self.transport is not None
                    self.transport.write(self.conn.send(
                        h11.InformationalResponse(status_code=100, headers=[])))
            elif isinstance(event, h11.Data):
                self._body_size += len(event.data)
                if self._body_size > self.max_body_size:
                    self._too_large()
                    return
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._respond()
                if self.transport is None:
                    return
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                    self.close()
                    return
                try:
                    self.conn.start_next_cycle()
                except h11.LocalProtocolError:
                    self.close()
                    return
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _respond(self) -> None:
        req = self._request
        assert req is not None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in req.headers}
        request = Request(req.method.decode("ascii", "replace"),
                          req.target.decode("latin-1"), headers, b"".join(self._body), self.peer,
                          self.local_host)
        self._body = []
        try:
            response = self.handler(request)
        except HTTPError as exc:
            response = exc.response()
        except Exception:  # a bug in a handler must not kill the connection or the listener
            log.exception("management API: %s %s failed", request.method, request.target)
            response = HTTPError(500, "internal_server_error", "internal error").response()
        self._send(response, head=request.method == "HEAD")

    def _send(self, response: Response, head: bool = False) -> None:
        if self.transport is None:
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        headers.append((b"server", b"Leveret"))
        out = self.conn.send(h11.Response(status_code=response.status, headers=headers,
                                          reason=_reason(response.status)))
        if response.body and not head:
            out += self.conn.send(h11.Data(data=response.body))
        out += self.conn.send(h11.EndOfMessage())
        self.transport.write(out)

    def _too_large(self) -> None:
        # rabbit_mgmt_util:read_complete_body's answer (RabbitMQ 3.11 and later)
        self._fail(400, "bad_request", "Exceeded HTTP request body size limit")

    def _fail(self, status: int, error: str, reason: str) -> None:
        """Answer an unusable request (if an answer is still possible) and close."""
        if self.transport is None:
            return
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            response = HTTPError(status, error, reason).response()
            response.headers.append(("connection", "close"))
            try:
                self._send(response)
            except h11.LocalProtocolError:
                pass
        # Lingering close: closing with unread input would reset the connection and could
        # destroy the answer before the client reads it (a client still sending a body over
        # the limit), so stop writing, drop what still comes, and close a little later.
        self._draining = True
        assert self.transport is not None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(LINGER, self.close)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None

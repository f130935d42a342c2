"""A small HTTP client for the management API tests (urllib, one request per call, the raw
status, headers and body kept), and the fixtures that start a broker with the API on."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from typing import Any

RABBITMQ_API = os.environ.get("LEVERET_RABBITMQ_API", "http://127.0.0.1:15672")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:200]!r}>"


class API:
    """``api.get("/api/queues")`` -> Reply; ``api.json("GET", path)`` -> the decoded body."""

    def __init__(self, base: str, user: str = "guest", password: str = "guest") -> None:
        self.base = base.rstrip("/")
        self.user = user
        self.password = password

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True,
                timeout: float = 10) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, method=method, data=data)
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Reply(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, dict(exc.headers), exc.read())

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, body if body is not None else {}, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def json(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.request(method, path, body)
        assert 200 <= reply.status < 300, reply
        return reply.json()


def rabbitmq_api() -> API | None:
    """The local RabbitMQ's management API, or None if it does not answer."""
    api = API(RABBITMQ_API)
    try:
        if api.get("/api/whoami", timeout=2).status == 200:
            return api
    except OSError:
        pass
    return None

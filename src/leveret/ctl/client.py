"""The management HTTP API, as ``leveret-ctl`` talks to it (the standard library's urllib: no
dependency for a few requests), and the exit codes of rabbitmqctl (BSD sysexits)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://guest:guest@localhost:15672"

# rabbitmqctl's exit codes (sysexits.h), rabbitmq.com/docs/cli
EX_OK = 0
EX_USAGE = 64  # bad command line; RabbitMQ 3.10 also says it for a queue delete_queue cannot find
EX_DATAERR = 65  # no such vhost (delete_vhost, list_permissions), unreadable input
EX_NOUSER = 67  # no such user
EX_UNAVAILABLE = 69  # the broker cannot be reached (or, for some commands, a missing thing)
EX_SOFTWARE = 70  # the operation failed (add_user for a user that exists)
EX_TEMPFAIL = 75  # timed out


class CtlError(Exception):
    """A command failed: ``message`` goes to stderr (after "Error:" unless ``bare``), the
    process exits with ``code``."""

    def __init__(self, code: int, message: str, bare: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.bare = bare


class UsageError(CtlError):
    """The command line is wrong: rabbitmqctl's "Error (argument validation): ..." and the
    command's usage, exit 64."""

    def __init__(self, message: str) -> None:
        super().__init__(EX_USAGE, message, bare=True)


class ApiError(Exception):
    """The API answered with an HTTP error status."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason


class ManagementAPI:
    """A management API at ``url`` (``http://USER:PASS@HOST:PORT[/prefix]``)."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CtlError(EX_USAGE, f"--management-url {url!r} is not http[s]://[USER:PASS@]"
                                     "HOST[:PORT]")
        self.user = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 15672)
        except ValueError:
            raise CtlError(EX_USAGE, f"--management-url {url!r} has a bad port") from None
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base = f"{parts.scheme}://{host}:{self.port}{parts.path.rstrip('/')}"
        token = base64.b64encode(f"{self.user}:{password}".encode()).decode()
        self._auth = f"Basic {token}"
        self.timeout = timeout

    @property
    def shown(self) -> str:
        """The URL without credentials, for messages."""
        return self.base

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, raw: bool = False) -> Any:
        """``method`` ``/api`` + ``path``; the decoded JSON answer (None when empty).
        Raises ``ApiError`` on an HTTP error status and ``CtlError`` (69) when the API cannot
        be reached, (75) when it does not answer in time."""
        data = None
        all_headers = {"Authorization": self._auth}
        # no Accept header: RabbitMQ answers 406 to DELETE .../contents with one
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = urllib.request.Request(self.base + "/api" + path, data=data, method=method,
                                     headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except TimeoutError:
            raise CtlError(EX_TEMPFAIL, f"the management API at {self.shown} did not answer "
                                        f"in {self.timeout:g} seconds") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise CtlError(EX_TEMPFAIL, f"the management API at {self.shown} did not "
                                            f"answer in {self.timeout:g} seconds") from None
            text = getattr(reason, "strerror", None) or str(reason)
            raise CtlError(EX_UNAVAILABLE, f"unable to perform an operation on the broker: "
                                           f"its management API at {self.shown} cannot be "
                                           f"reached ({text})") from None
        if raw:
            return payload
        return json.loads(payload) if payload.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.request("DELETE", path, headers=headers)

    def get_or_none(self, path: str) -> Any:
        """GET, None for 404."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise


def quote(name: str) -> str:
    """A vhost, user, queue or connection name as one path segment (``/`` is ``%2F``)."""
    return urllib.parse.quote(name, safe="")


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    error, reason = exc.reason or "", ""
    try:
        body = json.loads(exc.read() or b"{}")
        error, reason = str(body.get("error", error)), str(body.get("reason", ""))
    except (ValueError, AttributeError, OSError):
        pass
    return ApiError(exc.code, error, reason)

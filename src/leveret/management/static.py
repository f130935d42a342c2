"""The web UI's files (``management/ui/``, shipped in the package), served on the management port
at ``/`` as RabbitMQ's management UI is: a page of its own (no CDN, no build step) that calls the
API under ``/api/`` with the user's credentials.

Only files under ``ui/`` are served, never a path that leaves it. Answers carry an ETag (304 when
it still matches) and ``no-cache``, so a reload revalidates and an upgrade shows at once, and a
Content-Security-Policy that lets the page load nothing but its own files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from .http import HTTPError, Request, Response

UI_DIR = Path(__file__).resolve().parent / "ui"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}

HEADERS = [
    ("cache-control", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy",
     "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
     "form-action 'self'; frame-ancestors 'none'"),
]


def _not_found() -> HTTPError:
    return HTTPError(404, "Object Not Found", "Not Found")


def ui_file(path: str) -> Path | None:
    """The file a request path names under ``ui/`` (``/`` is ``index.html``), or None."""
    rel = unquote(path).lstrip("/") or "index.html"
    if "\0" in rel or "\\" in rel:
        return None
    candidate = (UI_DIR / rel).resolve()
    if not candidate.is_relative_to(UI_DIR) or not candidate.is_file():
        return None
    if candidate.suffix not in CONTENT_TYPES:
        return None
    return candidate


def serve(req: Request) -> Response:
    """Answer a request for a UI file (GET or HEAD)."""
    file = ui_file(req.path)
    if file is None:
        raise _not_found()
    if req.method not in ("GET", "HEAD"):
        raise HTTPError(405, "method_not_allowed", "Method Not Allowed",
                        [("allow", "HEAD, GET, OPTIONS")], empty=True)
    stat = file.stat()
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    headers = [("etag", etag), *HEADERS]
    if etag in req.headers.get("if-none-match", ""):
        return Response(304, b"", headers)
    headers.append(("content-type", CONTENT_TYPES[file.suffix]))
    return Response(200, file.read_bytes(), headers)

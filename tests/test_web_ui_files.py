"""The web UI's files: served from the package on the management port (with a strict content
policy, nothing outside ui/), and carried by a wheel of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from leveret import Broker

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "src" / "leveret" / "management" / "ui"


@pytest.fixture(scope="module")
def broker() -> Iterator:
    with Broker.in_thread(management_port=0) as b:
        yield b


def fetch(url: str, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_index_and_its_files_are_served_with_a_strict_policy(broker):
    status, headers, body = fetch(broker.management_url + "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert b'<script type="module" src="js/main.js">' in body
    for path, kind in (("/js/main.js", "text/javascript"), ("/js/pages/queue.js",
                                                              "text/javascript"),
                       ("/css/main.css", "text/css"), ("/img/leveret.svg", "image/svg+xml")):
        status, headers, body = fetch(broker.management_url + path)
        assert status == 200 and headers["content-type"].startswith(kind), path
        assert body == (UI / path.lstrip("/")).read_bytes()


def test_a_second_fetch_is_a_304_while_the_file_is_unchanged(broker):
    _, headers, _ = fetch(broker.management_url + "/js/api.js")
    status, _, body = fetch(broker.management_url + "/js/api.js",
                            {"If-None-Match": headers["etag"]})
    assert status == 304 and body == b""


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/%2e%2e/__init__.py",
                                  "/js/../../app.py", "/js/%2e%2e/%2e%2e/static.py",
                                  "/nothing.html", "/js/", "/ui/index.html"])
def test_nothing_outside_the_ui_files_is_served(broker, path):
    status, _, body = fetch(broker.management_url + path)
    assert status == 404
    assert b"import" not in body


def test_only_get_and_head(broker):
    req = urllib.request.Request(broker.management_url + "/index.html", data=b"x",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 405


def test_a_wheel_carries_every_ui_file(tmp_path):
    # built from a copy of the sources (pure Python: no compiler needed), as `pip install .`
    # and `pip wheel .` build it
    src = tmp_path / "project"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns(
        "*.so", "*.c", "__pycache__", "*.egg-info"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "LEVERET_NO_EXTENSIONS": "1"})
    if out.returncode and "bdist_wheel" in out.stderr:
        pytest.skip("setuptools here cannot build wheels without the wheel package")
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("leveret-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {"leveret/management/" + str(p.relative_to(UI.parent))
              for p in UI.rglob("*") if p.is_file()}
    assert len(wanted) > 10
    assert wanted - names == set()

"""The management API's HTTP listener: ports, keep-alive, HEAD, limits, bad input, auth."""

from __future__ import annotations

import base64
import http.client
import socket
import subprocess
import sys

import pytest

from _proc import STARTED, LeveretProcess
from conftest import free_port
from leveret import Broker

from apiclient import API

AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


@pytest.fixture(scope="module")
def mbroker():
    with Broker.in_thread(management_port=0) as b:
        yield b


@pytest.fixture
def api(mbroker) -> API:
    return API(mbroker.management_url)


def raw_exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` on a fresh socket and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_off_unless_asked_and_bound_port_is_told():
    with Broker.in_thread() as b:
        assert b.management_port is None and b.management_url is None
    with Broker.in_thread(management_port=0) as b:
        port = b.management_port
        assert isinstance(port, int) and port > 0
        assert API(b.management_url).get("/api/overview").status == 200


def test_keep_alive_serves_many_requests_on_one_socket(mbroker):
    conn = http.client.HTTPConnection("127.0.0.1", mbroker.management_port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/api/whoami", headers={"Authorization": AUTH})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b'{"name":"guest","tags":["administrator"]}'
    conn.close()


def test_pipelined_requests_are_answered_in_order(mbroker):
    request = (f"GET /api/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\r\n"
               f"GET /api/nope HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
               "Connection: close\r\n\r\n").encode()
    out = raw_exchange(mbroker.management_port, request)
    assert out.count(b"HTTP/1.1 ") == 2
    assert out.index(b"200 OK") < out.index(b"404 Not Found")


def test_head_has_headers_and_no_body(mbroker):
    conn = http.client.HTTPConnection("127.0.0.1", mbroker.management_port, timeout=5)
    conn.request("HEAD", "/api/overview", headers={"Authorization": AUTH})
    resp = conn.getresponse()
    assert resp.status == 200
    assert int(resp.getheader("content-length")) > 100
    assert resp.read() == b""
    conn.close()


def test_chunked_request_body_is_read(api, mbroker):
    body = b'{"durable": false}'
    request = (f"PUT /api/queues/%2F/chunked-q HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               "Connection: close\r\n\r\n").encode()
    request += f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    out = raw_exchange(mbroker.management_port, request)
    assert out.startswith(b"HTTP/1.1 201 ")
    assert api.get("/api/queues/%2F/chunked-q").json()["durable"] is False
    assert api.delete("/api/queues/%2F/chunked-q").status == 204


def test_body_over_the_limit_is_refused_and_the_listener_lives(api, mbroker):
    big = b"[" + b"0," * (10 * 1024 * 1024) + b"0]"  # 20 MiB + 2
    reply = api.put("/api/queues/%2F/huge", raw=big)
    # RabbitMQ's answer since 3.11 (3.10 crashes on it with an empty 500)
    assert reply.status == 400
    assert reply.json() == {"error": "bad_request",
                            "reason": "Exceeded HTTP request body size limit"}
    # announced with Content-Length: refused before the body is read
    out = raw_exchange(mbroker.management_port, (
        f"PUT /api/queues/%2F/huge HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
        f"Content-Length: {30 * 1024 * 1024}\r\n\r\n").encode())
    assert out.startswith(b"HTTP/1.1 400 ")
    assert api.get("/api/queues/%2F/huge").status == 404
    assert api.get("/api/whoami").status == 200


@pytest.mark.parametrize("garbage", [
    b"GARBAGE\r\n\r\n",
    b"GET /api/overview HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
    b"GET /api/overview HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
])
def test_garbage_http_gets_400_and_a_closed_socket(api, mbroker, garbage):
    out = raw_exchange(mbroker.management_port, garbage)
    assert out.startswith(b"HTTP/1.1 400 ")
    assert b"Traceback" not in out
    assert api.get("/api/whoami").status == 200


def test_headers_too_large_are_refused(api, mbroker):
    out = raw_exchange(mbroker.management_port,
                       b"GET /api/overview HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 4")
    assert api.get("/api/whoami").status == 200


def test_client_that_vanishes_mid_request_harms_nobody(api, mbroker):
    with socket.create_connection(("127.0.0.1", mbroker.management_port)) as s:
        s.sendall(b"PUT /api/queues/%2F/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert api.get("/api/whoami").status == 200


def test_authentication_errors_as_rabbitmq(api):
    missing = api.get("/api/overview", auth=False)
    assert missing.status == 401 and missing.body == b""
    assert missing.headers["www-authenticate"] == 'Basic realm="RabbitMQ Management"'
    wrong = API(api.base, "guest", "nope").get("/api/overview")
    assert wrong.status == 401
    assert wrong.json() == {"error": "not_authorized", "reason": "Login failed"}
    assert wrong.headers["www-authenticate"] == 'Basic realm="RabbitMQ Management"'
    unknown = API(api.base, "nobody", "guest").get("/api/overview")
    assert unknown.status == 401
    junk = api.get("/api/overview", auth=False, headers={"Authorization": "Basic !!!"})
    assert junk.status == 401


def test_unknown_path_is_404_and_wrong_method_405(api):
    assert api.get("/api/nope").json() == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.get("/nope").status == 404
    reply = api.request("PATCH", "/api/queues")
    assert reply.status == 405
    assert reply.headers["allow"] == "HEAD, GET, OPTIONS"
    assert api.delete("/api/overview").status == 405


def test_malformed_json_is_400_not_json(api):
    reply = api.put("/api/queues/%2F/bad-json", raw=b"{bad")
    assert reply.status == 400
    assert reply.json() == {"error": "bad_request", "reason": "not_json"}
    assert api.put("/api/queues/%2F/bad-json", raw=b"[1, 2]").status == 400
    assert api.get("/api/queues/%2F/bad-json").status == 404


# ---------------------------------------------------------------------- the command line

def test_cli_management_port_and_no_management():
    mport = free_port()
    with LeveretProcess("--management-port", str(mport)) as proc:
        # RabbitMQ's start-up lines: the listener, then its three plugins counted
        proc.wait_for(f".*Management plugin: HTTP \\(non-TLS\\) listener started on port {mport}")
        started = proc.wait_for(STARTED)
        assert "Server startup complete; 3 plugins started." in started
        overview = API(f"http://127.0.0.1:{mport}").get("/api/overview").json()
        ports = {(lst["protocol"], lst["port"]) for lst in overview["listeners"]}
        assert ports == {("amqp", proc.port), ("http", mport)}
        assert proc.stop() == 0
        assert "Traceback" not in proc.output()
    with LeveretProcess("--no-management") as proc:
        assert proc.wait_for(STARTED).endswith("Server startup complete; 0 plugins started.")


def test_cli_management_port_in_use_is_one_line_and_exit_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "leveret", "--host", "127.0.0.1",
                              "--port", str(free_port()), "--in-memory",
                              "--management-port", str(taken)],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == [f"leveret: cannot listen on 127.0.0.1:{taken} (management API): "
                     "address already in use"]


def test_api_is_not_imported_without_it():
    code = ("import asyncio, sys\n"
            "from leveret import Broker\n"
            "async def main():\n"
            "    async with Broker():\n"
            "        assert 'h11' not in sys.modules and 'leveret.management' not in sys.modules\n"
            "    async with Broker(management_port=0):\n"
            "        assert 'leveret.management' in sys.modules\n"
            "asyncio.run(main())\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)

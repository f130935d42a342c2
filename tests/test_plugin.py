"""The pytest plugin, exercised the way users use it: inner pytest sessions (pytester)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.parse

import pytest

# imported before any pytester test: pytester drops the modules a test imported when the test
# ends, and a broker module imported again would not recognise the classes of the old pamqp
import leveret.server  # noqa: F401
from leveret import Broker
from leveret.broker import ThreadedBroker

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_each_test_gets_its_own_vhost(pytester):
    result = run(pytester, """
        import pika, pika.exceptions, pytest

        def test_declares(amqp_url, amqp_broker, amqp_vhost):
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            ch = conn.channel()
            ch.queue_declare("shared-name")
            ch.basic_publish("", "shared-name", b"x")
            assert [q.name for q in amqp_broker.queues(amqp_vhost)] == ["shared-name"]
            conn.close()

        def test_does_not_see_it(amqp_url):
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                conn.channel().queue_declare("shared-name", passive=True)
            assert info.value.reply_code == 404
            conn.close()
    """)
    result.assert_outcomes(passed=2)


def test_failing_test_does_not_leak(pytester):
    result = run(pytester, """
        import pika, pika.exceptions, pytest

        def test_fails_midway(amqp_url):
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            conn.channel().queue_declare("leaky")
            assert False, "boom"

        def test_clean_after(amqp_url, amqp_broker):
            assert all(not any(q.name == "leaky" for q in amqp_broker.queues(v))
                       for v in amqp_broker.vhost_names())
    """)
    result.assert_outcomes(passed=1, failed=1)


def test_async_test_with_aio_pika(pytester):
    result = run(pytester, """
        import aio_pika

        async def test_round_trip(amqp_url, amqp_wait, amqp_broker, amqp_vhost):
            conn = await aio_pika.connect(amqp_url)
            async with conn:
                ch = await conn.channel()
                q = await ch.declare_queue("work")
                for i in range(3):
                    await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), "work")
                info = await amqp_wait("work", 3)
                assert info.messages == 3
                assert [m.body for m in amqp_broker.peek("work", amqp_vhost)] == [b"0", b"1", b"2"]
                msg = await q.get()
                assert msg.body == b"0"
                await msg.ack()
    """)
    result.assert_outcomes(passed=1)


def test_session_broker_is_shared_and_not_restarted(pytester):
    result = run(pytester, """
        PORTS = []

        def test_one(amqp_broker):
            PORTS.append(amqp_broker.port)

        def test_two(amqp_broker):
            assert PORTS == [amqp_broker.port]
    """)
    result.assert_outcomes(passed=2)


def test_external_url_skips_the_embedded_broker(pytester, monkeypatch):
    with Broker.in_thread() as outside:
        monkeypatch.setenv("LEVERET_EXTERNAL_URL", outside.url)
        # a RabbitMQ on this machine answers on 127.0.0.1:15672: not the broker under test
        monkeypatch.setenv("LEVERET_EXTERNAL_MANAGEMENT_URL", "off")
        result = run(pytester, f"""
            import threading, pika

            def test_uses_external(amqp_broker, amqp_url):
                assert amqp_broker.embedded is False
                assert amqp_url == {outside.url!r}
                assert not any(t.name == "leveret-broker" for t in threading.enumerate())
                conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
                conn.channel().queue_declare("seen-outside")
                conn.close()
        """)
        result.assert_outcomes(passed=1)
        assert [q.name for q in outside.queues()] == ["seen-outside"]


def test_sync_inspection_and_prefix(pytester):
    result = run(pytester, """
        import pika

        PREFIXES = []

        def test_inspect_with_pika(amqp_url, amqp_inspect, amqp_prefix):
            PREFIXES.append(amqp_prefix)
            name = amqp_prefix + "orders"
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            ch = conn.channel()
            ch.queue_declare(name)
            ch.basic_publish("", name, b"o1", pika.BasicProperties(content_type="text/plain"))
            ch.basic_publish("", name, b"o2")
            assert amqp_inspect.wait_for_messages(name, 2).messages == 2
            assert amqp_inspect.queue_names() == [name]
            first = amqp_inspect.peek(name)[0]
            assert (first.body, first.routing_key) == (b"o1", name)
            assert first.properties["content_type"] == "text/plain"
            assert amqp_inspect.purge() == 2
            conn.close()

        def test_prefixes_differ(amqp_prefix):
            assert amqp_prefix not in PREFIXES
            assert amqp_prefix.startswith("test_prefixes_differ-")
    """)
    result.assert_outcomes(passed=2)


def test_asyncio_strict_mode(pytester):
    pytester.makeini("[pytest]\nasyncio_mode = strict\n"
                     "asyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile("""
        import aio_pika, pytest

        @pytest.mark.asyncio
        async def test_strict(amqp_url, amqp_wait):
            async with await aio_pika.connect(amqp_url) as conn:
                ch = await conn.channel()
                await ch.declare_queue("s")
                await ch.default_exchange.publish(aio_pika.Message(b"x"), "s")
                assert (await amqp_wait("s", 1)).messages == 1
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_plugin_loads_no_broker_until_asked(pytester):
    result = run(pytester, """
        import sys

        def test_nothing_loaded():
            assert "leveret.pytest_plugin" in sys.modules
            heavy = {"leveret.broker", "leveret.server", "pamqp", "uvloop", "urllib.request"}
            assert not heavy & set(sys.modules)

        def test_then_one(amqp_url):
            assert "leveret.server" in sys.modules
    """)
    result.assert_outcomes(passed=2)


def test_vhosts_are_deleted_after_each_test(pytester):
    result = run(pytester, """
        import pika

        SEEN = []

        def test_one(amqp_broker, amqp_vhost, amqp_url):
            SEEN.append(amqp_vhost)
            assert sorted(amqp_broker.vhost_names()) == sorted(["/", amqp_vhost])
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            conn.channel().queue_declare("left-open")  # the connection is never closed

        def test_two(amqp_broker, amqp_vhost):
            assert amqp_vhost != SEEN[0]
            assert sorted(amqp_broker.vhost_names()) == sorted(["/", amqp_vhost])
    """)
    result.assert_outcomes(passed=2)


def test_external_url_loads_no_embedded_broker_and_skips_inspection(pytester, monkeypatch):
    with Broker.in_thread() as outside:
        monkeypatch.setenv("LEVERET_EXTERNAL_URL", outside.url)
        monkeypatch.setenv("LEVERET_EXTERNAL_MANAGEMENT_URL", "off")
        result = run(pytester, """
            import sys

            def test_no_embedded_broker(amqp_url, amqp_vhost, amqp_prefix):
                assert amqp_vhost == "/"
                assert not {"leveret.broker", "leveret.server"} & set(sys.modules)

            def test_inspection_is_skipped(amqp_inspect):
                raise AssertionError("not reached")

            def test_wait_is_skipped(amqp_wait):
                raise AssertionError("not reached")
        """, "-rs")
        result.assert_outcomes(passed=1, skipped=2)
        result.stdout.fnmatch_lines(["*amqp_inspect needs the embedded broker*"])
        result.stdout.fnmatch_lines(["leveret: LEVERET_EXTERNAL_URL is set*127.0.0.1:*"])


class FakeManagementAPI:
    """The part of RabbitMQ's management HTTP API the plugin uses, in front of a Leveret."""

    def __init__(self, broker: ThreadedBroker) -> None:
        self.calls: list[tuple[str, str]] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                json.loads(self.rfile.read(length) or b"null")
                api.calls.append((self.command, self.path))
                if self.headers.get("Authorization") != "Basic " + base64.b64encode(
                        b"guest:guest").decode():
                    return self.answer(401)
                parts = self.path.split("/")  # '', 'api', kind, name, ...
                name = urllib.parse.unquote(parts[3]) if len(parts) > 3 else ""
                if self.command == "GET" and parts[2] == "whoami":
                    return self.answer(200, b'{"name": "guest", "tags": ["administrator"]}')
                if self.command == "PUT" and parts[2] == "vhosts":
                    broker.add_vhost(name)
                elif self.command == "DELETE" and parts[2] == "vhosts":
                    broker.delete_vhost(name)
                self.answer(204)

            do_GET = do_PUT = do_DELETE = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeManagementAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_external_broker_with_management_api_gets_a_vhost_per_test(pytester, monkeypatch):
    with Broker.in_thread() as outside, FakeManagementAPI(outside) as api:
        monkeypatch.setenv("LEVERET_EXTERNAL_URL", outside.url)
        monkeypatch.setenv("LEVERET_EXTERNAL_MANAGEMENT_URL", api.url)
        result = run(pytester, """
            import pika, pika.exceptions, pytest

            def test_declares(amqp_url, amqp_vhost):
                assert amqp_vhost.startswith("test-test_declares-")
                conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
                conn.channel().queue_declare("shared-name")
                conn.close()

            def test_does_not_see_it(amqp_url):
                conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
                with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                    conn.channel().queue_declare("shared-name", passive=True)
                assert info.value.reply_code == 404
                conn.close()
        """)
        result.assert_outcomes(passed=2)
        kinds = [(method, path.split("/")[2]) for method, path in api.calls]
        assert kinds == [("PUT", "vhosts"), ("PUT", "permissions"), ("DELETE", "vhosts")] * 2
        assert outside.vhost_names() == ["/"]
        assert outside.queues() == []

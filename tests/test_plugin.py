"""The pytest plugin, exercised the way users use it: inner pytest sessions (pytester)."""

from __future__ import annotations

import pytest

from leveret import Broker

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

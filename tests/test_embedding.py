"""leveret.Broker in-process: async and threaded forms, options, inspection, clean stop."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading

import aio_pika
import pika
import pika.exceptions
import pytest

from leveret import Broker


async def test_async_broker_url_and_round_trip():
    async with Broker() as broker:
        assert broker.url == f"amqp://guest:guest@127.0.0.1:{broker.port}/"
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue("q")
            await ch.default_exchange.publish(aio_pika.Message(b"hi"), "q")
            info = await broker.wait_for_messages("q", 1)
            assert info.messages == 1
    assert not broker.running


def test_threaded_broker_with_pika():
    with Broker.in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"x", pika.BasicProperties(content_type="text/plain"))
        assert broker.wait_for_messages("q", 1).messages == 1
        conn.close()


def test_several_brokers_at_once():
    with Broker.in_thread() as a, Broker.in_thread() as b:
        assert a.port != b.port
        ca = pika.BlockingConnection(pika.URLParameters(a.url))
        cb = pika.BlockingConnection(pika.URLParameters(b.url))
        ca.channel().queue_declare("only-in-a")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            cb.channel().queue_declare("only-in-a", passive=True)
        assert [q.name for q in a.queues()] == ["only-in-a"] and b.queues() == []
        ca.close()
        cb.close()


def test_options_users_and_vhosts():
    with Broker.in_thread(user="app", password="s3cret", vhost="prod",
                          users={"other": "pw"}, vhosts=["staging"]) as broker:
        assert broker.url.startswith("amqp://app:s3cret@127.0.0.1:")
        assert broker.url.endswith("/prod")
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        conn.close()
        other = pika.BlockingConnection(pika.URLParameters(
            f"amqp://other:pw@127.0.0.1:{broker.port}/staging"))
        other.close()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(
                f"amqp://guest:guest@127.0.0.1:{broker.port}/prod"))
        assert sorted(broker.vhost_names()) == ["prod", "staging"]


def test_inspection_api():
    with Broker.in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("inspect", durable=True, arguments={"x-max-length": 100})
        ch.queue_declare("other")
        for i in range(3):
            ch.basic_publish("", "inspect", b"m%d" % i,
                             pika.BasicProperties(headers={"i": i}, message_id=str(i)))
        broker.wait_for_messages("inspect", 3)
        info = broker.queue("inspect")
        assert (info.messages, info.consumers, info.durable) == (3, 0, True)
        assert info.arguments == {"x-max-length": 100}
        peeked = broker.peek("inspect")
        assert [p.body for p in peeked] == [b"m0", b"m1", b"m2"]
        assert peeked[1].properties == {"headers": {"i": 1}, "message_id": "1"}
        assert peeked[0].routing_key == "inspect" and peeked[0].exchange == ""
        assert [p.body for p in broker.peek("inspect", limit=1)] == [b"m0"]
        # peeking consumed nothing
        assert ch.basic_get("inspect", auto_ack=True)[2] == b"m0"
        ch.basic_consume("other", lambda *a: None)
        assert broker.queue("other").consumers == 1
        assert broker.purge_all() == 2
        assert broker.queue("inspect").messages == 0
        with pytest.raises(TimeoutError):
            broker.wait_for_messages("inspect", 1, timeout=0.2)
        conn.close()


async def test_wait_for_messages_before_the_queue_exists():
    import asyncio

    async with Broker() as broker:
        waiter = asyncio.ensure_future(broker.wait_for_messages("later", 2, timeout=10))
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue("later")
            for _ in range(2):
                await ch.default_exchange.publish(aio_pika.Message(b"x"), "later")
            assert (await waiter).messages == 2


def test_deleting_a_vhost_closes_its_connections():
    with Broker.in_thread() as broker:
        broker.add_vhost("temp")
        conn = pika.BlockingConnection(pika.URLParameters(broker.url_for("temp")))
        conn.channel().queue_declare("q")
        broker.delete_vhost("temp")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            conn.channel()
        assert info.value.reply_code == 320
        assert "temp" not in broker.vhost_names()


def test_stop_closes_clients_with_320():
    broker = Broker.in_thread().start()
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    broker.stop()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        ch.queue_declare("after-stop")
    assert info.value.reply_code == 320


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
def test_start_stop_many_times_leaks_nothing():
    def cycle() -> None:
        with Broker.in_thread() as broker:
            conn = pika.BlockingConnection(pika.URLParameters(broker.url))
            conn.channel().queue_declare("q")
            conn.close()

    for _ in range(5):  # warm up: imports, caches, allocator pools
        cycle()
    gc.collect()
    threads, fds, rss = threading.active_count(), _fds(), _rss_kib()
    for _ in range(100):
        cycle()
    gc.collect()
    assert threading.active_count() == threads
    assert _fds() <= fds + 2
    assert _rss_kib() - rss < 20 * 1024  # KiB: generous bound for allocator noise


def test_import_leveret_is_light():
    code = ("import sys, leveret;"
            "print([m for m in ('uvloop', 'pamqp', 'leveret.server', 'leveret.connection',"
            " 'asyncio') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"

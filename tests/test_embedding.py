"""leveret.Broker in-process: async and threaded forms, options, inspection, clean stop."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import threading
import time

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


def _os_threads(settle_to: int | None = None) -> int:
    """Threads of this process as the kernel sees them (libuv's pool too, not only Python's).

    A joined Python thread is still leaving the kernel for a fraction of a millisecond and
    nothing signals when it is gone, so ``settle_to`` gives the count a moment to get there.
    """
    deadline = time.monotonic() + 5
    while True:
        count = len(os.listdir("/proc/self/task"))
        if settle_to is None or count == settle_to or time.monotonic() > deadline:
            return count
        time.sleep(0.001)


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
def test_start_stop_many_times_leaks_nothing():
    def cycle() -> None:
        with Broker.in_thread() as broker:
            conn = pika.BlockingConnection(pika.URLParameters(broker.url))
            ch = conn.channel()
            ch.queue_declare("q")
            ch.basic_publish("", "q", b"x")
            broker.wait_for_messages("q", 1)
            conn.close()

    for _ in range(5):  # warm up: imports, caches, allocator pools
        cycle()
    gc.collect()
    threads, os_threads, fds, rss = threading.active_count(), _os_threads(), _fds(), _rss_kib()
    for _ in range(100):
        cycle()
    gc.collect()
    assert threading.active_count() == threads
    assert _os_threads(settle_to=os_threads) == os_threads
    assert _fds() <= fds + 2
    assert _rss_kib() - rss < 20 * 1024  # KiB: generous bound for allocator noise


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc")
def test_a_running_broker_adds_one_thread_and_no_resolver_pool():
    before = _os_threads()
    with Broker.in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        assert _os_threads() == before + 1  # a numeric address is bound without getaddrinfo
        conn.close()
    assert _os_threads(settle_to=before) == before


def test_restart_after_stop_and_errors_when_stopped():
    tb = Broker.in_thread()
    with pytest.raises(RuntimeError, match="not running"):
        tb.queues()
    for _ in range(2):
        with tb:
            assert tb.running
            conn = pika.BlockingConnection(pika.URLParameters(tb.url))
            conn.channel().queue_declare("again")
            conn.close()
            assert [q.name for q in tb.queues()] == ["again"]
        assert not tb.running
        with pytest.raises(RuntimeError, match="not running"):
            tb.queues()
    with tb, pytest.raises(RuntimeError, match="already running"):
        tb.start()


def test_busy_port_raises_and_leaves_no_thread():
    with Broker.in_thread() as first:
        threads = threading.active_count()
        with pytest.raises(OSError):
            Broker.in_thread(port=first.port).start()
        assert threading.active_count() == threads


def test_failed_start_lets_go_of_the_data_dir(tmp_path):
    with Broker.in_thread() as first:
        with pytest.raises(OSError):
            Broker.in_thread(port=first.port, data_dir=str(tmp_path)).start()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:  # not "in use by another"
        assert broker.running


def test_wait_is_woken_by_a_requeue():
    with Broker.in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("back")
        ch.basic_publish("", "back", b"x")
        method, _, _ = ch.basic_get("back")
        assert broker.queue("back").messages == 0
        waiting = broker.wait_for_messages_future("back", 1, timeout=10)
        ch.basic_nack(method.delivery_tag, requeue=True)
        info = waiting.result(10)
        assert (info.messages, info.unacked) == (1, 0)
        assert broker.peek("back")[0].redelivered
        conn.close()


def test_wait_follows_a_queue_deleted_and_declared_again():
    with Broker.in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("phoenix")
        waiting = broker.wait_for_messages_future("phoenix", 2, timeout=10)
        ch.basic_publish("", "phoenix", b"1")
        ch.queue_delete("phoenix")
        ch.queue_declare("phoenix")
        ch.basic_publish("", "phoenix", b"2")
        assert not waiting.done()  # never 2 ready in one queue until the third publish
        ch.basic_publish("", "phoenix", b"3")
        assert waiting.result(10).messages == 2
        assert [m.body for m in broker.peek("phoenix")] == [b"2", b"3"]
        conn.close()


def test_a_pending_wait_ends_when_the_broker_stops():
    broker = Broker.in_thread().start()
    waiting = broker.wait_for_messages_future("never", 1, timeout=None)
    broker.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        waiting.result(10)


def test_wait_leaves_no_hooks_behind():
    with Broker.in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("hooks")
        with pytest.raises(TimeoutError):
            broker.wait_for_messages("hooks", 1, timeout=0.05)
        ch.basic_publish("", "hooks", b"x")
        broker.wait_for_messages("hooks", 1)
        queue = broker._call(lambda: broker.broker._queue("hooks", None))
        assert queue.on_ready == [] and queue.on_delete == []
        vhost = broker._call(lambda: broker.broker._vhost(None))
        assert vhost.queue_factory.watchers == []
        conn.close()


async def test_async_broker_wait_from_another_loop_is_refused():
    with Broker.in_thread() as broker:
        with pytest.raises(RuntimeError, match="broker's loop"):
            await broker.broker.wait_for_messages("q", 1)


async def test_threaded_broker_awaited_from_asyncio_with_aio_pika():
    with Broker.in_thread() as broker:
        view = broker.vhost()
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue("aq")
            for i in range(3):
                await ch.default_exchange.publish(
                    aio_pika.Message(b"%d" % i, headers={"n": i}), "aq")
            info = await view.wait_for_messages_async("aq", 3)
            assert info.messages == 3 and view.queue_names() == ["aq"]
            assert [m.headers for m in view.peek("aq")] == [{"n": 0}, {"n": 1}, {"n": 2}]
            assert view.purge("aq") == 3 and view.queue("aq").messages == 0


def test_threaded_broker_awaited_from_trio():
    trio = pytest.importorskip("trio")
    with Broker.in_thread() as broker:
        def publish() -> None:
            conn = pika.BlockingConnection(pika.URLParameters(broker.url))
            ch = conn.channel()
            ch.queue_declare("tq")
            ch.basic_publish("", "tq", b"from a thread")
            conn.close()

        async def main() -> int:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, publish)
                info = await broker.wait_for_messages_async("tq", 1, timeout=10)
            return info.messages

        assert trio.run(main) == 1


def test_peeked_properties_are_a_copy():
    with Broker.in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("copy")
        ch.basic_publish("", "copy", b"x", pika.BasicProperties(headers={"a": 1}))
        broker.wait_for_messages("copy", 1)
        broker.peek("copy")[0].properties["headers"]["a"] = 2
        assert broker.peek("copy")[0].headers == {"a": 1}
        assert ch.basic_get("copy", auto_ack=True)[1].headers == {"a": 1}
        conn.close()


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with Broker.in_thread(host="::1") as broker:
        assert broker.url.startswith("amqp://guest:guest@[::1]:")
        conn = pika.BlockingConnection(pika.ConnectionParameters("::1", broker.port))
        conn.close()


def test_import_leveret_is_light():
    code = ("import sys, leveret;"
            "print([m for m in ('uvloop', 'pamqp', 'leveret.server', 'leveret.connection',"
            " 'asyncio') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"

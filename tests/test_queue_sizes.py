"""A queue's sizes as RabbitMQ reports them: bytes ready and unacknowledged, persistent
messages and their bytes (a message counts when both it and its queue are durable; every
message of a quorum queue counts), and the timestamp property of the head message. Checked in
the management API and the Prometheus metrics through each way a message enters and leaves a
queue, with and without a data dir; then the same traffic on the local RabbitMQ must give the
same figures (skipped when there is none)."""

from __future__ import annotations

import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pika
import pytest

from leveret import Broker

from apiclient import API, rabbitmq_api

pytestmark = pytest.mark.leveret_only

FIELDS = ("messages", "messages_ready", "messages_unacknowledged", "messages_persistent",
          "message_bytes", "message_bytes_ready", "message_bytes_unacknowledged",
          "message_bytes_persistent", "message_bytes_ram", "head_message_timestamp")
T0 = 1_700_000_000


def persistent(size: int) -> pika.BasicProperties:
    return pika.BasicProperties(delivery_mode=2, timestamp=T0 + size)


def transient(size: int) -> pika.BasicProperties:
    return pika.BasicProperties(delivery_mode=1, timestamp=T0 + size)


def sizes(api: API, name: str, vhost: str = "/") -> dict:
    path = f"/api/queues/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(name)}"
    reply = api.get(path)
    assert reply.status == 200, reply
    got = reply.json()
    return {k: got.get(k) for k in FIELDS}


def expect(messages: int, ready_bytes: int, unacked: int = 0, unacked_bytes: int = 0,
           persistent_n: int = 0, persistent_bytes: int = 0,
           head: int | None = None, ram: bool = True) -> dict:
    return {"messages": messages, "messages_ready": messages - unacked,
            "messages_unacknowledged": unacked, "messages_persistent": persistent_n,
            "message_bytes": ready_bytes + unacked_bytes, "message_bytes_ready": ready_bytes,
            "message_bytes_unacknowledged": unacked_bytes,
            "message_bytes_persistent": persistent_bytes,
            "message_bytes_ram": ready_bytes + unacked_bytes if ram else 0,
            "head_message_timestamp": head}


def metrics(broker: Broker) -> str:
    url = f"http://127.0.0.1:{broker.prometheus_port}/metrics/per-object"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def metric(text: str, name: str, queue: str) -> float:
    prefix = f'rabbitmq_{name}{{vhost="/",queue="{queue}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    raise AssertionError(f"no {prefix!r} in the scrape")


def settle(conn: pika.BlockingConnection) -> None:
    """Let the broker act on what the channel sent (a round trip)."""
    conn.channel().close()


@pytest.fixture(params=["in-memory", "data-dir"])
def sbroker(request, tmp_path):
    data_dir = str(tmp_path / "data") if request.param == "data-dir" else None
    with Broker.in_thread(management_port=0, prometheus_port=0, data_dir=data_dir) as b:
        yield b


def test_sizes_follow_every_way_in_and_out(sbroker):
    api = API(sbroker.management_url)
    conn = pika.BlockingConnection(pika.URLParameters(sbroker.url))
    ch = conn.channel()
    ch.queue_declare("sz", durable=True)
    ch.queue_declare("sz-transient")
    for q in ("sz", "sz-transient"):
        for size, props in ((10, persistent), (20, persistent), (5, transient),
                            (30, persistent), (7, transient)):
            ch.basic_publish("", q, b"x" * size, props(size))
    settle(conn)
    assert sizes(api, "sz") == expect(5, 72, persistent_n=3, persistent_bytes=60, head=T0 + 10)
    # a transient queue holds no persistent message, whatever the publisher asked
    assert sizes(api, "sz-transient") == expect(5, 72, head=T0 + 10)

    # two taken with basic.get, not acked yet: unacknowledged, still persistent
    first = ch.basic_get("sz", auto_ack=False)[0]
    ch.basic_get("sz", auto_ack=False)
    settle(conn)
    assert sizes(api, "sz") == expect(5, 42, 2, 30, 3, 60, head=T0 + 5)
    text = metrics(sbroker)
    assert metric(text, "queue_messages_persistent", "sz") == 3
    assert metric(text, "queue_messages_persistent_bytes", "sz") == 60
    assert metric(text, "queue_messages_unacked_bytes", "sz") == 30
    assert metric(text, "queue_messages_bytes", "sz") == 72
    assert metric(text, "queue_messages_ram_bytes", "sz") == 72
    assert metric(text, "queue_messages_ready_bytes", "sz") == 42

    # rejected without requeue: gone; the other back at its place at the head
    ch.basic_nack(first.delivery_tag, requeue=False)
    ch.basic_recover(requeue=True)
    settle(conn)
    assert sizes(api, "sz") == expect(4, 62, persistent_n=2, persistent_bytes=50, head=T0 + 20)

    # consumed with acks (one multiple ack for all four)
    tags = []
    ch.basic_consume("sz", lambda c, m, p, b: tags.append(m.delivery_tag))
    while len(tags) < 4:
        conn.process_data_events(time_limit=0.1)
    settle(conn)
    assert sizes(api, "sz") == expect(4, 0, 4, 62, 2, 50)
    ch.basic_ack(tags[-1], multiple=True)
    ch.basic_cancel(ch.consumer_tags[0])
    settle(conn)
    assert sizes(api, "sz") == expect(0, 0)

    # no-ack consumption and basic.get with no-ack settle at once
    for size in (11, 12):
        ch.basic_publish("", "sz", b"y" * size, persistent(size))
    ch.basic_get("sz", auto_ack=True)
    got = []
    ch.basic_consume("sz", lambda c, m, p, b: got.append(b), auto_ack=True)
    while not got:
        conn.process_data_events(time_limit=0.1)
    ch.basic_cancel(ch.consumer_tags[0])
    settle(conn)
    assert sizes(api, "sz") == expect(0, 0)

    # a purge takes the ready messages; the unacknowledged one stays, and returns to the
    # queue when its channel closes
    for size in (13, 14, 15):
        ch.basic_publish("", "sz", b"z" * size, persistent(size))
    ch.basic_get("sz", auto_ack=False)
    ch.queue_purge("sz")
    settle(conn)
    assert sizes(api, "sz") == expect(1, 0, 1, 13, 1, 13)
    ch.close()
    ch = conn.channel()
    settle(conn)
    assert sizes(api, "sz") == expect(1, 13, persistent_n=1, persistent_bytes=13, head=T0 + 13)

    # the management API's get: requeued, then rejected (dead-lettered nowhere)
    path = "/api/queues/%2F/sz/get"
    body = {"count": 1, "encoding": "auto", "truncate": 50000}
    assert api.post(path, {**body, "ackmode": "ack_requeue_true"}).status == 200
    assert sizes(api, "sz") == expect(1, 13, persistent_n=1, persistent_bytes=13, head=T0 + 13)
    assert api.post(path, {**body, "ackmode": "reject_requeue_false"}).status == 200
    assert sizes(api, "sz") == expect(0, 0)
    ch.basic_publish("", "sz", b"w" * 16, persistent(16))
    settle(conn)
    assert api.post(path, {**body, "ackmode": "ack_requeue_false"}).status == 200
    assert sizes(api, "sz") == expect(0, 0)

    # expiry and drop-head take persistent messages out too
    ch.queue_declare("sz-ttl", durable=True, arguments={"x-message-ttl": 50})
    ch.queue_declare("sz-max", durable=True,
                     arguments={"x-max-length": 1, "x-overflow": "drop-head"})
    ch.basic_publish("", "sz-ttl", b"t" * 17, persistent(17))
    ch.basic_publish("", "sz-max", b"m" * 18, persistent(18))
    ch.basic_publish("", "sz-max", b"m" * 19, persistent(19))
    settle(conn)
    assert sizes(api, "sz-max") == expect(1, 19, persistent_n=1, persistent_bytes=19,
                                          head=T0 + 19)
    deadline = time.monotonic() + 10
    while sizes(api, "sz-ttl")["messages"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sizes(api, "sz-ttl") == expect(0, 0)
    conn.close()


def test_quorum_queue_messages_are_all_persistent(sbroker):
    api = API(sbroker.management_url)
    conn = pika.BlockingConnection(pika.URLParameters(sbroker.url))
    ch = conn.channel()
    ch.queue_declare("sz-quorum", durable=True, arguments={"x-queue-type": "quorum"})
    for size, props in ((10, persistent), (5, transient), (30, persistent)):
        ch.basic_publish("", "sz-quorum", b"q" * size, props(size))
    method = ch.basic_get("sz-quorum", auto_ack=False)[0]
    settle(conn)
    # RabbitMQ 3.10: every message of a quorum queue is persistent, none counts as in RAM,
    # and there is no head timestamp
    assert sizes(api, "sz-quorum") == expect(3, 35, 1, 10, 3, 45, ram=False)
    ch.basic_nack(method.delivery_tag, requeue=True)
    settle(conn)
    assert sizes(api, "sz-quorum") == expect(3, 45, persistent_n=3, persistent_bytes=45,
                                             ram=False)
    ch.queue_purge("sz-quorum")
    settle(conn)
    assert sizes(api, "sz-quorum") == expect(0, 0, ram=False)
    conn.close()


def test_persistent_messages_are_counted_again_after_a_restart(tmp_path):
    data_dir = str(tmp_path / "data")
    with Broker.in_thread(data_dir=data_dir) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.queue_declare("sz-restart", durable=True)
        for size, props in ((21, persistent), (6, transient), (22, persistent)):
            ch.basic_publish("", "sz-restart", b"r" * size, props(size))
        conn.close()
    with Broker.in_thread(data_dir=data_dir, management_port=0) as b:
        api = API(b.management_url)
        # the transient message did not survive; the persistent ones count again
        assert sizes(api, "sz-restart") == expect(2, 43, persistent_n=2, persistent_bytes=43,
                                                  head=T0 + 21)


def test_paged_out_bodies_are_counted_on_disk_not_in_ram(tmp_path):
    n, body = 2000, b"p" * 1000
    with Broker.in_thread(data_dir=str(tmp_path / "data"), memory_budget=64 * 1024,
                          management_port=0, prometheus_port=0) as b:
        api = API(b.management_url)
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("sz-paged", durable=True)
        for i in range(n):
            ch.basic_publish("", "sz-paged", body, persistent(0) if i % 2 else transient(0))
        got = api.get("/api/queues/%2F/sz-paged").json()
        paged = got["messages_paged_out"]
        assert 0 < paged < n  # the budget holds the head, the rest waits on disk
        assert got["message_bytes_paged_out"] == paged * 1000
        assert got["message_bytes_ram"] == (n - paged) * 1000
        assert got["message_bytes"] == n * 1000
        assert (got["messages_persistent"], got["message_bytes_persistent"]) == (n // 2,
                                                                                  n // 2 * 1000)
        text = metrics(b)
        assert metric(text, "queue_messages_paged_out_bytes", "sz-paged") == paged * 1000
        assert metric(text, "queue_messages_ram_bytes", "sz-paged") == (n - paged) * 1000
        # one taken and not acked: its body counts in RAM, as unacknowledged
        ch.basic_get("sz-paged", auto_ack=False)
        got = api.get("/api/queues/%2F/sz-paged").json()
        paged = got["messages_paged_out"]
        assert got["message_bytes_unacknowledged"] == 1000
        assert got["message_bytes_paged_out"] == paged * 1000
        assert got["message_bytes_ram"] == (n - 1 - paged) * 1000 + 1000
        assert got["message_bytes"] == n * 1000
        # drained: nothing left anywhere
        ch.basic_recover(requeue=True)
        taken = 0
        while ch.basic_get("sz-paged", auto_ack=True)[0] is not None:
            taken += 1
        assert taken == n
        assert sizes(api, "sz-paged") == expect(0, 0)
        got = api.get("/api/queues/%2F/sz-paged").json()
        assert (got["messages_paged_out"], got["message_bytes_paged_out"]) == (0, 0)
        conn.close()


def test_a_long_queue_recovered_partly_unread_counts_every_persistent_message(tmp_path):
    # past the first 1024, recovery puts messages on the paged list's tail without reading them
    n, data_dir = 1500, str(tmp_path / "data")
    with Broker.in_thread(data_dir=data_dir) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("sz-long", durable=True)
        for _ in range(n):
            ch.basic_publish("", "sz-long", b"L" * 10, persistent(0))
            ch.basic_publish("", "sz-long", b"T" * 3, transient(0))
        conn.close()
    with Broker.in_thread(data_dir=data_dir, management_port=0) as b:
        api = API(b.management_url)
        got = api.get("/api/queues/%2F/sz-long").json()
        paged = got["messages_paged_out"]
        assert paged > 0
        assert {k: got[k] for k in FIELDS} == {
            **expect(n, n * 10, persistent_n=n, persistent_bytes=n * 10, head=T0),
            "message_bytes_ram": (n - paged) * 10}
        assert got["message_bytes_paged_out"] == paged * 10
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=200)
        got = 0
        for method, _, _ in ch.consume("sz-long", inactivity_timeout=10):
            assert method is not None, f"stalled after {got}"
            ch.basic_ack(method.delivery_tag)
            got += 1
            if got == n // 2:
                half = sizes(api, "sz-long")
                assert (half["messages_persistent"],
                        half["message_bytes_persistent"]) == (n - got, (n - got) * 10)
            if got == n:
                break
        ch.cancel()
        settle(conn)
        assert sizes(api, "sz-long") == expect(0, 0)
        conn.close()


# ---------------------------------------------------------------------- against RabbitMQ

def _traffic(url: str, step):
    """The same publishes, gets and rejects on either broker; ``step(name, counts)`` is called
    at each checkpoint with the queue counts the client's actions imply."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare("dz", durable=True)
    ch.queue_declare("dz-transient")
    ch.queue_declare("dz-quorum", durable=True, arguments={"x-queue-type": "quorum"})
    for q in ("dz", "dz-transient", "dz-quorum"):
        for size, props in ((10, persistent), (20, persistent), (5, transient),
                            (30, persistent), (7, transient)):
            ch.basic_publish("", q, b"x" * size, props(size))
    firsts = {}
    for q in ("dz", "dz-transient", "dz-quorum"):
        firsts[q] = ch.basic_get(q, auto_ack=False)[0]
        ch.basic_get(q, auto_ack=False)
    step("two unacknowledged", (5, 2))
    for q in ("dz", "dz-transient", "dz-quorum"):
        ch.basic_nack(firsts[q].delivery_tag, requeue=False)
    ch.basic_recover(requeue=True)
    ch.basic_get("dz", auto_ack=True)
    ch.basic_get("dz-transient", auto_ack=True)
    ch.basic_get("dz-quorum", auto_ack=True)
    step("one rejected, one requeued, one taken", (3, 0))
    conn.close()


@pytest.mark.rabbitmq
def test_the_same_sizes_as_rabbitmq():
    rmq = rabbitmq_api()
    if rmq is None:
        pytest.skip("no RabbitMQ management API on localhost:15672")
    vhost = f"leveret-sizes-{uuid.uuid4().hex[:8]}"
    quoted = urllib.parse.quote(vhost, safe="")
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*",
                    ".*"], check=True, timeout=60)
    theirs: dict[str, dict] = {}
    ours: dict[str, dict] = {}

    def rabbit_step(name, counts):
        # RabbitMQ's message counts follow within a second, its byte counts with the queue
        # statistics it emits every 5 s: wait for the counts, then for one more emission
        for q in ("dz", "dz-transient", "dz-quorum"):
            deadline = time.monotonic() + 30
            while True:
                got = sizes(rmq, q, vhost)
                if ((got["messages"], got["messages_unacknowledged"]) == counts
                        and got["message_bytes"] is not None):
                    break
                assert time.monotonic() < deadline, f"{name}: RabbitMQ shows {got}"
                time.sleep(0.25)
        time.sleep(5.5)
        for q in ("dz", "dz-transient", "dz-quorum"):
            theirs[f"{name}: {q}"] = sizes(rmq, q, vhost)

    try:
        _traffic(f"amqp://guest:guest@127.0.0.1:5672/{quoted}", rabbit_step)
        with Broker.in_thread(management_port=0, vhosts=[vhost]) as lev:
            api = API(lev.management_url)

            def leveret_step(name, counts):
                for q in ("dz", "dz-transient", "dz-quorum"):
                    ours[f"{name}: {q}"] = sizes(api, q, vhost)

            _traffic(lev.url_for(vhost), leveret_step)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60)
    assert len(theirs) == 6
    for key in theirs:
        assert ours[key] == theirs[key], key

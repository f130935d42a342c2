"""Long durable queues with a data dir: messages past the memory budget wait on disk.

Every test runs a broker with a small ``memory_budget``, fills a durable queue well past it
through a real client, and checks what clients see (order, redelivered flags, counts, x-death)
and how many messages the broker holds in memory (``QueueInfo.messages_ram``).
"""

from __future__ import annotations

import time

import pika
import pytest

import test_durability
from leveret import Broker
from test_durability import PERSISTENT, connect

BUDGET = 64 * 1024  # bytes: about a hundred of the messages below
N = 4000
# In memory at most: what fits in the budget, plus one read-back batch and its low mark
# (store/paging.py reads 1024 back when fewer than 256 are left). Far below N.
RAM_BOUND = 1500


def body(i: int) -> bytes:
    return b"%06d:" % i + b"." * 200


def number(b: bytes) -> int:
    return int(b[:6])


def paged_broker(tmp_path, **kw) -> Broker:
    return Broker.in_thread(data_dir=str(tmp_path), memory_budget=BUDGET, **kw)


def fill(ch, queue: str, n: int, props=PERSISTENT, start: int = 0) -> None:
    ch.confirm_delivery()
    for i in range(start, start + n):
        ch.basic_publish("", queue, body(i), props(i) if callable(props) else props)


def drain(ch, queue: str) -> list[tuple[int, bool]]:
    """(number, redelivered) of every ready message, acked."""
    return [(number(b), r) for b, r in test_durability.drain(ch, queue)]


def consume_all(ch, queue: str, n: int, prefetch: int = 100) -> list[int]:
    ch.basic_qos(prefetch_count=prefetch)
    got = []
    for method, _, b in ch.consume(queue, inactivity_timeout=10):
        assert method is not None, f"stalled after {len(got)} messages"
        got.append(number(b))
        ch.basic_ack(method.delivery_tag)
        if len(got) == n:
            break
    ch.cancel()
    return got


def mixed(i: int) -> pika.BasicProperties:
    """Every third message transient: it is paged out too, but never recovered."""
    return pika.BasicProperties(delivery_mode=1 if i % 3 == 0 else 2)


def test_long_queue_keeps_only_its_head_in_memory_and_delivers_in_order(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("long", durable=True)
        fill(ch, "long", N, mixed)
        info = broker.queue("long")
        assert info.messages == N
        assert info.messages_ram < RAM_BOUND
        assert consume_all(ch, "long", N) == list(range(N))
        info = broker.queue("long")
        assert (info.messages, info.unacked) == (0, 0)


def test_transient_queues_and_in_memory_brokers_keep_everything_in_memory(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("t", durable=False)
        fill(ch, "t", 500)
        assert broker.queue("t").messages_ram == 500
    with Broker.in_thread(memory_budget=BUDGET) as broker:  # no data dir: nothing to page to
        ch = connect(broker).channel()
        ch.queue_declare("d", durable=True)
        fill(ch, "d", 500)
        assert broker.queue("d").messages_ram == 500


def test_requeued_messages_return_to_their_place_ahead_of_what_is_on_disk(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("rq", durable=True)
        fill(ch, "rq", N)
        tags = []
        for _ in range(300):  # past the first read-back: the queue pages in behind them
            method, _, _ = ch.basic_get("rq")
            tags.append(method.delivery_tag)
        ch.basic_nack(tags[-1], multiple=True, requeue=True)
        got = drain(ch, "rq")
        assert [n for n, _ in got] == list(range(N))
        assert all(r for _, r in got[:300]) and not any(r for _, r in got[300:])


def test_some_of_the_requeued_ones_interleave_with_the_rest(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("rq2", durable=True)
        fill(ch, "rq2", N)
        got = []
        for _ in range(600):
            method, _, b = ch.basic_get("rq2")
            got.append((number(b), method.delivery_tag))
        for n, tag in got:
            if n % 2:
                ch.basic_reject(tag, requeue=True)
            else:
                ch.basic_ack(tag)
        rest = [n for n, _ in drain(ch, "rq2")]
        assert rest == [n for n in range(600) if n % 2] + list(range(600, N))


def test_a_paged_queue_survives_a_restart_in_order_and_is_read_back_lazily(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("r", durable=True)
        fill(ch, "r", N, mixed)
        ch.basic_qos(prefetch_count=10)
        method, _, first = ch.basic_get("r")  # out for ack at shutdown: redelivered
        assert number(first) == 0
    kept = [i for i in range(N) if i % 3]
    with paged_broker(tmp_path) as broker:
        info = broker.queue("r")
        assert info.messages == len(kept)
        assert info.messages_ram < RAM_BOUND
        ch = connect(broker).channel()
        assert drain(ch, "r") == [(i, False) for i in kept]


def test_a_crash_restart_of_a_paged_queue_marks_everything_redelivered(tmp_path):
    broker = paged_broker(tmp_path).start()
    ch = connect(broker).channel()
    ch.queue_declare("c", durable=True)
    fill(ch, "c", 2000)
    # what an unclean stop leaves: no clean-shutdown mark
    broker.stop()
    (tmp_path / "messages" / "CLEAN").unlink()
    with paged_broker(tmp_path) as broker:
        got = drain(connect(broker).channel(), "c")
    assert [n for n, _ in got] == list(range(2000))
    assert all(r for _, r in got)


def test_priority_queue_pages_each_level_and_keeps_priority_order(tmp_path):
    def prio(i: int) -> pika.BasicProperties:
        return pika.BasicProperties(delivery_mode=2, priority=(i * 7) % 4)

    expected = sorted(range(N), key=lambda i: (-((i * 7) % 4), i))
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("prio", durable=True, arguments={"x-max-priority": 3})
        fill(ch, "prio", N, prio)
        assert broker.queue("prio").messages_ram < RAM_BOUND * 4
        first = [number(ch.basic_get("prio", auto_ack=True)[2]) for _ in range(N // 2)]
        assert first == expected[: N // 2]
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        assert broker.queue("prio").messages == N - N // 2
        assert [n for n, _ in drain(ch, "prio")] == expected[N // 2 :]


def test_purge_and_delete_of_a_paged_queue_are_durable_and_free_the_disk(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("p", durable=True)
        ch.queue_declare("d", durable=True)
        fill(ch, "p", N)
        fill(ch, "d", N)
        assert ch.queue_purge("p").method.message_count == N
        ch.queue_delete("d")
        ch.queue_declare("d", durable=True)
        fill(ch, "p", 3, start=N)  # new messages after the purge
    with paged_broker(tmp_path) as broker:
        assert broker.queue("d").messages == 0
        ch = connect(broker).channel()
        assert [n for n, _ in drain(ch, "p")] == [N, N + 1, N + 2]


def test_expiry_and_dead_lettering_reach_messages_that_were_on_disk(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("dlq", durable=True)
        ch.queue_declare("ttl", durable=True, arguments={
            "x-message-ttl": 100, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "dlq"})
        fill(ch, "ttl", 2000)
        # nobody consumes: every message expires where it stands, in order
        broker.wait_for_messages("dlq", 2000, timeout=60)
        assert broker.queue("ttl").messages == 0
        ch.basic_qos(prefetch_count=50)
        got = []
        for method, props, b in ch.consume("dlq", inactivity_timeout=10):
            got.append(number(b))
            assert props.headers["x-death"][0]["reason"] == "expired"
            ch.basic_ack(method.delivery_tag)
            if len(got) == 2000:
                break
        ch.cancel()
        assert got == list(range(2000))


def test_drop_head_overflow_on_a_paged_queue_keeps_the_newest(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("cap", durable=True, arguments={"x-max-length": 1500})
        fill(ch, "cap", N)
        assert broker.queue("cap").messages == 1500
        assert [n for n, _ in drain(ch, "cap")] == list(range(N - 1500, N))


def test_compaction_moves_live_messages_out_of_mostly_dead_segments(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVERET_STORE_SEGMENT_BYTES", "16384")
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("keep", durable=True)
        ch.queue_declare("drop", durable=True)
        ch.confirm_delivery()
        for i in range(2000):  # one kept for three dropped, interleaved in every segment
            ch.basic_publish("", "keep" if i % 4 == 0 else "drop", body(i), PERSISTENT)
        segments = len(list((tmp_path / "messages").glob("*.log")))
        assert segments > 20
        ch.queue_purge("drop")
        # compaction runs in steps on the broker's loop: publish until the old segments go
        deadline = time.monotonic() + 30
        i = 2000
        while len(list((tmp_path / "messages").glob("*.log"))) > segments // 2:
            assert time.monotonic() < deadline, "mostly dead segments were never compacted"
            ch.basic_publish("", "drop", body(i), PERSISTENT)
            method, _, _ = ch.basic_get("drop", auto_ack=True)
            i += 1
        kept_early = [number(ch.basic_get("keep", auto_ack=True)[2]) for _ in range(100)]
        assert kept_early == list(range(0, 400, 4))
        ch.basic_publish("", "keep", body(9000), PERSISTENT)
    with paged_broker(tmp_path) as broker:
        got = [n for n, _ in drain(connect(broker).channel(), "keep")]
    assert got == list(range(400, 2000, 4)) + [9000]


@pytest.mark.parametrize("budget", [0, 4096])
def test_a_budget_this_small_still_delivers_everything(tmp_path, budget):
    with Broker.in_thread(data_dir=str(tmp_path), memory_budget=budget) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("tiny", durable=True)
        fill(ch, "tiny", 1500, mixed)
        assert consume_all(ch, "tiny", 1500, prefetch=1) == list(range(1500))


def test_ttl_counts_from_publish_not_from_the_restart(tmp_path):
    ttl_ms = 1500
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("dead", durable=True)
        ch.queue_declare("q", durable=True, arguments={
            "x-message-ttl": ttl_ms, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "dead"})
        ch.queue_declare("long", durable=True)
        ch.confirm_delivery()
        ch.basic_publish("", "q", body(1), PERSISTENT)
        ch.basic_publish("", "long", body(2), pika.BasicProperties(
            delivery_mode=2, expiration=str(ttl_ms)))
        ch.basic_publish("", "long", body(3), pika.BasicProperties(
            delivery_mode=2, expiration="600000"))
    time.sleep(ttl_ms / 1000 + 0.3)  # both short TTLs run out while the broker is down
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = connect(broker).channel()
        assert ch.basic_get("q", auto_ack=True)[0] is None
        assert [n for n, _ in drain(ch, "long")] == [3]
        broker.wait_for_messages("dead", 1)
        _, props, b = ch.basic_get("dead", auto_ack=True)
        assert number(b) == 1
        assert props.headers["x-death"][0]["reason"] == "expired"


def test_messages_on_disk_do_not_count_against_the_memory_watermark(tmp_path):
    """The watermark sees what is in memory: a long durable queue past the budget does not
    block its publishers, while the same bytes in a transient queue do."""
    watermark = 4 * BUDGET
    with paged_broker(tmp_path, memory_high_watermark=watermark,
                      memory_calculation_strategy="queued") as broker:
        # blocked for 10 s, pika gives up with an error instead of waiting for ever
        conn = pika.BlockingConnection(pika.URLParameters(
            broker.url + "?blocked_connection_timeout=10"))
        blocked: list[bool] = []
        conn.add_on_connection_blocked_callback(lambda *a: blocked.append(True))
        ch = conn.channel()
        ch.queue_declare("long", durable=True)
        ch.queue_declare("transient", durable=False)
        fill(ch, "long", N)  # about 4x the watermark in bodies alone, every one confirmed
        assert broker.queue("long").messages == N
        assert not blocked
        plain = conn.channel()  # no confirms: a blocked publish must not wait for one
        for i in range(N):
            plain.basic_publish("", "transient", body(i))
            if i * len(body(i)) > 2 * watermark:
                break
        plain.basic_publish("", "transient", b"one more")  # this publish trips the alarm
        for _ in range(100):
            if blocked:
                break
            conn.process_data_events(time_limit=0.05)
        assert blocked == [True]


def test_redelivered_flags_survive_a_clean_restart_paged_or_not(tmp_path):
    """Requeued earlier, or out for ack when the broker stops: back redelivered after a clean
    restart, whether in memory or on disk then; the others not."""
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("flags", durable=True)
        fill(ch, "flags", N)
        tags = [ch.basic_get("flags")[0].delivery_tag for _ in range(3)]
        ch.basic_nack(tags[-1], multiple=True, requeue=True)  # 0..2 requeued, flagged
        for _ in range(5):
            ch.basic_get("flags")  # 0..2 again and 3, 4: out for ack when the broker stops
    with paged_broker(tmp_path) as broker:
        got = drain(connect(broker).channel(), "flags")
    assert [n for n, _ in got] == list(range(N))
    assert {n for n, r in got if r} == {0, 1, 2, 3, 4}


def test_flags_from_a_crash_stay_through_a_clean_restart_on_disk_too(tmp_path):
    with paged_broker(tmp_path) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("crashed", durable=True)
        fill(ch, "crashed", N)
    (tmp_path / "messages" / "CLEAN").unlink()  # as after a crash: all come back flagged
    with paged_broker(tmp_path) as broker:
        assert broker.queue("crashed").messages_ram < N  # most wait on disk, flagged there
    with paged_broker(tmp_path) as broker:  # a clean restart in between
        got = drain(connect(broker).channel(), "crashed")
    assert [n for n, _ in got] == list(range(N))
    assert all(r for _, r in got)

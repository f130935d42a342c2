"""Streams on Leveret: what the differential tests cannot compare with the local RabbitMQ 3.10
(counts it reports only after its stats interval, behaviour RabbitMQ 3.11+ changed, crashes of
3.10 that Leveret answers with a 406, timing, restarts and the data directory)."""

from __future__ import annotations

import datetime
import decimal
import os
import time
from pathlib import Path

import aio_pika
import pika
import pika.exceptions
import pytest

from leveret import Broker
from leveret.stream import stream_directory
from streamutil import STREAM, publish, read_until, refusal, until_body

pytestmark = pytest.mark.leveret_only


def connect(broker) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(broker.url))


def test_counts_on_declare_and_in_the_inspection_api(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments=STREAM)
    publish(ch, "s", [b"a", b"b", b"c"])
    reader = conn.channel()
    got = read_until(conn, reader, "s", until_body(b"c"), {"x-stream-offset": "first"},
                     ack=False)
    assert len(got) == 3
    reader.basic_qos(prefetch_count=1)
    reader.basic_consume("s", lambda *a: None)
    ok = ch.queue_declare("s", durable=True, arguments=STREAM).method
    # RabbitMQ's stream reports its length, and 0 consumers, to queue.declare
    assert (ok.message_count, ok.consumer_count) == (3, 0)
    assert ch.queue_declare("s", passive=True).method.message_count == 3
    info = broker.queue("s")
    # as rabbitmqctl list_queues shows a stream: messages = ready = its length, 0 unacked
    assert (info.messages, info.unacked, info.consumers, info.durable) == (3, 0, 1, True)
    assert [m.body for m in broker.peek("s")] == [b"a", b"b", b"c"]
    assert broker.peek("s")[1].headers == {"x-stream-offset": 1}
    conn.close()


def test_offsets_3_10_crashed_on_get_a_406(broker):
    conn = connect(broker)
    holder = [conn]
    conn.channel().queue_declare("s", durable=True, arguments=STREAM)
    seen = []
    for offset in ("bogus", "-1h", "", True, decimal.Decimal("1.5")):
        def consume(ch, offset=offset):
            ch.basic_qos(prefetch_count=1)
            ch.basic_consume("s", lambda *a: None, arguments={"x-stream-offset": offset})
            return "ok"
        seen.append(refusal(holder, broker.url, consume))
    prefix = ("PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 's' in vhost '/': "
              "{invalid_stream_offset_arg,")
    assert seen == [
        ("channel", 406, prefix + '{longstr,<<"bogus">>}}'),
        ("channel", 406, prefix + '{longstr,<<"-1h">>}}'),
        ("channel", 406, prefix + '{longstr,<<"">>}}'),
        ("channel", 406, prefix + "{bool,true}}"),
        ("channel", 406, prefix + "{decimal,{1,15}}}"),
    ]
    bad_age = refusal(holder, broker.url, lambda ch: ch.queue_declare(
        "t", durable=True, arguments={**STREAM, "x-max-age": "bad"}))
    assert bad_age == ("channel", 406, "PRECONDITION_FAILED - invalid arg 'x-max-age' for "
                                       "queue 't' in vhost '/': invalid_max_age")
    holder[0].close()


def test_filter_size_is_checked_as_rabbitmq_3_11(broker):
    holder = [connect(broker)]
    seen = [refusal(holder, broker.url, lambda ch, v=v: ch.queue_declare(
        f"f{v}", durable=True, arguments={**STREAM, "x-stream-filter-size-bytes": v}) and "ok")
        for v in (15, 16, 255, 256)]
    refused = ("channel", 406, "PRECONDITION_FAILED - Invalid value for  "
                               "x-stream-filter-size-bytes")
    assert seen == [refused, "ok", "ok", refused]
    holder[0].close()


def test_nack_reject_and_recover_give_credit_and_redeliver_nothing(broker):
    """RabbitMQ 3.11+: every settlement of a stream delivery gives credit back; nothing is
    requeued (3.10 closed the connection with 540 for nack and reject)."""
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments=STREAM)
    publish(ch, "s", [b"m%d" % i for i in range(8)])
    reader = conn.channel()
    reader.basic_qos(prefetch_count=2)
    got = []
    reader.basic_consume("s", lambda c, m, p, b: got.append((b, m.delivery_tag, m.redelivered)),
                         arguments={"x-stream-offset": "first"})
    while len(got) < 2:
        conn.process_data_events(time_limit=0.05)
    reader.basic_nack(got[0][1], requeue=True)
    reader.basic_reject(got[1][1], requeue=False)
    while len(got) < 4:
        conn.process_data_events(time_limit=0.05)
    reader.basic_nack(0, multiple=True, requeue=True)
    while len(got) < 6:
        conn.process_data_events(time_limit=0.05)
    reader.basic_recover(requeue=True)
    while len(got) < 8:
        conn.process_data_events(time_limit=0.05)
    assert [(b, r) for b, _, r in got] == [(b"m%d" % i, False) for i in range(8)]
    assert conn.is_open
    conn.close()


def test_closing_a_channel_loses_nothing_for_the_next_reader(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments=STREAM)
    publish(ch, "s", [b"a", b"b", b"c"])
    first = conn.channel()
    first.basic_qos(prefetch_count=2)
    got = []
    first.basic_consume("s", lambda c, m, p, b: got.append(b),
                        arguments={"x-stream-offset": "first"})
    while len(got) < 2:
        conn.process_data_events(time_limit=0.05)
    first.close()  # two unacknowledged: nothing to requeue in a stream
    again = read_until(conn, conn.channel(), "s", until_body(b"c"),
                       {"x-stream-offset": "first"})
    assert [g[0] for g in again] == [b"a", b"b", b"c"]
    conn.close()


def _next_second() -> None:
    """Wait until the wall clock enters a new second (AMQP timestamps count seconds)."""
    now = time.time()
    time.sleep(int(now) + 1.02 - now)


def test_timestamp_offsets_start_at_the_first_chunk_written_at_or_after_them(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments=STREAM)
    publish(ch, "s", [b"old"])
    _next_second()
    since = datetime.datetime.fromtimestamp(int(time.time()), datetime.timezone.utc)
    publish(ch, "s", [b"new", b"newer"])
    got = read_until(conn, conn.channel(), "s", until_body(b"newer"),
                     {"x-stream-offset": since})
    assert [g[:2] for g in got] == [(b"new", 1), (b"newer", 2)]
    future = since + datetime.timedelta(hours=1)
    reader = conn.channel()
    late = read_until(conn, reader, "s", lambda got: publish(ch, "s", [b"x"]) or True,
                      {"x-stream-offset": future})
    assert late == []  # nothing is written at or after an hour from now yet
    conn.close()


def test_max_age_drops_segments_older_than_it_when_a_segment_fills(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments={
        **STREAM, "x-max-age": "1s", "x-stream-max-segment-size-bytes": 100})
    publish(ch, "s", [b"a" * 200, b"b" * 200])  # a segment each
    time.sleep(1.1)
    assert broker.queue("s").messages == 2  # retention waits for the next segment
    publish(ch, "s", [b"c" * 200])
    assert broker.queue("s").messages == 1  # a and b were older than a second: gone
    got = read_until(conn, conn.channel(), "s", lambda g: bool(g), {"x-stream-offset": "first"})
    assert got == [(b"c" * 200, 2, False)]
    conn.close()


def test_a_long_stream_is_read_across_many_segments_with_a_small_prefetch(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments={**STREAM,
                                                   "x-stream-max-segment-size-bytes": 4096})
    for i in range(3000):
        ch.basic_publish("", "s", b"%05d" % i)
    ch.confirm_delivery()
    ch.basic_publish("", "s", b"end")
    got = read_until(conn, conn.channel(), "s", until_body(b"end"),
                     {"x-stream-offset": 1000}, prefetch=7)
    assert [g[0] for g in got[:-1]] == [b"%05d" % i for i in range(1000, 3000)]
    assert [g[1] for g in got] == list(range(1000, 3001))
    conn.close()


def test_dead_letters_and_mandatory_publishes_reach_a_stream(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments=STREAM)
    ch.queue_declare("work", arguments={"x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": "s"})
    ch.confirm_delivery()
    ch.basic_publish("", "work", b"dead")
    method, _, _ = ch.basic_get("work")
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.basic_publish("", "s", b"mandatory", mandatory=True)  # routed: not returned
    got = read_until(conn, conn.channel(), "s", until_body(b"mandatory"),
                     {"x-stream-offset": "first"})
    assert [g[0] for g in got] == [b"dead", b"mandatory"]
    conn.close()


async def test_aio_pika_reads_a_stream_from_the_first_offset(abroker):
    connection = await aio_pika.connect(abroker.url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        queue = await channel.declare_queue("events", durable=True, arguments=STREAM)
        for i in range(3):
            await channel.default_exchange.publish(aio_pika.Message(b"e%d" % i), "events")
        seen = []
        async with queue.iterator(arguments={"x-stream-offset": "first"}) as it:
            async for message in it:
                async with message.process():
                    seen.append((message.body, message.headers["x-stream-offset"]))
                if len(seen) == 3:
                    break
        assert seen == [(b"e0", 0), (b"e1", 1), (b"e2", 2)]
        unlimited = await connection.channel()  # no basic.qos: RabbitMQ's 406
        stream = await unlimited.get_queue("events")
        async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            pass
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await stream.consume(ignore)


# ---------------------------------------------------------------- with a data directory


def test_a_stream_survives_a_restart_and_offsets_go_on(tmp_path):
    args = {**STREAM, "x-max-age": "7D", "x-stream-max-segment-size-bytes": 1000}
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.queue_declare("s", durable=True, arguments=args)
        publish(ch, "s", [b"%02d" % i + b"x" * 100 for i in range(30)])
        assert broker.queue("s").messages_ram == 0  # on disk, not in memory
        conn.close()
    directory = stream_directory(tmp_path, "/", "s")
    assert len(list(directory.glob("*.segment"))) > 2
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert broker.queue("s").arguments == args
        conn = connect(broker)
        ch = conn.channel()
        assert ch.queue_declare("s", passive=True).method.message_count == 30
        publish(ch, "s", [b"after"])
        got = read_until(conn, conn.channel(), "s", until_body(b"after"),
                         {"x-stream-offset": "first"})
        assert [g[1] for g in got] == list(range(31))
        assert got[3][0] == b"03" + b"x" * 100
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            conn.channel().queue_declare("s", durable=True, arguments=STREAM)  # no x-max-age
        ch = conn.channel()
        ch.queue_delete("s")
        assert not directory.exists()
        conn.close()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert broker.queues() == []


def test_retention_by_bytes_holds_across_restarts(tmp_path):
    args = {**STREAM, "x-max-length-bytes": 2000, "x-stream-max-segment-size-bytes": 500}
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.queue_declare("s", durable=True, arguments=args)
        publish(ch, "s", [b"x" * 100] * 100)
        kept = broker.queue("s").messages
        assert 10 < kept < 30
        conn.close()
    directory = stream_directory(tmp_path, "/", "s")
    total = sum(p.stat().st_size for p in directory.glob("*.segment"))
    assert total <= 2000 + 700  # the newest segment may be over its size by one chunk
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert broker.queue("s").messages == kept


def test_a_torn_chunk_is_cut_and_a_lost_index_entry_rebuilt_at_start(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.queue_declare("s", durable=True, arguments=STREAM)
        publish(ch, "s", [b"a", b"b", b"c"])
        conn.close()
    directory = stream_directory(tmp_path, "/", "s")
    segment = next(directory.glob("*.segment"))
    index = next(directory.glob("*.index"))
    # a crash between writing the last chunk and its index entry, then half a chunk more
    with open(index, "r+b") as f:
        f.truncate(os.path.getsize(index) - 24)
    with open(segment, "ab") as f:
        f.write(b"\x5a\x01\x00\x00\x00\x00\x00\x01" + b"\x00" * 20)
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        assert ch.queue_declare("s", passive=True).method.message_count == 3
        publish(ch, "s", [b"d"])
        got = read_until(conn, conn.channel(), "s", until_body(b"d"),
                         {"x-stream-offset": "first"})
        assert got == [(b"a", 0, False), (b"b", 1, False), (b"c", 2, False), (b"d", 3, False)]
        conn.close()


def test_publisher_confirms_with_a_data_dir(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.queue_declare("s", durable=True, arguments=STREAM)
        ch.confirm_delivery()
        for i in range(50):
            ch.basic_publish("", "s", b"%d" % i)  # raises unless acked
        assert broker.queue("s").messages == 50
        conn.close()


def test_a_stream_in_memory_has_the_same_segments_and_retention(broker):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("s", durable=True, arguments={**STREAM, "x-max-length-bytes": 1000,
                                                   "x-stream-max-segment-size-bytes": 300})
    publish(ch, "s", [b"x" * 100] * 40)
    info = broker.queue("s")
    assert 3 <= info.messages < 15 and info.messages_ram == info.messages
    conn.close()


def test_stream_files_are_where_the_docs_say(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        conn.channel().queue_declare("orders/eu", durable=True, arguments=STREAM)
        conn.close()
    directory = stream_directory(Path(tmp_path), "/", "orders/eu")
    assert (directory / "NAME").read_text() == "/\norders/eu\n"
    assert [p.name for p in sorted(directory.iterdir())] == [
        "00000000000000000000.index", "00000000000000000000.segment", "NAME"]

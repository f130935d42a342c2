"""Durable definitions and persistent messages survive restarts and kill -9."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time

import pika
import pika.exceptions
import pytest

from _crash import start_server
from conftest import free_port
from leveret import Broker

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def connect(broker) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(broker.url))


def drain(ch, queue: str) -> list[tuple[bytes, bool]]:
    out = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.redelivered))


def test_durable_definitions_and_persistent_messages_survive_restart(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("orders", "topic", durable=True)
        ch.queue_declare("kept", durable=True, arguments={"x-max-length": 100})
        ch.queue_declare("transient-queue", durable=False)
        ch.queue_bind("kept", "orders", "order.#")
        for i in range(5):
            ch.basic_publish("orders", "order.new", b"p%d" % i, PERSISTENT)
        ch.basic_publish("orders", "order.new", b"transient")  # delivery_mode 1: not kept
        ch.basic_publish("", "transient-queue", b"t", PERSISTENT)  # queue not durable
        conn.close()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.exchange_declare("orders", "topic", durable=True, passive=True)
        ok = ch.queue_declare("kept", durable=True, passive=True).method
        assert ok.message_count == 5
        assert broker.queue("kept").arguments == {"x-max-length": 100}
        assert drain(ch, "kept") == [(b"p%d" % i, False) for i in range(5)]
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare("transient-queue", passive=True)
        ch = conn.channel()
        ch.basic_publish("orders", "order.more", b"routed", PERSISTENT)  # the binding is back
        assert drain(ch, "kept") == [(b"routed", False)]
        conn.close()


def test_acked_messages_do_not_come_back_and_unacked_are_redelivered(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("work", durable=True)
        for i in range(4):
            ch.basic_publish("", "work", b"m%d" % i, PERSISTENT)
        first, _, _ = ch.basic_get("work")
        ch.basic_ack(first.delivery_tag)
        ch.basic_get("work")  # m1 delivered, never acked
        broker_conn_open = conn.is_open
        assert broker_conn_open
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = connect(broker).channel()
        assert drain(ch, "work") == [(b"m1", True), (b"m2", False), (b"m3", False)]


def test_deleted_durable_entities_stay_deleted(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = connect(broker).channel()
        ch.exchange_declare("gone-x", "fanout", durable=True)
        ch.queue_declare("gone-q", durable=True)
        ch.queue_bind("gone-q", "gone-x")
        ch.basic_publish("", "gone-q", b"x", PERSISTENT)
        ch.queue_delete("gone-q")
        ch.exchange_delete("gone-x")
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert broker.queues() == []
        conn = connect(broker)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            conn.channel().exchange_declare("gone-x", "fanout", passive=True)


def test_purge_is_durable(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = connect(broker).channel()
        ch.queue_declare("p", durable=True)
        for _ in range(3):
            ch.basic_publish("", "p", b"x", PERSISTENT)
        ch.queue_purge("p")
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert broker.queue("p").messages == 0


def test_damaged_tail_is_recovered_up_to_the_damage(tmp_path, caplog):
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = connect(broker).channel()
        ch.confirm_delivery()
        ch.queue_declare("d", durable=True)
        for i in range(3):
            ch.basic_publish("", "d", b"ok%d" % i, PERSISTENT)
    segment = sorted((tmp_path / "messages").glob("*.log"))[-1]
    data = segment.read_bytes()
    # as a crash mid-write leaves it: no clean-shutdown mark, the last record torn, garbage
    (tmp_path / "messages" / "CLEAN").unlink()
    segment.write_bytes(data[: len(data) - 10] + b"\x00\x01garbage")
    with caplog.at_level(logging.WARNING, logger="leveret.store"):
        with Broker.in_thread(data_dir=str(tmp_path)) as broker:
            ch = connect(broker).channel()
            got = drain(ch, "d")
    assert [b for b, _ in got] == [b"ok0", b"ok1"]
    assert all(redelivered for _, redelivered in got)  # not a clean shutdown: marked
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_damaged_definitions_do_not_prevent_start(tmp_path, caplog):
    """A damaged record in the middle of the journal is skipped (the ones after it are kept);
    a record cut short at its end (a crash in the middle of a write) is dropped."""
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = connect(broker).channel()
        for name in ("q1", "q2", "q3"):
            ch.queue_declare(name, durable=True)
    journal = tmp_path / "definitions.log"
    data = journal.read_bytes()
    at = data.index(b'"name":"q2"')
    journal.write_bytes(data[:at] + b'"name":"qX"' + data[at + 11:]
                        + b'0badc0de {"t":"queue","vhost":"/","na')
    with caplog.at_level(logging.WARNING, logger="leveret.store"):
        with Broker.in_thread(data_dir=str(tmp_path)) as broker:
            assert sorted(q.name for q in broker.queues()) == ["q1", "q3"]
            connect(broker).channel().queue_declare("q4", durable=True)
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 damaged record(s) skipped" in m for m in messages)
    assert any("unfinished record" in m for m in messages)
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:  # appends after the cut are read
        assert sorted(q.name for q in broker.queues()) == ["q1", "q3", "q4"]


def test_a_format_2_data_dir_is_converted(tmp_path, caplog):
    """definitions.json (format 2) moves into the journal; a damaged one is set aside."""
    from leveret.store.definitions import table_out

    (tmp_path / "VERSION").write_text("leveret-store 2\n")
    (tmp_path / "definitions.json").write_text(json.dumps({"version": 1, "vhosts": {
        "/": {"exchanges": [{"name": "orders", "type": "topic", "auto_delete": False,
                             "internal": False, "arguments": table_out({})}],
              "queues": [{"name": "kept", "auto_delete": False,
                          "arguments": table_out({"x-max-length": 7})}],
              "bindings": [{"source": "orders", "destination_type": "queue",
                            "destination": "kept", "routing_key": "order.#",
                            "arguments": table_out({})}]},
        "other": {"exchanges": [], "queues": [], "bindings": []}}}))
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert broker.queue("kept").arguments == {"x-max-length": 7}
        assert sorted(broker.vhost_names()) == ["/", "other"]
        conn = connect(broker)
        conn.channel().basic_publish("orders", "order.1", b"routed")
        assert broker.wait_for_messages("kept", 1).messages == 1
        # a data dir from before users were kept: the default user may use its vhosts
        pika.BlockingConnection(pika.URLParameters(broker.url_for("other"))).close()
        conn.close()
    assert (tmp_path / "VERSION").read_text() == "leveret-store 3\n"
    assert not (tmp_path / "definitions.json").exists()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert broker.queue("kept").arguments == {"x-max-length": 7}
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "VERSION").write_text("leveret-store 2\n")
    (damaged / "definitions.json").write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="leveret.store"):
        with Broker.in_thread(data_dir=str(damaged)) as broker:
            assert broker.queues() == []
    assert any("damaged" in r.getMessage() for r in caplog.records)
    assert (damaged / "definitions.json.damaged").exists()


def test_segments_roll_and_dead_ones_are_deleted(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVERET_STORE_SEGMENT_BYTES", "4096")
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        conn = connect(broker)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("roll", durable=True)
        for i in range(200):
            ch.basic_publish("", "roll", b"%04d" % i + b"." * 200, PERSISTENT)
        many = len(list((tmp_path / "messages").glob("*.log")))
        assert many > 5
        for _ in range(200):
            method, _, _ = ch.basic_get("roll")
            ch.basic_ack(method.delivery_tag)
        ch.basic_publish("", "roll", b"last", PERSISTENT)  # a flush after the acks
        assert len(list((tmp_path / "messages").glob("*.log"))) < many
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert [m.body for m in broker.peek("roll")] == [b"last"]


# ---------------------------------------------------------------- crash safety


def _load(port: int, confirmed: set[int], acked: set[int], stop: threading.Event,
          gets: int = 1) -> None:
    """Publish persistent messages with confirms, 20 at a time, and get and ack ``gets`` after
    each 20; until killed."""
    try:
        pub = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        pch = pub.channel()
        pch.confirm_delivery()
        cons = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        cch = cons.channel()
        n = 0
        while not stop.is_set():
            for _ in range(20):
                pch.basic_publish("", "crash", str(n).encode(), PERSISTENT)
                confirmed.add(n)  # basic_publish returned: the broker confirmed it
                n += 1
            for _ in range(gets):
                method, _, body = cch.basic_get("crash")
                if method is not None:
                    cch.basic_ack(method.delivery_tag)
                    # acked is only recorded once the ack is sent; it may or may not be on disk
                    acked.add(int(body))
    except (pika.exceptions.AMQPError, OSError, ValueError):
        return  # the server was killed under us


@pytest.mark.parametrize(("mode", "round_"), [("plain", r) for r in range(8)]
                         + [("paged", r) for r in range(6)])
def test_kill_9_under_load_loses_no_confirmed_message(tmp_path, mode, round_):
    rng = random.Random(round_)
    data_dir = str(tmp_path)
    port = free_port()
    proc = start_server(data_dir, port, mode)
    setup = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    setup.channel().queue_declare("crash", durable=True)
    setup.close()
    confirmed: set[int] = set()
    acked: set[int] = set()
    stop = threading.Event()
    gets = 15 if mode == "paged" else 1  # paged: most acked, so segments empty and compact
    worker = threading.Thread(target=_load, args=(port, confirmed, acked, stop, gets),
                              daemon=True)
    worker.start()
    time.sleep(rng.uniform(0.2, 1.0))  # a random moment under load
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    worker.join(10)
    confirmed_snapshot, acked_snapshot = set(confirmed), set(acked)
    assert confirmed_snapshot, "the load never got going"

    port = free_port()
    proc = start_server(data_dir, port, mode)
    order: list[int] = []
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        back: dict[int, bool] = {}
        while True:
            method, _, body = ch.basic_get("crash", auto_ack=True)
            if method is None:
                break
            back[int(body)] = method.redelivered
            order.append(int(body))
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
    lost = confirmed_snapshot - acked_snapshot - set(back)
    assert not lost, f"confirmed messages lost: {sorted(lost)[:10]}"
    for n in acked_snapshot & set(back):
        assert back[n], f"acked message {n} came back without redelivered"
    assert order == sorted(order), "recovered messages out of publish order"
    assert len(order) == len(back), "a message came back twice"


# ---------------------------------------------------------------- a disk that refuses writes


@pytest.mark.parametrize("budget", [128 << 20, 0])
def test_a_full_disk_nacks_confirms_keeps_messages_and_recovers(tmp_path, monkeypatch, caplog,
                                                               budget):
    """ENOSPC on the message log: publishes waiting for the disk are nacked (none waits for
    ever), the messages stay deliverable (budget 0: read back from what is still buffered),
    and once the disk takes writes again everything is written and survives a restart."""
    import errno

    import leveret.store.messages as messages

    real_write = os.write
    refusing = threading.Event()
    with Broker.in_thread(data_dir=str(tmp_path), memory_budget=budget) as broker:
        store = broker._call(lambda: broker.broker._server.store)

        def write(fd, data):
            if refusing.is_set() and (fd == store.fd or fd in store._mark_fds.values()):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(messages.os, "write", write)
        conn = connect(broker)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("full", durable=True)
        ch.basic_publish("", "full", b"before", PERSISTENT)
        refusing.set()
        with caplog.at_level(logging.ERROR, logger="leveret.store"):
            for i in range(3):
                with pytest.raises(pika.exceptions.NackError):
                    ch.basic_publish("", "full", b"refused%d" % i, PERSISTENT)
        assert any("cannot write" in r.getMessage() for r in caplog.records)
        # still served, in order, whatever the budget paged out
        got = [ch.basic_get("full")[2] for _ in range(4)]
        assert got == [b"before", b"refused0", b"refused1", b"refused2"]
        ch.basic_recover(requeue=True)  # back in the queue, unacked
        refusing.clear()
        ch.basic_publish("", "full", b"after", PERSISTENT)  # confirmed once the retry wrote
        conn.close()
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        got = drain(connect(broker).channel(), "full")
    assert [b for b, _ in got] == [b"before", b"refused0", b"refused1", b"refused2", b"after"]

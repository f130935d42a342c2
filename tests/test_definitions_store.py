"""Users, vhosts, permissions and durable topology kept in the data directory's journal:
across restarts, vhosts added and deleted at run time, compaction, and kill -9 in the middle of
a stream of declares and deletes (nothing answered -ok is lost)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pika
import pika.exceptions
import pytest

from _proc import LeveretProcess
from leveret import Broker

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def connect(port: int, user: str = "guest", password: str = "guest",
            vhost: str = "/") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials(user, password), connection_attempts=1))


def refused(port: int, user: str, password: str, vhost: str = "/") -> bool:
    try:
        connect(port, user, password, vhost).close()
    except (pika.exceptions.ProbableAuthenticationError,
            pika.exceptions.ProbableAccessDeniedError):
        return True
    return False


def test_users_vhosts_and_permissions_survive_a_restart(tmp_path):
    data = str(tmp_path)
    with Broker.in_thread(data_dir=data) as broker:
        broker.call(lambda: broker.broker.access.add_vhost(
            "team", description="the team's", tags="dev,ci"))
        broker.add_user("app", "pw", tags=["management", "custom"])
        broker.set_permissions("app", "team", "^app\\.", "^(app\\.|amq\\.default$)",
                               "^app\\.")
        broker.set_topic_permissions("app", "team", "amq.topic", "^a\\.", "^b\\.")
        broker.add_user("gone", "x")
        broker.set_permissions("gone", "team")
        broker.delete_user("gone")
        broker.call(lambda: broker.broker.access.change_password("guest", "changed"))
        ch = connect(broker.port, "app", "pw", "team").channel()
        ch.queue_declare("app.kept", durable=True)
        ch.basic_publish("", "app.kept", b"m", PERSISTENT)
    with Broker.in_thread(data_dir=data) as broker:
        access = broker.broker.access
        info = broker.call(lambda: access.vhost("team"))
        assert (info.description, info.tags) == ("the team's", ("dev", "ci"))
        assert broker.call(lambda: access.user("app")).tags == ("management", "custom")
        assert broker.call(lambda: access.user("gone")) is None
        assert [p.as_dict() for p in broker.call(lambda: access.list_permissions(
            vhost="team"))] == [
            {"user": "app", "vhost": "team", "configure": "^app\\.",
             "write": "^(app\\.|amq\\.default$)", "read": "^app\\."}]
        assert [t.as_dict() for t in broker.call(access.list_topic_permissions)] == [
            {"user": "app", "vhost": "team", "exchange": "amq.topic", "write": "^a\\.",
             "read": "^b\\."}]
        # the password changed at run time holds; the default user is not made again
        assert refused(broker.port, "guest", "guest")
        ch = connect(broker.port, "app", "pw", "team").channel()
        assert ch.basic_get("app.kept", auto_ack=True)[2] == b"m"
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("other")
        assert info.value.reply_code == 403


def test_options_for_the_default_user_apply_on_first_boot_only(tmp_path):
    """As RabbitMQ's default_user: a data dir that has users keeps them."""
    data = str(tmp_path)
    with LeveretProcess("--data-dir", data, "--user", "first", "--password", "one",
                        in_memory=False) as proc:
        proc.started()
        assert not refused(proc.port, "first", "one")
    with LeveretProcess("--data-dir", data, "--user", "second", "--password", "two",
                        in_memory=False) as proc:
        proc.started()
        assert not refused(proc.port, "first", "one")
        assert refused(proc.port, "second", "two")
        proc.wait_for(r".*users 'second' not created: the data dir has its users already.*")


def test_vhosts_added_and_deleted_at_run_time(tmp_path):
    data = str(tmp_path)
    with Broker.in_thread(data_dir=data) as broker:
        broker.add_vhost("short-lived")
        broker.add_vhost("kept")
        for vhost in ("short-lived", "kept"):
            conn = pika.BlockingConnection(pika.URLParameters(broker.url_for(vhost)))
            ch = conn.channel()
            ch.confirm_delivery()
            ch.exchange_declare("x", "fanout", durable=True)
            ch.queue_declare("q", durable=True)
            ch.queue_bind("q", "x")
            ch.basic_publish("x", "", vhost.encode(), PERSISTENT)
            if vhost == "kept":
                conn.close()
            else:
                doomed = conn
        broker.delete_vhost("short-lived")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            doomed.channel()
        assert (info.value.reply_code, info.value.reply_text) == (
            320, "CONNECTION_FORCED - vhost 'short-lived' is deleted")
    with Broker.in_thread(data_dir=data) as broker:
        assert sorted(broker.vhost_names()) == ["/", "kept"]
        assert [m.body for m in broker.peek("q", vhost="kept")] == [b"kept"]
        broker.add_vhost("short-lived")  # the same name again: nothing of the old one
        assert broker.queues("short-lived") == []
        conn = pika.BlockingConnection(pika.URLParameters(broker.url_for("short-lived")))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            conn.channel().exchange_declare("x", passive=True)


def test_nothing_is_written_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with LeveretProcess() as proc:  # --in-memory
        proc.started()
        conn = connect(proc.port)
        conn.channel().queue_declare("q", durable=True)
        conn.close()
    assert os.listdir(tmp_path) == []


def test_compaction_keeps_the_journal_short_and_right(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVERET_DEFINITIONS_COMPACT_SLACK", "20")
    journal = tmp_path / "definitions.log"
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        ch = pika.BlockingConnection(pika.URLParameters(broker.url)).channel()
        for round_ in range(5):
            for i in range(60):
                ch.queue_declare(f"q{round_}.{i}", durable=True)
                ch.queue_bind(f"q{round_}.{i}", "amq.direct", f"k{i}")
            for i in range(60):
                if i % 4:
                    ch.queue_delete(f"q{round_}.{i}")
    # 1050 changes were written; vhost, user, permission and 75 queues and bindings live
    live = 3 + 2 * 75
    assert journal.read_bytes().count(b"\n") <= 2 * live + 20
    with Broker.in_thread(data_dir=str(tmp_path)) as broker:
        assert sorted(q.name for q in broker.queues()) == sorted(
            f"q{r}.{i}" for r in range(5) for i in range(0, 60, 4))
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.basic_publish("amq.direct", "k8", b"bound")
        assert broker.wait_for_messages("q3.8", 1).messages == 1


# ---------------------------------------------------------------- kill -9


def _declare_until_killed(port: int, answered: dict[str, str], stop: threading.Event) -> None:
    """Declare durable queues bound to amq.topic and delete two of every three again (so the
    journal compacts often); record each answer as it comes back, and each delete before it is
    sent (one in flight at the kill may or may not have been done)."""
    try:
        ch = connect(port).channel()
        n = 0
        while not stop.is_set():
            name = f"crash-{n}"
            ch.queue_declare(name, durable=True)
            answered[name] = "declared"
            ch.queue_bind(name, "amq.topic", f"key.{n}")
            answered[name] = "bound"
            if n % 3:
                answered[name] = "deleting"
                ch.queue_delete(name)
                answered[name] = "deleted"
            n += 1
    except (pika.exceptions.AMQPError, OSError, ValueError):
        return  # killed under us


@pytest.mark.parametrize("round_", range(4))
def test_kill_9_loses_no_answered_declare(tmp_path, monkeypatch, round_):
    # a small slack: the kill also comes in the middle of compactions
    env = {"LEVERET_DEFINITIONS_COMPACT_SLACK": "50"}
    data = str(tmp_path)
    proc = LeveretProcess("--data-dir", data, in_memory=False, env=env).started()
    answered: dict[str, str] = {}
    stop = threading.Event()
    worker = threading.Thread(target=_declare_until_killed, args=(proc.port, answered, stop),
                              daemon=True)
    worker.start()
    time.sleep(random.Random(round_).uniform(0.3, 1.2))
    os.kill(proc.proc.pid, signal.SIGKILL)
    proc.stop()
    stop.set()
    worker.join(10)
    seen = dict(answered)
    assert len(seen) > 20, "the load never got going"
    with LeveretProcess("--data-dir", data, in_memory=False, env=env) as proc:
        proc.started()
        conn = connect(proc.port)
        ch = conn.channel()
        for name, state in seen.items():
            if state == "deleting":
                continue
            if state == "deleted":
                with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                    ch.queue_declare(name, passive=True)
                ch = conn.channel()
                continue
            ch.queue_declare(name, passive=True)  # declared: it must be there
            if state == "bound":
                ch.basic_publish("amq.topic", f"key.{name.split('-')[1]}", b"x")
                assert ch.queue_declare(name, passive=True).method.message_count == 1, name
        conn.close()

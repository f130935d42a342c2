"""Resource alarms as RabbitMQ's (rabbitmq.com/docs/alarms): the memory high watermark on the
process's RSS, a share of the RAM or of the cgroup's limit, and the free disk space limit.
While one is in effect, publishing connections get connection.blocked and are not read; the
management API, its health checks and the Prometheus metrics say which alarm is on.

test_limits.py has the blocking mechanics in detail (with the ``queued`` strategy, which makes
them deterministic); here the alarms are set by what the OS reports: a real RSS, a fake cgroup
tree, a disk whose free space the test decides (``DiskMonitor.free_bytes``) or a limit above
any real disk.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pika
import pytest
from pamqp import commands as spec

from _proc import LeveretProcess
from leveret import Broker, resources
from leveret.cli import parse_args
from leveret.settings import node_name

from apiclient import API
from rawamqp import blocked_capable_publisher, flood_until_the_broker_speaks, publish_frames

pytestmark = pytest.mark.leveret_only

MiB = 1024 * 1024


def wait_for(conn: pika.BlockingConnection, cond: Callable[[], bool], what: str) -> None:
    """Let pika read until ``cond()`` holds (its callbacks run meanwhile), at most 20 s."""
    for _ in range(400):
        if cond():
            return
        conn.process_data_events(time_limit=0.05)
    raise AssertionError(f"no {what} in 20 s")


def watched_publisher(url: str) -> tuple[pika.BlockingConnection, list[str], list[bool]]:
    """A pika connection that records connection.blocked reasons and unblocked events."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    blocked: list[str] = []
    unblocked: list[bool] = []
    conn.add_on_connection_blocked_callback(
        lambda _c, frame: blocked.append(frame.method.reason))
    conn.add_on_connection_unblocked_callback(lambda *_: unblocked.append(True))
    return conn, blocked, unblocked


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in the metrics")


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(("text", "expected"), [
    ("0.4", 0.4), ("1.0", 1.0), ("0.0", 0.0), ("512MiB", 512 * MiB), ("1GB", 10**9),
    ("2000000", 2_000_000), ("0", 0),
])
def test_memory_watermark_is_a_share_or_a_size(text, expected):
    value = parse_args(["--memory-high-watermark", text], env={}).memory_high_watermark
    assert value == expected and type(value) is type(expected)


def test_defaults_are_rabbitmqs():
    args = parse_args([], env={})
    assert args.memory_high_watermark == 0.4  # RabbitMQ's vm_memory_high_watermark
    assert args.disk_free_limit is None  # 50 MB with a data dir (below), none in memory


@pytest.mark.parametrize(("text", "expected"), [
    ("50MB", 50_000_000), ("1GiB", 1 << 30), ("2.0", 2.0), ("1.5", 1.5), ("100000", 100000),
])
def test_disk_free_limit_is_a_size_or_a_multiple_of_memory(text, expected):
    assert parse_args(["--disk-free-limit", text], env={}).disk_free_limit == expected


@pytest.mark.parametrize("flag", ["--memory-high-watermark", "--disk-free-limit"])
@pytest.mark.parametrize("text", ["lots", "-0.4", "1.5.2", "nan"])
def test_bad_values_are_usage_errors(flag, text, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args([flag, text], env={})
    assert info.value.code == 2
    assert f"argument {flag}: " in capsys.readouterr().err


@pytest.mark.parametrize(("lines", "watermark", "disk"), [
    ("vm_memory_high_watermark.relative = 0.6\n", 0.6, None),
    ("vm_memory_high_watermark.absolute = 2GB\n", 2 * 10**9, None),
    ("vm_memory_high_watermark.absolute = 1073741824\n", 1 << 30, None),
    # rabbit.schema: with both, .relative is taken, whatever the order
    ("vm_memory_high_watermark.relative = 0.5\nvm_memory_high_watermark.absolute = 1GB\n",
     0.5, None),
    ("vm_memory_high_watermark.absolute = 1GB\nvm_memory_high_watermark.relative = 0.5\n",
     0.5, None),
    ("disk_free_limit.absolute = 1GB\n", 0.4, 10**9),
    ("disk_free_limit.absolute = 50000\n", 0.4, 50000),
    ("disk_free_limit.relative = 1.5\n", 0.4, 1.5),
    ("disk_free_limit.relative = 2\ndisk_free_limit.absolute = 1GB\n", 0.4, 2.0),
])
def test_rabbitmq_conf_keys(tmp_path, lines, watermark, disk):
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(lines)
    args = parse_args(["--config", str(conf)], env={})
    assert (args.memory_high_watermark, args.disk_free_limit) == (watermark, disk)
    assert args.config_warnings == []


def test_a_share_above_one_is_taken_as_one():
    # vm_memory_monitor:parse_mem_limit: above the maximum it warns and uses 1.0
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("leveret.memory")
    logger.addHandler(handler)
    try:
        with Broker.in_thread(memory_high_watermark=1.5) as broker:
            limit = broker.call(lambda: broker.broker._server.memory.limit)
            total = broker.call(lambda: broker.broker._server.total_memory)
    finally:
        logger.removeHandler(handler)
    assert limit == total
    assert "Memory high watermark of 1.5 is above the allowed maximum, falling back to 1.0" \
        in [r.getMessage() for r in records]


# ---------------------------------------------------------------- the cgroup's limit


def fake_cgroup(tmp_path: Path, self_lines: str, files: dict[str, str]) -> tuple[str, str]:
    """A /sys/fs/cgroup tree (``files``: path under the root -> content) and a
    /proc/self/cgroup with ``self_lines``; returns (root, self_cgroup)."""
    root = tmp_path / "cgroup"
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(self_lines)
    return str(root), str(proc)


def test_cgroup_v2_limit_binds_from_the_process_or_a_parent(tmp_path):
    root, proc = fake_cgroup(tmp_path, "0::/system.slice/app.service\n", {
        "system.slice/app.service/memory.max": "max",
        "system.slice/memory.max": str(768 * MiB),  # the parent's limit binds the child
        "memory.max": "max",
    })
    assert resources.cgroup_memory_limit(root, proc) == 768 * MiB
    root, proc = fake_cgroup(tmp_path / "b", "0::/a/b\n", {
        "a/b/memory.max": str(300 * MiB), "a/memory.max": str(900 * MiB)})
    assert resources.cgroup_memory_limit(root, proc) == 300 * MiB


def test_cgroup_v1_limit_and_none(tmp_path):
    root, proc = fake_cgroup(tmp_path, "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n1:name=systemd:/\n",
                             {"memory/docker/abc/memory.limit_in_bytes": str(256 * MiB),
                              "memory/memory.limit_in_bytes": "9223372036854771712"})
    assert resources.cgroup_memory_limit(root, proc) == 256 * MiB
    # no limit anywhere: v1's near-2**63 and v2's "max" mean none
    root, proc = fake_cgroup(tmp_path / "none", "4:memory:/u\n0::/u\n", {
        "memory/u/memory.limit_in_bytes": "9223372036854771712", "u/memory.max": "max"})
    assert resources.cgroup_memory_limit(root, proc) is None
    # no cgroup file system at all
    assert resources.cgroup_memory_limit(str(tmp_path / "absent"), proc) is None


def test_cgroup_namespace_sees_its_own_root(tmp_path):
    # inside a container with its own cgroup namespace, the path is "/" and the limit is in
    # the mounted root itself
    root, proc = fake_cgroup(tmp_path, "0::/\n", {"memory.max": str(512 * MiB)})
    assert resources.cgroup_memory_limit(root, proc) == 512 * MiB


def test_watermark_is_a_share_of_the_cgroup_limit_when_lower(tmp_path, monkeypatch):
    limit = 512 * MiB
    root, proc = fake_cgroup(tmp_path, "0::/box\n", {"box/memory.max": str(limit)})
    monkeypatch.setattr(resources, "CGROUP_ROOT", root)
    monkeypatch.setattr(resources, "PROC_SELF_CGROUP", proc)
    assert resources.physical_memory() > limit  # else this machine cannot show the difference
    with Broker.in_thread(memory_high_watermark=0.5, management_port=0,
                          prometheus_port=0) as broker:
        api = API(broker.management_url)
        node = api.json("GET", f"/api/nodes/{node_name()}")
        assert node["mem_limit"] == limit // 2
        assert node["mem_alarm"] is False
        assert metric(broker.prometheus_port, "rabbitmq_resident_memory_limit_bytes") \
            == limit // 2
    # an absolute watermark above the memory is taken as the memory (vm_memory_monitor)
    with Broker.in_thread(memory_high_watermark="4GiB", management_port=0) as broker:
        assert API(broker.management_url).json(
            "GET", f"/api/nodes/{node_name()}")["mem_limit"] == limit


# ---------------------------------------------------------------- the memory alarm


def test_a_zero_watermark_blocks_every_publisher_and_the_api_says_so():
    """RabbitMQ's ``vm_memory_high_watermark 0``: the alarm is on at once."""
    with Broker.in_thread(memory_high_watermark=0, management_port=0,
                          prometheus_port=0) as broker:
        api = API(broker.management_url)
        reply = api.get("/api/health/checks/alarms")
        assert reply.status == 503
        assert reply.json() == {"status": "failed",
                                "reason": "There are alarms in effect in the cluster",
                                "alarms": [{"resource": "memory", "node": node_name()}]}
        local = api.get("/api/health/checks/local-alarms")
        assert (local.status, local.json()["reason"]) == (
            503, "There are alarms in effect on the node")
        node = api.json("GET", f"/api/nodes/{node_name()}")
        assert (node["mem_alarm"], node["mem_limit"], node["disk_free_alarm"]) == (True, 0, False)
        assert node["mem_used"] > 0
        assert metric(broker.prometheus_port, "rabbitmq_alarms_memory_used_watermark") == 1
        pub, blocked, _ = watched_publisher(broker.url)
        ch = pub.channel()
        ch.queue_declare("q")  # not publishing yet: not blocked
        assert not blocked
        ch.basic_publish("", "q", b"m")
        wait_for(pub, lambda: bool(blocked), "connection.blocked")
        assert blocked == ["low on memory"]
        assert api.json("GET", "/api/connections")[0]["state"] == "blocked"
        # a consumer is never blocked
        cons = pika.BlockingConnection(pika.URLParameters(broker.url))
        assert cons.channel().basic_get("q", auto_ack=True)[2] == b"m"
        cons.close()
        # pub stays blocked: its connection.close would not be read either (as in RabbitMQ);
        # the broker's shutdown closes it


def test_rss_over_the_watermark_blocks_a_flood_and_a_purge_clears_it():
    """The process's RSS, read on a timer: a publisher flooding a queue nobody consumes is
    blocked once the broker's memory passes the watermark; purging the queue gives the memory
    back (to the OS, not only to the allocator) and the alarm clears."""
    limit = 80 * MiB
    body = b"x" * (64 * 1024)
    with LeveretProcess("--memory-high-watermark", "80MiB") as proc:
        proc.started()
        assert proc.wait_for(r".*Memory high watermark set to 80 MiB \(83886080 bytes\) of "
                             r"\d+ MiB \(\d+ bytes\) total")
        setup = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", proc.port))
        setup.channel().queue_declare("flood")
        pub = blocked_capable_publisher("127.0.0.1", proc.port)
        sent, pending = flood_until_the_broker_speaks(pub, "flood", body)
        _, frame = pub.recv_frame()
        assert isinstance(frame, spec.Connection.Blocked)
        assert frame.reason == "low on memory"
        line = proc.wait_for(r".*vm_memory_high_watermark set\. Memory used:\d+ allowed:83886080")
        assert int(line.split("Memory used:")[1].split()[0]) > limit
        proc.wait_for(r".*\[warning\] <0\.0\.0> memory resource limit alarm set on node .*")
        queued = setup.channel().queue_declare("flood", passive=True).method.message_count
        # it took memory to get there, and the flood stopped near the limit, not gigabytes on
        assert 200 <= queued <= 3 * limit // len(body)
        start = len(proc.lines)
        purged = setup.channel().queue_purge("flood").method.message_count
        _, frame = pub.recv_frame()
        assert isinstance(frame, spec.Connection.Unblocked)
        proc.wait_for(r".*vm_memory_high_watermark clear\. Memory used:\d+ allowed:83886080",
                      start=start)
        proc.wait_for(r".*memory resource limit alarm cleared on node .*", start=start)
        # read again: the publishes it held back in the socket arrive, none lost
        pub.send(pending)  # the rest of the one being sent when the broker stopped reading
        pub.send_method(1, spec.Queue.Declare(queue="flood", passive=True))
        _, ok = pub.recv_until(spec.Queue.DeclareOk)
        assert purged + ok.message_count == sent
        pub.close()
        setup.close()


# ---------------------------------------------------------------- the disk alarm


class FakeDisk:
    """Stands in for statvfs: the free bytes the test says."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.paths: list[str] = []

    def __call__(self, path: str) -> int:
        self.paths.append(path)
        return self.free


def test_low_disk_blocks_publishers_until_space_is_back(tmp_path):
    limit = 50_000_000  # RabbitMQ's default
    with Broker.in_thread(data_dir=str(tmp_path), management_port=0,
                          prometheus_port=0) as broker:
        server = broker.call(lambda: broker.broker._server)
        disk = FakeDisk(limit + 10_000_000)  # close to the limit: looked at every 0.1 s

        def install() -> None:
            server.disk.free_bytes = disk
            server.disk.check()

        broker.call(install)
        assert disk.paths[-1] == str(tmp_path)  # the data dir's filesystem
        api = API(broker.management_url)
        assert api.get("/api/health/checks/alarms").json() == {"status": "ok"}
        pub, blocked, unblocked = watched_publisher(broker.url)
        ch = pub.channel()
        ch.queue_declare("d")
        ch.basic_publish("", "d", b"before")
        disk.free = limit - 1  # the disk fills up; the monitor's timer notices
        # the first publish after that is where the connection is blocked (rabbit_reader)
        wait_for(pub, lambda: server.disk.alarmed, "disk alarm")
        ch.basic_publish("", "d", b"while low")  # taken, then nothing more is read
        wait_for(pub, lambda: bool(blocked), "connection.blocked")
        assert blocked == ["low on disk"]
        ch.basic_publish("", "d", b"held")
        reply = api.get("/api/health/checks/alarms")
        assert reply.status == 503
        assert reply.json()["alarms"] == [{"resource": "disk space", "node": node_name()}]
        assert api.get("/api/health/checks/local-alarms").status == 503
        node = api.json("GET", f"/api/nodes/{node_name()}")
        assert (node["disk_free"], node["disk_free_limit"], node["disk_free_alarm"],
                node["mem_alarm"]) == (limit - 1, limit, True, False)
        assert metric(broker.prometheus_port, "rabbitmq_alarms_free_disk_space_watermark") == 1
        assert metric(broker.prometheus_port, "rabbitmq_disk_space_available_bytes") == limit - 1
        assert metric(broker.prometheus_port,
                      "rabbitmq_disk_space_available_limit_bytes") == limit
        assert broker.queue("d").messages == 2  # "held" waits in the socket
        disk.free = limit  # space is back (at the limit is enough: free < limit is the alarm)
        wait_for(pub, lambda: bool(unblocked), "connection.unblocked")
        assert api.get("/api/health/checks/alarms").json() == {"status": "ok"}
        assert metric(broker.prometheus_port, "rabbitmq_alarms_free_disk_space_watermark") == 0
        broker.wait_for_messages("d", 3)
        assert [m.body for m in broker.peek("d")] == [b"before", b"while low", b"held"]
        pub.close()


def test_memory_and_disk_alarms_together(tmp_path):
    with Broker.in_thread(data_dir=str(tmp_path), memory_high_watermark=0,
                          management_port=0) as broker:
        server = broker.call(lambda: broker.broker._server)
        disk = FakeDisk(0)

        def install() -> None:
            server.disk.free_bytes = disk
            server.disk.check()

        broker.call(install)
        pub, blocked, _ = watched_publisher(broker.url)
        pub.channel().basic_publish("", "nowhere", b"x")
        wait_for(pub, lambda: bool(blocked), "connection.blocked")
        assert blocked == ["low on memory & disk"]
        alarms = API(broker.management_url).get("/api/health/checks/alarms").json()["alarms"]
        assert alarms == [{"resource": "memory", "node": node_name()},
                          {"resource": "disk space", "node": node_name()}]
        # space back, memory still low: still blocked
        disk.free = 10**12
        broker.call(server.disk.check)
        assert API(broker.management_url).get(
            "/api/health/checks/alarms").json()["alarms"] == [
                {"resource": "memory", "node": node_name()}]
        assert broker.call(lambda: len(server.memory.blocked)) == 1


def test_a_limit_above_the_disk_blocks_publishers_from_the_start():
    """A real statvfs: in memory, an explicit --disk-free-limit watches the working directory;
    a limit no disk has sets the alarm at start, with RabbitMQ's lines."""
    with LeveretProcess("--disk-free-limit", "1000000GB") as proc:
        proc.started()
        proc.wait_for(r".*\[info\] <0\.0\.0> Enabling free disk space monitoring")
        proc.wait_for(r".*Disk free limit set to 1000000000MB")
        proc.wait_for(r".*Free disk space is insufficient\. Free bytes: \d+\. "
                      r"Limit: 1000000000000000")
        proc.wait_for(r".*\[warning\] <0\.0\.0> disk resource limit alarm set on node .*")
        pub = blocked_capable_publisher("127.0.0.1", proc.port)
        pub.send(publish_frames("nowhere", b"x"))
        _, frame = pub.recv_until(spec.Connection.Blocked)
        assert frame.reason == "low on disk"
        pub.close()


def test_in_memory_no_disk_monitor_unless_asked():
    with Broker.in_thread(management_port=0) as broker:
        assert broker.call(lambda: broker.broker._server.disk) is None
        node = API(broker.management_url).json("GET", f"/api/nodes/{node_name()}")
        assert node["disk_free_alarm"] is False
        assert node["disk_free"] > 0  # still shown: the working directory's filesystem

"""Prometheus metrics (rabbitmq_prometheus's /metrics and /metrics/per-object): scraped over
HTTP, parsed with prometheus_client's own text parser, with pika making the traffic whose
counts must show; names, types, HELP texts and labels compared with the local RabbitMQ's."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from collections.abc import Iterator

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from leveret import Broker

RABBITMQ_METRICS = "http://127.0.0.1:15692/metrics"

# every metric the Grafana dashboard "RabbitMQ-Overview" (grafana.com 10991) queries, in its
# RabbitMQ 3.10 revision and its current one (bar the 4.x message size histogram)
DASHBOARD = """
rabbitmq_build_info rabbitmq_channel_consumers rabbitmq_channels rabbitmq_channels_closed_total
rabbitmq_channels_opened_total rabbitmq_connections rabbitmq_connections_closed_total
rabbitmq_connections_opened_total rabbitmq_consumers rabbitmq_disk_space_available_bytes
rabbitmq_disk_space_available_limit_bytes rabbitmq_erlang_uptime_seconds
rabbitmq_global_consumers rabbitmq_global_publishers
rabbitmq_global_messages_acknowledged_total rabbitmq_global_messages_confirmed_total
rabbitmq_global_messages_delivered_total
rabbitmq_global_messages_delivered_consume_auto_ack_total
rabbitmq_global_messages_delivered_consume_manual_ack_total
rabbitmq_global_messages_delivered_get_auto_ack_total
rabbitmq_global_messages_delivered_get_manual_ack_total rabbitmq_global_messages_get_empty_total
rabbitmq_global_messages_received_confirm_total rabbitmq_global_messages_received_total
rabbitmq_global_messages_redelivered_total rabbitmq_global_messages_routed_total
rabbitmq_global_messages_unroutable_dropped_total
rabbitmq_global_messages_unroutable_returned_total rabbitmq_identity_info
rabbitmq_process_max_fds rabbitmq_process_max_tcp_sockets rabbitmq_process_open_fds
rabbitmq_process_open_tcp_sockets rabbitmq_process_resident_memory_bytes
rabbitmq_queue_messages_ready rabbitmq_queue_messages_unacked rabbitmq_queues
rabbitmq_queues_created_total rabbitmq_queues_declared_total rabbitmq_queues_deleted_total
rabbitmq_resident_memory_limit_bytes
""".split()


class Scrape:
    """One parsed scrape: families by their exposed name, samples by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {}
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            # the parser names a counter family without its _total; the text has it
            name = family.name + "_total" if family.type == "counter" else family.name
            self.families[name] = family
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def g(self, name: str, **labels: str) -> float:
        """A rabbitmq_global_* counter (protocol amqp091; classic queues where typed)."""
        full = f"rabbitmq_global_messages_{name}_total"
        try:
            return self.value(full, protocol="amqp091", queue_type="rabbit_classic_queue")
        except KeyError:
            return self.value(full, protocol="amqp091")


def get(url: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.fixture(scope="module")
def broker() -> Iterator:
    with Broker.in_thread(prometheus_port=0, vhosts=["other"]) as b:
        yield b


def scrape(broker, path: str = "/metrics") -> Scrape:
    status, headers, body = get(f"http://127.0.0.1:{broker.prometheus_port}{path}")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4"
    return Scrape(body.decode("utf-8"))


@pytest.fixture
def connection(broker) -> Iterator[pika.BlockingConnection]:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    yield conn
    if conn.is_open:
        conn.close()


# ---------------------------------------------------------------------- counting


def test_message_counters_move_by_what_the_clients_did(broker, connection):
    before = scrape(broker)
    ch = connection.channel()
    ch.confirm_delivery()
    ch.queue_declare("counted")
    for _ in range(5):
        ch.basic_publish("", "counted", b"m")  # confirmed one by one
    plain = connection.channel()
    plain.basic_publish("", "nowhere", b"dropped")
    plain.basic_publish("", "nowhere", b"dropped")
    returned = []
    plain.add_on_return_callback(lambda *a: returned.append(a))
    plain.basic_publish("", "nowhere", b"returned", mandatory=True)
    connection.process_data_events(time_limit=0)

    assert ch.basic_get("counted", auto_ack=True)[0] is not None  # get, auto ack
    method, _, _ = ch.basic_get("counted")  # get, manual ack ...
    ch.basic_nack(method.delivery_tag, requeue=True)  # ... back to the head
    method, _, _ = ch.basic_get("counted")  # get, manual ack: the redelivered one
    assert method.redelivered
    ch.basic_ack(method.delivery_tag)
    taken = 0
    for method, _, _ in ch.consume("counted", inactivity_timeout=5):  # consume, manual ack
        ch.basic_ack(method.delivery_tag)
        taken += 1
        if taken == 3:
            break
    ch.cancel()
    assert ch.basic_get("counted") == (None, None, None)  # get-empty
    ch.queue_declare("counted-auto")
    ch.basic_publish("", "counted-auto", b"a")
    ch.basic_publish("", "counted-auto", b"b")
    got = 0
    for _method, _, _ in ch.consume("counted-auto", auto_ack=True, inactivity_timeout=5):
        got += 1
        if got == 2:
            break
    ch.cancel()
    while not returned:
        connection.process_data_events(time_limit=0.1)
    after = scrape(broker)

    def moved(name: str) -> float:
        return after.g(name) - before.g(name)

    assert moved("received") == 10  # 5 + 3 unroutable + 2
    assert moved("received_confirm") == 7
    assert moved("confirmed") == 7
    assert moved("routed") == 7
    assert moved("unroutable_dropped") == 2
    assert moved("unroutable_returned") == 1
    assert moved("delivered_get_auto_ack") == 1
    assert moved("delivered_get_manual_ack") == 2
    assert moved("delivered_consume_manual_ack") == 3
    assert moved("delivered_consume_auto_ack") == 2
    assert moved("delivered") == 8
    assert moved("get_empty") == 1
    assert moved("redelivered") == 1
    assert moved("acknowledged") == 4
    # churn: two channels, two queues (the connection was open before)
    for name, n in (("rabbitmq_connections_opened_total", 0), ("rabbitmq_channels_opened_total", 2),
                    ("rabbitmq_queues_declared_total", 2), ("rabbitmq_queues_created_total", 2)):
        assert after.value(name) - before.value(name) == n, name
    # the same figures per live channel, summed (RabbitMQ's channel_* families)
    assert after.value("rabbitmq_channel_messages_published_total") >= 10
    assert after.value("rabbitmq_channel_messages_confirmed_total") >= 7


def test_counts_of_closed_channels_and_connections_stay_in_the_totals(broker):
    before = scrape(broker)
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)
    ch.basic_publish("", "nowhere", b"x")
    ch.close()
    conn.close()
    after = scrape(broker)
    assert after.g("received") - before.g("received") == 1
    assert after.g("unroutable_dropped") - before.g("unroutable_dropped") == 1
    for name, n in (("rabbitmq_connections_opened_total", 1),
                    ("rabbitmq_connections_closed_total", 1),
                    ("rabbitmq_channels_opened_total", 1), ("rabbitmq_channels_closed_total", 1),
                    ("rabbitmq_queues_created_total", 1), ("rabbitmq_queues_deleted_total", 1)):
        assert after.value(name) - before.value(name) == n, name


def test_dead_lettering_is_counted_by_reason_and_strategy(broker, connection):
    before = scrape(broker)
    ch = connection.channel()
    ch.queue_declare("dl-target")
    ch.queue_declare("dl-source", arguments={"x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": "dl-target"})
    ch.queue_declare("dl-capped", arguments={"x-max-length": 1})  # no DLX: dropped
    ch.basic_publish("", "dl-source", b"r")
    ch.basic_publish("", "dl-capped", b"1")
    ch.basic_publish("", "dl-capped", b"2")  # drops the head
    method, _, _ = ch.basic_get("dl-source")
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.queue_declare("dl-target", passive=True)
    after = scrape(broker)

    def moved(reason: str, strategy: str) -> float:
        name = f"rabbitmq_global_messages_dead_lettered_{reason}_total"
        labels = {"queue_type": "rabbit_classic_queue", "dead_letter_strategy": strategy}
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("rejected", "at_most_once") == 1
    assert moved("maxlen", "disabled") == 1
    assert moved("maxlen", "at_most_once") == 0
    assert moved("expired", "disabled") == 0
    assert ch.basic_get("dl-target", auto_ack=True)[2] == b"r"
    for q in ("dl-target", "dl-source", "dl-capped"):
        ch.queue_delete(q)


def test_gauges_and_per_object_series_show_each_queue_and_channel(broker, connection):
    ch = connection.channel()
    ch.queue_declare("gauge-q")
    ch.queue_declare("gauge-q", passive=True)
    for i in range(4):
        ch.basic_publish("", "gauge-q", str(i).encode())
    other = pika.BlockingConnection(pika.URLParameters(broker.url_for("other")))
    try:
        och = other.channel()
        och.queue_declare("gauge-q")  # the same name in another vhost
        och.basic_publish("", "gauge-q", b"elsewhere")
        ch.basic_qos(prefetch_count=3)
        seen = []
        ch.basic_consume("gauge-q", lambda c, m, p, b: seen.append(m.delivery_tag))
        while len(seen) < 3:
            connection.process_data_events(time_limit=0.1)
        per = scrape(broker, "/metrics/per-object")
        agg = scrape(broker)
        q = {"vhost": "/", "queue": "gauge-q"}
        assert per.value("rabbitmq_queue_messages_ready", **q) == 1
        assert per.value("rabbitmq_queue_messages_unacked", **q) == 3
        assert per.value("rabbitmq_queue_messages", **q) == 4
        assert per.value("rabbitmq_queue_consumers", **q) == 1
        assert per.value("rabbitmq_queue_messages_ready", vhost="other", queue="gauge-q") == 1
        # the aggregate is the sum over queues, and is not labelled by queue
        ready = sum(v for (name, _), v in per.samples.items()
                    if name == "rabbitmq_queue_messages_ready")
        assert agg.value("rabbitmq_queue_messages_ready") == ready
        assert agg.value("rabbitmq_queues") == sum(
            1 for (name, _) in per.samples if name == "rabbitmq_queue_messages_ready")
        # this channel: one consumer, three unacked, prefetch 3
        mine = [dict(labels) for (name, labels), v in per.samples.items()
                if name == "rabbitmq_channel_consumers" and v == 1]
        assert len(mine) == 1
        chan = mine[0]["channel"]
        assert per.value("rabbitmq_channel_messages_unacked", channel=chan) == 3
        assert per.value("rabbitmq_consumer_prefetch", channel=chan) == 3
        assert agg.value("rabbitmq_global_consumers", protocol="amqp091") >= 1
        assert agg.value("rabbitmq_connections") >= 2
        # each connection its own series, under RabbitMQ's label "channel" (a pid there)
        conns = [dict(labels)["channel"] for (name, labels) in per.samples
                 if name == "rabbitmq_connection_incoming_bytes_total"]
        assert len(conns) == len(set(conns)) == agg.value("rabbitmq_connections")
        ch.basic_cancel(ch.consumer_tags[0])
        och.queue_delete("gauge-q")
    finally:
        other.close()
    ch.queue_delete("gauge-q")


def test_identity_and_node_figures(broker):
    s = scrape(broker)
    ident = next(iter(s.families["rabbitmq_identity_info"].samples)).labels
    assert ident["rabbitmq_node"].startswith("leveret@")
    assert ident["rabbitmq_cluster"] == "leveret"
    assert ident["rabbitmq_cluster_permanent_id"].startswith("rabbitmq-cluster-id-")
    assert ident["rabbitmq_endpoint"] == "aggregated"
    per = next(iter(scrape(broker, "/metrics/per-object").families[
        "rabbitmq_identity_info"].samples)).labels
    assert per["rabbitmq_endpoint"] == "per-object"
    assert per["rabbitmq_cluster_permanent_id"] == ident["rabbitmq_cluster_permanent_id"]
    build = next(iter(s.families["rabbitmq_build_info"].samples)).labels
    assert build["rabbitmq_version"] == "3.10.8"
    with open("/proc/self/status") as f:  # the broker runs in this process
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    rss = s.value("rabbitmq_process_resident_memory_bytes")
    assert 0.5 * rss_kib * 1024 < rss < 2 * rss_kib * 1024
    assert 0 < s.value("rabbitmq_process_open_fds") <= s.value("rabbitmq_process_max_fds")
    assert s.value("rabbitmq_disk_space_available_bytes") > 0
    assert s.value("rabbitmq_resident_memory_limit_bytes") > 0
    assert s.value("rabbitmq_erlang_uptime_seconds") > 0


def test_dashboard_metrics_are_all_there(broker):
    names = set(scrape(broker).families)
    assert [n for n in DASHBOARD if n not in names] == []


# ---------------------------------------------------------------------- HTTP


def test_http_answers_as_rabbitmq_prometheus(broker):
    base = f"http://127.0.0.1:{broker.prometheus_port}"
    status, headers, body = get(base + "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert b"rabbitmq_identity_info{" in gzip.decompress(body)
    status, headers, body = get(base + "/metrics", method="HEAD")
    assert status == 200 and body == b""
    status, headers, _ = get(base + "/metrics", method="POST")
    assert status == 405 and headers["allow"] == "HEAD, GET, OPTIONS"
    status, _, body = get(base + "/metrics/nothing")
    assert status == 404 and body == b"Unknown Registry"


def test_off_unless_asked_and_an_ephemeral_port_when_zero():
    with Broker.in_thread() as b:
        assert b.prometheus_port is None
    with Broker.in_thread(prometheus_port=0, management_port=0) as b:
        assert b.prometheus_port not in (None, 0, b.management_port)
        status, _, _ = get(f"http://127.0.0.1:{b.prometheus_port}/metrics")
        assert status == 200


def test_cli_serves_metrics_and_turns_them_off():
    from _proc import LeveretProcess

    with LeveretProcess("--prometheus-port", "0") as proc:
        line = proc.wait_for(r".*Prometheus metrics: HTTP \(non-TLS\) listener started on "
                             r"port \d+")
        port = int(line.rsplit(" ", 1)[1])
        proc.wait_for(r".*rabbitmq_prometheus.*")
        status, _, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"rabbitmq_queues 0" in body
    with LeveretProcess("--no-prometheus") as proc:
        proc.wait_for(r".*Server startup complete.*")
        assert not any("Prometheus" in line for line in proc.lines)


# ---------------------------------------------------------------------- against RabbitMQ


@pytest.fixture(scope="module")
def rabbitmq_metrics() -> Scrape:
    try:
        status, _, body = get(RABBITMQ_METRICS)
    except OSError:
        pytest.skip("no RabbitMQ with rabbitmq_prometheus on 127.0.0.1:15692")
    if status != 200:
        pytest.skip(f"RabbitMQ's /metrics answered {status}")
    return Scrape(body.decode("utf-8"))


# labels Leveret adds: RabbitMQ 3.13+ adds rabbitmq_endpoint to identity_info, and
# build_info has product_name/product_version when a product name is configured
EXTRA_LABELS = {"rabbitmq_identity_info": {"rabbitmq_endpoint"},
                "rabbitmq_build_info": {"product_name", "product_version"}}


def test_names_types_help_and_labels_match_rabbitmq(broker, rabbitmq_metrics):
    ours = scrape(broker)
    theirs = rabbitmq_metrics
    missing = [n for n in ours.families if n not in theirs.families]
    assert missing == []
    for name, family in ours.families.items():
        ref = theirs.families[name]
        assert (family.type, family.documentation) == (ref.type, ref.documentation), name
        if ref.samples and family.samples:
            want = {frozenset(s.labels) for s in ref.samples}
            got = {frozenset(set(s.labels) - EXTRA_LABELS.get(name, set()))
                   for s in family.samples}
            assert got == want, name
    # and the dashboard's metrics are RabbitMQ's own
    assert [n for n in DASHBOARD if n not in theirs.families] == []


def test_text_format_is_the_same_shape_as_rabbitmqs(broker, rabbitmq_metrics):
    # TYPE before HELP for each family, as RabbitMQ writes them
    lines = scrape(broker).text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            assert lines[i - 1].startswith("# TYPE " + line.split()[2] + " ")
    assert rabbitmq_metrics.text.splitlines()[0].startswith("# TYPE ")


def test_a_busy_port_fails_the_start(broker):
    with pytest.raises(OSError):
        with Broker.in_thread(prometheus_port=broker.prometheus_port):
            pass


def test_pika_traffic_during_scrapes_is_unharmed(broker, connection):
    # scrapes walk live queues and channels: a scrape between publishes changes nothing
    ch = connection.channel()
    ch.queue_declare("scraped", exclusive=True)
    for i in range(20):
        ch.basic_publish("", "scraped", str(i).encode())
        if i % 5 == 0:
            scrape(broker, "/metrics/per-object")
    bodies = []
    for _ in range(20):
        _, _, body = ch.basic_get("scraped", auto_ack=True)
        bodies.append(int(body))
    assert bodies == list(range(20))

"""AMQPS as RabbitMQ's (rabbitmq.com/docs/ssl): a TLS listener with ssl_options (certificate,
key, CA, verify, fail_if_no_peer_cert), TLS 1.2 and later only, and the EXTERNAL mechanism with
a client certificate (rabbitmq_auth_mechanism_ssl). pika and aio-pika connect with certificates
the tests make with the openssl command line (tlscerts.py); skipped without openssl."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import commands as spec

from _proc import LeveretProcess, run_leveret
from leveret import Broker
from leveret.broker import ThreadedBroker
from leveret.tls import TLSOptions
from tlscerts import Certificates, have_openssl, make_certificates

from apiclient import API
from rawamqp import PROTOCOL_HEADER, RawClient

pytestmark = [pytest.mark.leveret_only,
              pytest.mark.skipif(not have_openssl(), reason="no openssl command to make "
                                                            "certificates with")]

GUEST_DN = "CN=guest,O=leveret-tests"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def options(certs: Certificates, **kw) -> TLSOptions:
    return TLSOptions(certfile=certs.server_cert, keyfile=certs.server_key,
                      cacertfile=certs.ca, port=0, **kw)


@pytest.fixture
def tls_broker(certs: Certificates) -> Iterator[ThreadedBroker]:
    """verify_peer, client certificates optional: what RabbitMQ's TLS guide configures."""
    with Broker.in_thread(tls=options(certs, verify="verify_peer"),
                          management_port=0) as broker:
        yield broker


def client_context(certs: Certificates, client: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.ca)
    if client is not None:
        ctx.load_cert_chain(*certs.client(client))
    return ctx


def pika_params(broker, ctx: ssl.SSLContext, external: bool = False) -> pika.ConnectionParameters:
    credentials = (pika.credentials.ExternalCredentials() if external
                   else pika.PlainCredentials("guest", "guest"))
    return pika.ConnectionParameters("localhost", broker.tls_port, credentials=credentials,
                                     ssl_options=pika.SSLOptions(ctx, "localhost"),
                                     connection_attempts=1)


def start_frame(port: int, ctx: ssl.SSLContext | None) -> tuple[spec.Connection.Start, RawClient]:
    """connection.start as a raw client on ``port`` sees it (over TLS with ``ctx``)."""
    client = RawClient("127.0.0.1", port)
    if ctx is not None:
        client.sock = ctx.wrap_socket(client.sock, server_hostname="localhost")
    client.send(PROTOCOL_HEADER)
    _, start = client.recv_until(spec.Connection.Start)
    return start, client


def roundtrip(conn: pika.BlockingConnection, body: bytes = b"over tls") -> bytes:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, body)
    for method, _props, got in ch.consume(q, auto_ack=True, inactivity_timeout=10):
        assert method is not None, "nothing delivered"
        return got
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- clients over TLS


def test_pika_over_tls_without_a_client_certificate(certs, tls_broker):
    conn = pika.BlockingConnection(pika_params(tls_broker, client_context(certs)))
    assert roundtrip(conn) == b"over tls"
    big = bytes(range(256)) * 8192  # 2 MiB: many reads through the TLS transport
    assert roundtrip(conn, big) == big
    api = API(tls_broker.management_url)
    [info] = [c for c in api.json("GET", "/api/connections")
              if c["port"] == tls_broker.tls_port]
    assert info["ssl"] is True
    assert info["ssl_protocol"] in ("tlsv1.2", "tlsv1.3")
    assert info["auth_mechanism"] == "PLAIN"
    assert info["peer_cert_subject"] is None
    assert info["ssl_cipher"] and info["ssl_hash"]
    conn.close()
    # the plain port is still there, and its connections say they are not TLS
    plain = pika.BlockingConnection(pika.URLParameters(tls_broker.url))
    assert roundtrip(plain) == b"over tls"
    [info] = [c for c in api.json("GET", "/api/connections") if c["port"] == tls_broker.port]
    assert (info["ssl"], info["ssl_protocol"]) == (False, None)
    plain.close()


def test_external_is_offered_only_with_a_verified_client_certificate(certs, tls_broker):
    with_cert, c1 = start_frame(tls_broker.tls_port, client_context(certs, "guest"))
    without, c2 = start_frame(tls_broker.tls_port, client_context(certs))
    plain, c3 = start_frame(tls_broker.port, None)
    assert with_cert.mechanisms.split() == ["PLAIN", "AMQPLAIN", "EXTERNAL"]
    assert without.mechanisms.split() == ["PLAIN", "AMQPLAIN"]
    assert plain.mechanisms.split() == ["PLAIN", "AMQPLAIN"]
    for c in (c1, c2, c3):
        c.close()


def test_pika_external_login_takes_the_certificates_distinguished_name(certs, tls_broker):
    """rabbitmq_auth_mechanism_ssl's default: the subject DN, RFC 4514 style, as the user."""
    params = pika_params(tls_broker, client_context(certs, "guest"), external=True)
    # no such user yet: refused as a failed login, with RabbitMQ's text
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL" \
        in str(info.value)
    tls_broker.add_user(GUEST_DN, None)  # no password: only a certificate logs it in
    tls_broker.set_permissions(GUEST_DN, "/")
    conn = pika.BlockingConnection(params)
    assert roundtrip(conn) == b"over tls"
    api = API(tls_broker.management_url)
    [info] = [c for c in api.json("GET", "/api/connections") if c["user"] == GUEST_DN]
    assert info["auth_mechanism"] == "EXTERNAL"
    assert info["peer_cert_subject"] == GUEST_DN
    assert info["peer_cert_issuer"] == "CN=Leveret Test CA,O=leveret-tests"
    assert " - " in info["peer_cert_validity"]
    conn.close()


async def test_aio_pika_external_login_with_common_name(certs):
    """``ssl_cert_login_from = common_name``: the certificate's CN is the user (guest)."""
    async with Broker(tls=options(certs, verify="verify_peer", login_from="common_name")
                      ) as broker:
        url = f"amqps://localhost:{broker.tls_port}/?auth=external"
        conn = await aio_pika.connect(url, ssl_context=client_context(certs, "guest"))
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue(exclusive=True)
            await ch.default_exchange.publish(aio_pika.Message(b"by certificate"), q.name)
            message = await q.get(timeout=10)
            assert message.body == b"by certificate"
            await message.ack()
        # a certificate whose CN names no user is refused
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(url, ssl_context=client_context(certs, "stranger"))


async def test_aio_pika_plain_login_over_tls(certs):
    async with Broker(tls=options(certs)) as broker:
        conn = await aio_pika.connect(f"amqps://guest:guest@localhost:{broker.tls_port}/",
                                      ssl_context=client_context(certs))
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue(exclusive=True)
            await ch.default_exchange.publish(aio_pika.Message(b"x" * 300_000), q.name)
            message = await q.get(timeout=10)
            assert message.body == b"x" * 300_000


def test_external_without_a_certificate_is_an_invalid_mechanism(certs, tls_broker):
    """A client choosing EXTERNAL where it was not offered: rabbit_reader's command_invalid
    before tuning, which closes the socket."""
    for port, ctx in ((tls_broker.tls_port, client_context(certs)), (tls_broker.port, None)):
        _, client = start_frame(port, ctx)
        client.send_method(0, spec.Connection.StartOk(
            client_properties={}, mechanism="EXTERNAL", response="", locale="en_US"))
        assert client.read_to_eof() == b""
        client.close()
    # the broker goes on
    conn = pika.BlockingConnection(pika_params(tls_broker, client_context(certs)))
    conn.close()


# ---------------------------------------------------------------- verification


def test_a_certificate_from_another_ca_is_refused(certs, tls_broker):
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika_params(tls_broker, client_context(certs, "rogue")))
    # others go on
    conn = pika.BlockingConnection(pika_params(tls_broker, client_context(certs, "guest")))
    assert roundtrip(conn) == b"over tls"
    conn.close()


def test_fail_if_no_peer_cert_refuses_clients_without_one(certs):
    with Broker.in_thread(tls=options(certs, verify="verify_peer",
                                      fail_if_no_peer_cert=True)) as broker:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika_params(broker, client_context(certs)))
        conn = pika.BlockingConnection(pika_params(broker, client_context(certs, "guest")))
        assert roundtrip(conn) == b"over tls"
        conn.close()


def test_verify_none_asks_for_no_certificate(certs):
    with Broker.in_thread(tls=options(certs)) as broker:  # verify_none: the default
        start, client = start_frame(broker.tls_port, client_context(certs, "guest"))
        assert "EXTERNAL" not in start.mechanisms.split()  # nothing verified
        client.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_2_and_later_only(certs, tls_broker):
    ctx = client_context(certs)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tls_broker.tls_port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls_sock:
            assert tls_sock.version() == "TLSv1.2"
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(certs.ca)
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with socket.create_connection(("127.0.0.1", tls_broker.tls_port)) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="localhost")


# ---------------------------------------------------------------- command line and config


def test_command_line_listener_log_line_and_api(certs):
    with LeveretProcess("--tls-port", "0", "--tls-cert", certs.server_cert, "--tls-key",
                        certs.server_key, "--management-port", "0") as proc:
        line = proc.wait_for(r".*\[info\] <0\.0\.0> started TLS \(SSL\) listener on "
                             r"127\.0\.0\.1:\d+")
        tls_port = int(line.rsplit(":", 1)[1])
        api_line = proc.wait_for(r".*Management plugin: HTTP \(non-TLS\) listener started on "
                                 r"port \d+")
        proc.started()
        api = API(f"http://127.0.0.1:{int(api_line.rsplit(' ', 1)[1])}")
        listeners = api.json("GET", "/api/overview")["listeners"]
        [ssl_listener] = [x for x in listeners if x["protocol"] == "amqp/ssl"]
        assert ssl_listener["port"] == tls_port
        assert ssl_listener["socket_opts"]["certfile"] == certs.server_cert
        assert api.get(f"/api/health/checks/port-listener/{tls_port}").status == 200
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "localhost", tls_port, ssl_options=pika.SSLOptions(client_context(certs),
                                                               "localhost")))
        assert roundtrip(conn) == b"over tls"
        conn.close()


def test_rabbitmq_conf_keys(certs, tmp_path):
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(
        "listeners.ssl.default = 0\n"
        f"ssl_options.cacertfile = {certs.ca}\n"
        f"ssl_options.certfile = {certs.server_cert}\n"
        f"ssl_options.keyfile = {certs.server_key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
        "ssl_cert_login_from = common_name\n")
    with LeveretProcess("--config", str(conf)) as proc:
        line = proc.wait_for(r".*started TLS \(SSL\) listener on 127\.0\.0\.1:\d+")
        proc.started()
        assert "ignored" not in proc.output()
        port = int(line.rsplit(":", 1)[1])
        params = pika.ConnectionParameters(
            "localhost", port, connection_attempts=1,
            credentials=pika.credentials.ExternalCredentials(),
            ssl_options=pika.SSLOptions(client_context(certs, "guest"), "localhost"))
        conn = pika.BlockingConnection(params)  # CN=guest is guest: common_name
        assert roundtrip(conn) == b"over tls"
        conn.close()
        with pytest.raises(pika.exceptions.AMQPConnectionError):  # fail_if_no_peer_cert
            pika.BlockingConnection(pika.ConnectionParameters(
                "localhost", port, connection_attempts=1,
                ssl_options=pika.SSLOptions(client_context(certs), "localhost")))


def test_ssl_options_without_a_listener_make_none(certs, tmp_path):
    """As RabbitMQ: ssl_options alone open no port (other plugins use them too); said once."""
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(f"ssl_options.certfile = {certs.server_cert}\n"
                    f"ssl_options.keyfile = {certs.server_key}\n")
    with LeveretProcess("--config", str(conf)) as proc:
        proc.started()
        assert "ssl_options without listeners.ssl.default: no TLS listener" in proc.output()
        assert "TLS (SSL) listener" not in proc.output()
    conf.write_text(f"listeners.ssl = none\nlisteners.ssl.default = 5671\n"
                    f"ssl_options.certfile = {certs.server_cert}\n"
                    f"ssl_options.keyfile = {certs.server_key}\n")
    with LeveretProcess("--config", str(conf)) as proc:
        proc.started()
        assert "TLS (SSL) listener" not in proc.output()


def start_up_error(args: list[str]) -> str:
    result = run_leveret(["--in-memory", "--port", "0", *args])
    assert result.returncode == 1, result.stdout
    return result.stderr


def test_start_up_errors(certs):
    cert, key = certs.server_cert, certs.server_key
    assert start_up_error(["--tls-port", "0"]) == (
        "leveret: TLS needs a certificate: give --tls-cert and --tls-key "
        "(ssl_options.certfile, ssl_options.keyfile)\n")
    assert start_up_error(["--tls-cert", cert]) == (
        "leveret: --tls-cert needs --tls-key (ssl_options.keyfile)\n")
    assert start_up_error(["--tls-cert", "/nonexistent.pem", "--tls-key", key]) == (
        "leveret: TLS certificate /nonexistent.pem: No such file or directory\n")
    other_key = certs.client("guest")[1]
    assert start_up_error(["--tls-cert", cert, "--tls-key", other_key]) == (
        f"leveret: TLS certificate {cert} and key {other_key}: key values mismatch\n")
    assert start_up_error(["--tls-cert", cert, "--tls-key", key, "--tls-verify",
                           "verify_peer"]) == (
        "leveret: verify_peer checks client certificates against a CA: give --tls-ca "
        "(ssl_options.cacertfile)\n")
    assert start_up_error(["--tls-cert", cert, "--tls-key", key, "--tls-ca",
                           cert + ".missing"]) == (
        f"leveret: TLS CA file {cert}.missing: No such file or directory\n")
    assert start_up_error(["--tls-cert", cert, "--tls-key", key, "--tls-ca", key]) == (
        f"leveret: TLS CA file {key}: no certificate or crl found\n")


def test_the_tls_port_in_use_is_a_one_line_error(certs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_leveret(["--in-memory", "--host", "127.0.0.1", "--port", "0",
                              "--tls-port", str(port), "--tls-cert", certs.server_cert,
                              "--tls-key", certs.server_key])
    assert result.returncode == 1
    assert result.stderr == (f"leveret: cannot listen on 127.0.0.1:{port} (TLS): address "
                             "already in use\n")


def test_certificate_names_as_rabbitmq_prints_them():
    from leveret.tls import distinguished_name

    subject = ((("countryName", "GB"),), (("organizationName", "Acme, Inc."),),
               (("organizationalUnitName", "a+b"), ("commonName", " client#1 ")),
               (("emailAddress", "ops@example.com"),), (("1.2.3.4", "x"),))
    assert distinguished_name(subject) == (
        "1.2.3.4=x,EMAILADDRESS=ops@example.com,OU=a\\+b+CN=\\ client#1\\ ,"
        "O=Acme\\, Inc.,C=GB")
    assert distinguished_name(((("commonName", "ключ"),),)) == "CN=\\D0\\BA\\D0\\BB\\D1\\8E\\D1\\87"


"""AMQPS: the TLS listener, its ``ssl_options`` and the EXTERNAL mechanism, as RabbitMQ's.

- ``TLSOptions``: what rabbitmq.conf's ``listeners.ssl.default`` and ``ssl_options.*`` say
  (rabbitmq.com/docs/ssl): the certificate chain and key, the CA bundle that client certificates
  are checked against, ``verify`` (``verify_none``, the Erlang default, or ``verify_peer``) and
  ``fail_if_no_peer_cert``. ``server_context`` turns them into an ``ssl.SSLContext`` taking TLS
  1.2 and 1.3 only (RabbitMQ 3.10's default versions; 1.0 and 1.1 are deprecated, RFC 8996).
- The listener is uvloop's (or asyncio's) ``create_server(ssl=...)`` in front of the same
  ``Connection`` protocol as the plain port: both loops hand decrypted bytes to a
  ``BufferedProtocol``, so the read path is the one the plain port has.
- EXTERNAL (rabbitmq_auth_mechanism_ssl): the username comes from the client's certificate,
  no password is checked, the user must exist. RabbitMQ takes the subject's distinguished name
  by default, in its RFC 4514 form (``CN=guest,O=client``: rabbit_cert_info's, the last RDN
  first, escaped), or the common name with ``ssl_cert_login_from = common_name``. It is offered
  only on a TLS connection whose client presented a certificate that was verified (RabbitMQ
  needs the plugin and an ``auth_mechanisms`` entry to offer it at all; Leveret has it on
  without configuration, so it shows it only where it can work, and PLAIN-preferring clients
  are not steered to it).

``ssl`` is imported by asyncio and uvloop whatever Leveret does, so a TLS listener adds nothing
to start-up beyond reading the certificate files (measured with ``python -X importtime``).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import AMQPConnection

log = logging.getLogger("leveret.tls")

DEFAULT_PORT = 5671  # RabbitMQ's AMQPS port
HANDSHAKE_TIMEOUT = 5.0  # s, RabbitMQ's ssl_handshake_timeout (5000 ms)
VERIFY_MODES = ("verify_none", "verify_peer")
LOGIN_FROM = ("distinguished_name", "common_name")


class TLSConfigError(Exception):
    """The TLS options cannot make a listener: a file is missing, unreadable or does not fit."""


@dataclass
class TLSOptions:
    """The AMQPS listener's settings (rabbitmq.conf ``ssl_options.*``)."""

    certfile: str
    keyfile: str
    cacertfile: str | None = None
    verify: str = "verify_none"  # the Erlang ssl default, as RabbitMQ's
    fail_if_no_peer_cert: bool = False
    port: int = DEFAULT_PORT
    host: str | None = None  # None: the broker's --host
    # EXTERNAL's username: the subject's DN (RabbitMQ's default) or its CN
    login_from: str = "distinguished_name"


def server_context(options: TLSOptions) -> ssl.SSLContext:
    """An SSLContext for the listener; ``TLSConfigError`` saying what is wrong."""
    if options.verify not in VERIFY_MODES:
        raise TLSConfigError(f"ssl_options.verify: '{options.verify}' is not verify_none or "
                             "verify_peer")
    if options.verify == "verify_peer" and not options.cacertfile:
        raise TLSConfigError("verify_peer checks client certificates against a CA: give "
                             "--tls-ca (ssl_options.cacertfile)")
    for what, path in (("certificate", options.certfile), ("key", options.keyfile),
                       ("CA file", options.cacertfile)):
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise TLSConfigError(f"TLS {what} {path}: {exc.strerror or exc}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(options.certfile, options.keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"TLS certificate {options.certfile} and key {options.keyfile}: "
                             f"{_ssl_reason(exc)}") from None
    if options.cacertfile:
        try:
            ctx.load_verify_locations(cafile=options.cacertfile)
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(f"TLS CA file {options.cacertfile}: "
                                 f"{_ssl_reason(exc)}") from None
    if options.verify == "verify_none":
        ctx.verify_mode = ssl.CERT_NONE
    elif options.fail_if_no_peer_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_OPTIONAL  # a certificate is asked for, checked if given
    return ctx


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return reason.replace("_", " ").lower()
    return getattr(exc, "strerror", None) or str(exc)


# ---------------------------------------------------------------------- per connection

def peer_certificate(conn: AMQPConnection) -> dict[str, Any] | None:
    """The client's certificate as ``ssl`` decodes it once verified; None on a plain
    connection, without a certificate, or with ``verify_none`` (nothing verified)."""
    transport = conn.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    return cert or None


def mechanisms(conn: AMQPConnection) -> str:
    """connection.start's mechanisms: EXTERNAL too where a verified client certificate is."""
    if peer_certificate(conn) is not None:
        return "PLAIN AMQPLAIN EXTERNAL"
    return "PLAIN AMQPLAIN"


def external_user(conn: AMQPConnection, login_from: str) -> str | None:
    """EXTERNAL's username from the verified client certificate; None if there is none."""
    cert = peer_certificate(conn)
    if cert is None:
        return None
    subject = cert.get("subject", ())
    if login_from == "common_name":
        names = [v for rdn in subject for k, v in rdn if k == "commonName"]
        return names[0] if names else None
    return distinguished_name(subject)


# RabbitMQ's short names for attribute types (rabbit_cert_info:format_rdn), by the long names
# Python's ssl module gives them (OpenSSL's)
_SHORT = {
    "surname": "SN", "givenName": "GIVENNAME", "initials": "INITIALS",
    "generationQualifier": "GENERATIONQUALIFIER", "commonName": "CN", "localityName": "L",
    "stateOrProvinceName": "ST", "organizationName": "O", "organizationalUnitName": "OU",
    "title": "TITLE", "countryName": "C", "serialNumber": "SERIALNUMBER",
    "pseudonym": "PSEUDONYM", "domainComponent": "DC", "emailAddress": "EMAILADDRESS",
    "streetAddress": "STREET", "userId": "UID",
}


def distinguished_name(subject: Any) -> str:
    """A subject as RabbitMQ prints it (rabbit_cert_info:format_rdn_sequence): RDNs last
    first, joined by ``,``; a multi-valued RDN's parts joined by ``+``."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    """rabbit_cert_info:escape_rdn_value: a leading space or #, a trailing space, and
    ``",+;<>\\`` get a backslash; bytes outside 32..125 of the UTF-8 form are ``\\XX``."""
    data = value.encode("utf-8")
    out = []
    for i, b in enumerate(data):
        c = chr(b)
        if i == 0 and c in " #":
            out.append("\\" + c)
        elif i == len(data) - 1 and c == " " and i > 0:
            out.append("\\ ")
        elif c in '",+;<>\\':
            out.append("\\" + c)
        elif b < 32 or b >= 126:
            out.append(f"\\{b:02X}")
        else:
            out.append(c)
    return "".join(out)


_TLS_FIELDS = ("ssl", "ssl_protocol", "ssl_cipher", "ssl_key_exchange", "ssl_hash",
               "peer_cert_subject", "peer_cert_issuer", "peer_cert_validity")


def connection_info(conn: AMQPConnection) -> dict[str, Any]:
    """The management API's TLS fields of a connection (RabbitMQ's names and forms:
    ``ssl_protocol`` ``tlsv1.3``, the peer certificate's subject, issuer and validity)."""
    transport = conn.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    out: dict[str, Any] = dict.fromkeys(_TLS_FIELDS)
    out["ssl"] = ssl_object is not None
    if ssl_object is None:
        return out
    version = ssl_object.version()
    cipher = ssl_object.cipher()
    key_exchange, bulk, mac = _suite(cipher[0] if cipher else "", version or "")
    out["ssl_protocol"] = version.lower() if version else None  # tlsv1.3, as Erlang names it
    out["ssl_cipher"], out["ssl_key_exchange"], out["ssl_hash"] = bulk, key_exchange, mac
    cert = peer_certificate(conn)
    if cert is not None:
        out["peer_cert_subject"] = distinguished_name(cert.get("subject", ()))
        out["peer_cert_issuer"] = distinguished_name(cert.get("issuer", ()))
        out["peer_cert_validity"] = f"{cert.get('notBefore')} - {cert.get('notAfter')}"
    return out


def _suite(name: str, version: str) -> tuple[str | None, str | None, str | None]:
    """(key exchange, cipher, mac) as Erlang's ``selected_cipher_suite`` names them, which is
    what RabbitMQ shows as ssl_key_exchange, ssl_cipher, ssl_hash, from OpenSSL's suite name:
    ``TLS_AES_256_GCM_SHA384`` (TLS 1.3) is ``any``, ``aes_256_gcm``, ``aead``;
    ``ECDHE-RSA-AES256-GCM-SHA384`` is ``ecdhe_rsa``, ``aes_256_gcm``, ``aead``;
    ``ECDHE-RSA-AES256-SHA384`` (CBC) is ``ecdhe_rsa``, ``aes_256_cbc``, ``sha384``. A name of
    another shape is given as the cipher."""
    if not name:
        return None, None, None
    if version == "TLSv1.3" and name.startswith("TLS_"):
        return "any", "_".join(name[4:].lower().split("_")[:-1]), "aead"
    parts = name.split("-")
    for i, part in enumerate(parts):
        if part.startswith(("AES", "CHACHA20")):
            kx = "_".join(parts[:i]).lower() or "rsa"
            rest = [p.lower() for p in parts[i:]]
            aead = any(p in ("gcm", "ccm", "poly1305") for p in rest)
            if rest[-1].startswith("sha") and (aead or len(rest) > 1):
                mac, rest = rest[-1], rest[:-1]
            else:
                mac = "sha"
            bulk = "_".join(rest).replace("aes128", "aes_128").replace("aes256", "aes_256")
            if not aead:
                bulk += "_cbc"
            return kx, bulk, "aead" if aead else mac
    return None, name, None


def external_login(conn: AMQPConnection) -> tuple[str | None, str | None]:
    """EXTERNAL at connection.start-ok: (user, None) to let in; (name, reason) to refuse as a
    failed login (rabbit_auth_mechanism_ssl, then check_user_login: the user must exist, no
    password is checked); (None, None) where EXTERNAL was not offered."""
    if peer_certificate(conn) is None:
        return None, None
    options = conn.settings.tls
    login_from = options.login_from if options is not None else LOGIN_FROM[0]
    name = external_user(conn, login_from)
    if name is None:
        return "", "no name found"  # rabbit_auth_mechanism_ssl's words
    if conn.server.access.user(name) is None:
        return name, f"user '{name}' - invalid credentials"
    return name, None

"""The connection handshake (AMQP 0-9-1 section 2.2.4) as RabbitMQ's rabbit_reader walks it:
connection.start with RabbitMQ's server properties, start-ok (the login), tune-ok, open.

Functions of the connection (connection.AMQPConnection, compiled), kept apart from its read
loop and dispatch: none of this runs per message. The connection's states are defined here.
"""

from __future__ import annotations

import ipaddress
import logging
import platform
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import RABBITMQ_VERSION, __version__, frames, methods, tls
from .errors import ACCESS_REFUSED, NOT_ALLOWED, ConnectionError_
from .frames import FrameError
from .permissions import Authorizer

if TYPE_CHECKING:
    from pamqp.common import FieldTable

    from .connection import AMQPConnection

log = logging.getLogger("leveret.connection")

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

# the connection's states, in the order the handshake walks them
AWAIT_HEADER, AWAIT_START_OK, AWAIT_TUNE_OK, AWAIT_OPEN, OPEN, CLOSING, CLOSED = range(7)
# RabbitMQ's names for them, as its log lines say "state: running"
STATE_NAMES = ("pre_init", "starting", "tuning", "opening", "running", "closing", "closed")

SERVER_CAPABILITIES: FieldTable = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


def send_start(conn: AMQPConnection) -> None:
    """connection.start, once the protocol header has been read."""
    conn.state = AWAIT_START_OK
    conn.send_method(
        0,
        spec.Connection.Start(
            version_major=0,
            version_minor=9,
            server_properties=server_properties(conn.settings.cluster_name),
            mechanisms=tls.mechanisms(conn),  # EXTERNAL with a verified client cert
            locales="en_US",
        ),
    )


def start_ok(conn: AMQPConnection, m: spec.Connection.StartOk) -> None:
    """connection.start-ok: the client's properties, then its login (PLAIN, AMQPLAIN, or
    EXTERNAL with a verified client certificate), refused as RabbitMQ refuses it."""
    conn.client_properties = m.client_properties or {}
    if conn.client_provided_name is not None:
        log.info("connection %s (%s) has a client-provided name: %s", conn.pid, conn.name,
                 conn.client_provided_name, extra=conn._log_fields())
    conn.auth_mechanism = m.mechanism
    if m.mechanism == "EXTERNAL":
        user, reason = tls.external_login(conn)  # the client certificate's name
        if user is None and reason is None:
            refuse_mechanism(conn, m.mechanism)
            return
    else:
        user, password = credentials(m.mechanism, m.response)
        reason = None
        if user is None or conn.server.access.authenticate(user, password or "") is None:
            reason = f"user '{user or ''}' - invalid credentials"
    if reason is None and user in conn.settings.loopback_users and \
            not local_is_loopback(conn):
        # rabbit_access_control:check_user_loopback: by the address the client reached
        reason = f"user '{user}' can only connect via localhost"
    if user is None or reason is not None:
        text = (f"Login was refused using authentication mechanism {m.mechanism}. "
                "For details see the broker logfile.")
        log.error("Error on AMQP connection %s (%s, state: starting):\n"
                  "%s login refused: %s", conn.pid, conn.log_name, m.mechanism, reason,
                  extra=conn._log_fields())
        if conn.client_capability("authentication_failure_close"):
            conn.close_with_error(ACCESS_REFUSED, text, None)
        else:
            conn._abort_later()
        return
    conn.user = user
    conn.state = AWAIT_TUNE_OK
    conn.send_method(0, spec.Connection.Tune(
        channel_max=conn.settings.channel_max,
        frame_max=conn.settings.frame_max,
        heartbeat=conn.settings.heartbeat,
    ))

def refuse_mechanism(conn: AMQPConnection, mechanism: str) -> None:
    """A mechanism the server did not offer (EXTERNAL without a verified certificate):
    rabbit_reader's command_invalid before tuning, logged, and the socket closed."""
    log.error("Error on AMQP connection %s (%s, state: starting):\nCOMMAND_INVALID - "
              "invalid authentication mechanism '%s'", conn.pid, conn.log_name, mechanism,
              extra=conn._log_fields())
    conn.state, conn._close_logged = CLOSED, True
    if conn.transport is not None:
        conn.transport.close()

def local_is_loopback(conn: AMQPConnection) -> bool:
    """Whether the client reached us on a loopback address (RabbitMQ's rabbit_net:
    is_loopback looks at the socket's own address: 127.0.0.0/8, ::1, ::ffff:127.x)."""
    local = conn.transport.get_extra_info("sockname") if conn.transport else None
    if not isinstance(local, tuple):
        return isinstance(local, str)  # a Unix socket is local by nature
    try:
        address = ipaddress.ip_address(local[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback

def credentials(mechanism: str, response: Any) -> tuple[str | None, str | None]:
    """(user, password) of a PLAIN or AMQPLAIN response; (None, None) if it does not
    parse."""
    raw = response.encode("utf-8") if isinstance(response, str) else bytes(response or b"")
    if mechanism == "PLAIN":
        parts = raw.split(b"\x00")
        if len(parts) != 3:
            return None, None
        return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
    if mechanism == "AMQPLAIN":
        # the response is a field table without its length prefix (bounded as any table)
        try:
            table = methods.decode_table_entries(raw)
        except FrameError:
            return None, None
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        return (login if isinstance(login, str) else None,
                password if isinstance(password, str) else None)
    return None, None

def tune_ok(conn: AMQPConnection, m: spec.Connection.TuneOk) -> None:
    """connection.tune-ok: the negotiated frame_max, channel_max and heartbeat."""
    s = conn.settings
    check_negotiated("frame_max", m.frame_max, s.frame_max, frames.FRAME_MIN_SIZE)
    check_negotiated("channel_max", m.channel_max, s.channel_max, 1)
    frame_max = m.frame_max or s.frame_max
    channel_max = m.channel_max or s.channel_max
    conn.frame_max = frame_max
    conn.channel_max = channel_max
    conn.heartbeat = m.heartbeat
    conn.state = AWAIT_OPEN
    log.debug("connection %s (%s): tuned frame_max %d, channel_max %d, heartbeat %d s",
              conn.pid, conn.log_name, frame_max, channel_max, m.heartbeat,
              extra=conn._log_fields())
    if conn.heartbeat:
        conn._heartbeat_handle = conn.loop.call_later(conn.heartbeat / 2, conn._heartbeat_tick)

def open_vhost(conn: AMQPConnection, m: spec.Connection.Open) -> None:
    """connection.open: the virtual host, if it exists and the user may use it."""
    vhost = conn.server.vhosts.get(m.virtual_host)
    if vhost is None:
        raise ConnectionError_(NOT_ALLOWED, f"vhost {m.virtual_host} not found")
    if not conn.server.access.can_access_vhost(conn.user, m.virtual_host):
        # rabbit_access_control:check_vhost_access
        raise ConnectionError_(NOT_ALLOWED, f"access to vhost '{m.virtual_host}' refused "
                                            f"for user '{conn.user}'")
    conn.vhost = vhost
    conn.authz = Authorizer(conn.server.access, conn.user, vhost.name)
    conn.state = OPEN
    if conn._handshake_timer is not None:
        conn._handshake_timer.cancel()
        conn._handshake_timer = None
    conn.send_method(0, spec.Connection.OpenOk())
    log.info("connection %s (%s): user '%s' authenticated and granted access to vhost '%s'",
             conn.pid, conn.log_name, conn.user, vhost.name, extra=conn._log_fields())
    conn.server.connection_opened(conn)


def server_properties(cluster_name: str) -> FieldTable:
    """connection.start's server properties: RabbitMQ's, with the RabbitMQ version Leveret
    follows, so that clients take their RabbitMQ code paths (kombu picks RabbitMQ's QoS
    semantics by ``product``, Spring Boot's health check reports ``version``); Leveret names
    itself in ``platform``, ``information`` and ``leveret_version``."""
    return {
        "product": "RabbitMQ",
        "version": RABBITMQ_VERSION,
        "platform": f"Leveret {__version__} on Python {platform.python_version()}",
        "copyright": "Leveret developers",
        "information": f"Leveret {__version__}, an AMQP 0-9-1 broker in Python that stands in "
                       f"for RabbitMQ {RABBITMQ_VERSION}",
        "cluster_name": cluster_name,
        "capabilities": SERVER_CAPABILITIES,
        "leveret_version": __version__,
    }


def check_negotiated(field: str, client: int, server: int, minimum: int) -> None:
    """RabbitMQ's rabbit_reader:validate_negotiated_integer_value: a tune-ok value below the
    minimum, or 0 ("no limit") or above the server's when the server has a limit, is refused
    (530 naming connection.tune; RabbitMQ closes the socket without saying why, Leveret says)."""
    if client and client < minimum:
        raise ConnectionError_(NOT_ALLOWED, f"negotiated {field} = {client} is lower than the "
                                            f"minimum allowed value ({minimum})", (10, 30))
    if server and (client == 0 or client > server):
        detail = " (no limit)" if field == "channel_max" and client == 0 else ""
        raise ConnectionError_(NOT_ALLOWED, f"negotiated {field} = {client}{detail} is higher "
                               f"than the maximum allowed value ({server})", (10, 30))

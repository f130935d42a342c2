"""One client connection: the socket protocol, heartbeats, channel mux, closing (the
handshake is in handshake.py).

Reads land in a preallocated buffer (``asyncio.BufferedProtocol``); every complete frame of a
read is split out in one codec call. Output of every channel goes into one ``bytearray`` that is
written once per event-loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec
from pamqp.commands import INDEX_MAPPING

from . import frames, handshake
from .addresses import endpoint
from .channel import Channel
from .errors import (
    CHANNEL_ERROR,
    COMMAND_INVALID,
    CONNECTION_FORCED,
    FRAME_ERROR,
    HARD_ERRORS,
    INTERNAL_ERROR,
    NOT_ALLOWED,
    PRECONDITION_FAILED,
    REPLY_NAMES,
    UNEXPECTED_FRAME,
    AMQPError,
    ChannelError,
    ConnectionError_,
    reply_text,
)
from .frames import (
    EV_ACK,
    EV_BODY,
    EV_ERROR,
    EV_HEADER,
    EV_HEARTBEAT,
    EV_METHOD,
    EV_NACK,
    EV_PUBLISH,
    EV_REJECT,
    FrameError,
)
from .handshake import AWAIT_HEADER as _AWAIT_HEADER
from .handshake import AWAIT_OPEN as _AWAIT_OPEN
from .handshake import AWAIT_START_OK as _AWAIT_START_OK
from .handshake import AWAIT_TUNE_OK as _AWAIT_TUNE_OK
from .handshake import CLOSED as _CLOSED
from .handshake import CLOSING as _CLOSING
from .handshake import OPEN as _OPEN
from .handshake import PROTOCOL_HEADER
from .handshake import STATE_NAMES as _STATE_NAMES
from .logs import pid_of

if TYPE_CHECKING:

    from .message import Message
    from .permissions import Authorizer
    from .server import Server
    from .vhost import VirtualHost

log = logging.getLogger("leveret.connection")

# The read buffer starts small, so an idle or unauthenticated connection costs a few KiB; it
# doubles while reads fill it (up to _BUF_BUSY, or more while one frame needs more room) and
# drops back once a read leaves nothing pending and was small for it.
_BUF_MIN = 4096
_BUF_BUSY = 65536
# Bytes of frames one connection may have handled per loop turn: what it read beyond them
# waits (its socket unread meanwhile) for the next turn, after every other connection had its
# own. One client publishing flat out cannot starve the rest, as RabbitMQ's credit flow keeps
# one reader from hogging the node (rabbitmq.com/docs/flow-control). 16 KiB of small messages
# is about a millisecond of work.
READ_BUDGET = 16384
# body frames at least this large (payload bytes) are read straight into the message's bytes
DIRECT_BODY = 32768
# A body read in place has this many bytes of room past its payload (frames.body_buffer), so
# one read takes the rest of the body, its frame-end octet and the next publish's method,
# content header and body frame header; and a read after an in-place body that did not get
# that far is offered only this many bytes. Either way the next large body is read in place too
# rather than mostly into the read buffer and copied from there (64 KiB bodies: the copy was 5%
# of the broker's CPU), one read a message. Anything else (small messages, a header table
# larger than this) ends the run: those are read into the buffer as ever.
_DIRECT_PEEK = 512
# Read pacing. A client writing a few small messages per send() as fast as it can, to a broker
# that keeps up with it, gets read a few messages at a time: every send wakes the broker, every
# read frees room that wakes the client, every delivery written wakes the consumer. On this
# 2-core machine that lockstep cost no-ack throughput 2-3x (perf/README.md, read pacing). So a
# read smaller than PACE_BELOW bytes from a connection that has been sending faster than
# PACE_RATE bytes/s (averaged over about PACE_WINDOW seconds) leaves its socket unread for one
# timer tick (PACE_DELAY): what it sends meanwhile is read in one go, a few KiB later. A client
# below that rate (10k small messages/s is ~1 MB/s), or sending larger writes, is never paced,
# so it keeps its latency; a paced one waits at most PACE_DELAY more. Nor is a read that carried
# publishes in confirm mode: that client sends as confirms come back (a window of them), and a
# pause would hold it to a window a tick (ambench -c 100: 0.89x without this).
PACE_BELOW = 1024
PACE_RATE = 8e6
PACE_WINDOW = 0.001
PACE_DELAY = 0.001
_FRAME_SIZE = struct.Struct(">I")
_BODY_FRAME_HEAD = struct.Struct(">BHI")  # frame type, channel, size





class AMQPConnection:
    """The AMQP 0-9-1 server side of one TCP connection: everything but being an asyncio
    protocol (``Connection`` below), so that it compiles to a C struct (connection.pxd)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.settings = server.settings
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.state = _AWAIT_HEADER
        self.buf = bytearray(_BUF_MIN)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self._grow = False  # the last read filled the buffer: offer more room next time
        self._yielded = False  # bytes beyond READ_BUDGET wait for the next loop turn
        # a large body frame whose payload is read in place (_read_direct): its bytes, a
        # writable view of them while reading, how much is in, its channel
        self._body: Any = None
        self._body_view: memoryview | None = None
        self._body_fill = 0
        self._body_size = 0
        self._body_channel = 0
        self._direct_next = False  # the last read ended in a large body frame: peek (above)
        self.out = bytearray()
        # what goes out before ``out``: earlier output buffers and the large bodies between
        # them, written from the messages themselves (write_body), all in one writelines
        self._pieces: list[Any] = []
        self.writable = True
        self._flush_scheduled = False
        self._confirm_channels: set[Channel] = set()
        # until connection.tune-ok, frames are at most 4096 bytes, as RabbitMQ takes them
        # (rabbit_reader: frame_too_large): an unauthenticated peer cannot send more at once
        self.frame_max = frames.FRAME_MIN_SIZE
        self.channel_max = self.settings.channel_max
        self.heartbeat = 0
        self.channels: dict[int, Channel] = {}
        self.closing_channels: set[int] = set()
        self.vhost: VirtualHost | None = None
        self.user = ""
        self.authz: Authorizer | None = None  # the user's permissions on the vhost, at open
        self.client_properties: dict[str, Any] = {}
        self.auth_mechanism = "PLAIN"
        self.exclusive_queues: set[str] = set()
        self.peer = ""
        self.local = ""
        self.number = server.connection_number()
        self.pid = pid_of(self.number)  # its "<0.N.0>" in log lines
        self._accepted_logged = False
        self._close_logged = False
        self.last_read = time.monotonic()
        self.read_rate = 0.0  # bytes/s read lately (_paced)
        self._wrote_since_tick = False
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.blocked = False
        self.closed = asyncio.Event()
        self.connected_at = time.time()
        # socket counters for the management API (RabbitMQ's recv_oct/cnt, send_oct/cnt)
        self.recv_oct = 0
        self.recv_cnt = 0
        self.send_oct = 0
        self.send_cnt = 0

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = endpoint(transport.get_extra_info("peername"))
        self.local = endpoint(transport.get_extra_info("sockname"))
        self.server.connections.add(self)
        # a client that never finishes the handshake is dropped (RabbitMQ: handshake_timeout 10s)
        self._handshake_timer = self.loop.call_later(
            self.settings.handshake_timeout, self._handshake_timeout
        )

    # ------------------------------------------------------------------ naming and logging

    @property
    def name(self) -> str:
        """RabbitMQ's name for a connection: ``"127.0.0.1:35372 -> 127.0.0.1:5672"``."""
        return f"{self.peer} -> {self.local}"

    @property
    def client_provided_name(self) -> str | None:
        """The ``connection_name`` client property, if the client gave one."""
        name = self.client_properties.get("connection_name")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return name if isinstance(name, str) else None

    @property
    def log_name(self) -> str:
        """The name RabbitMQ logs: with `` - <client-provided name>`` once it is known."""
        provided = self.client_provided_name
        return self.name if provided is None else f"{self.name} - {provided}"

    def _log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"pid": self.pid, "connection": self.name}
        if self.user:
            fields["user"] = self.user
        if self.vhost is not None:
            fields["vhost"] = self.vhost.name
        if self.client_provided_name is not None:
            fields["connection_name"] = self.client_provided_name
        return fields

    def _log_ids(self, with_name: bool = True) -> str:
        """``name, vhost: '/', user: 'guest'`` as RabbitMQ writes it in its log lines (vhost
        'none' for a user whose connection.open failed)."""
        text = self.log_name if with_name else self.name
        if self.user:
            vhost = self.vhost.name if self.vhost is not None else "none"
            text += f", vhost: '{vhost}', user: '{self.user}'"
        return text

    def _log_closing(self) -> None:
        if not self._close_logged:
            self._close_logged = True
            log.info("closing AMQP connection %s (%s)", self.pid, self._log_ids(),
                     extra=self._log_fields())

    def _log_accepted(self, level: int = logging.INFO) -> None:
        # RabbitMQ logs a connection once its first bytes arrive: a TCP health check that
        # connects and closes without a word stays out of the log (at debug level)
        if not self._accepted_logged:
            self._accepted_logged = True
            log.log(level, "accepting AMQP connection %s (%s)", self.pid, self.name,
                    extra=self._log_fields())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._accepted_logged:
            self._log_accepted(logging.DEBUG)
        elif self.state < _CLOSING:
            # RabbitMQ: warning, "client unexpectedly closed TCP connection"
            log.warning("closing AMQP connection %s (%s):\n"
                        "client unexpectedly closed TCP connection",
                        self.pid, self._log_ids(), extra=self._log_fields())
        else:
            self._log_closing()  # after an error we sent, or a close either side began
        self.state = _CLOSED
        self._end_body_view()
        self.server.connections.discard(self)
        for timer in (self._heartbeat_handle, self._handshake_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._release_all()
        self.server.connection_gone(self)
        self.closed.set()

    def _release_all(self) -> None:
        """Close every channel (unacked messages requeued) and delete the exclusive queues;
        done when the connection is closed, before the socket may be (idempotent)."""
        self.writable = False  # requeued messages must not be handed to our other channels
        for ch in list(self.channels.values()):
            ch.release()
        self.channels.clear()
        if self.vhost is not None:
            self.vhost.memory.forget(self)
            self.vhost.connection_closed(self)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        for ch in list(self.channels.values()):
            ch.writable_again()

    def get_buffer(self, sizehint: int) -> memoryview:
        body_view = self._body_view
        if body_view is not None:  # a large body frame's payload: read into the message
            return body_view[self._body_fill :]
        if self._direct_next and self.start == self.end:
            self.start = self.end = 0
            return self.view[:_DIRECT_PEEK]
        size = len(self.buf)
        if self._grow or size - self.end < size // 4:
            self._make_room()
        return self.view[self.end :]

    def _make_room(self) -> None:
        """Move the pending bytes to the front; double the buffer while reads fill it (up to
        _BUF_BUSY) or while a partial frame takes more than half of it."""
        pending = self.end - self.start
        size = len(self.buf)
        if (self._grow and size < _BUF_BUSY) or pending > size // 2:
            self._resize(size * 2)
        elif self.start:
            # same-length slice assignment: allowed while the memoryview is exported
            self.buf[0:pending] = bytes(self.view[self.start : self.end])
            self.start, self.end = 0, pending
        self._grow = False

    def _resize(self, size: int) -> None:
        """A new buffer of ``size`` bytes holding the pending bytes at its front (a new object:
        the old one may still be exported to the transport)."""
        pending = self.end - self.start
        fresh = bytearray(size)
        fresh[0:pending] = self.view[self.start : self.end]
        self.view.release()
        self.buf, self.view = fresh, memoryview(fresh)
        self.start, self.end = 0, pending

    def buffer_updated(self, nbytes: int) -> None:
        if self._body_view is not None:
            self._body_read(nbytes)
            return
        self.end += nbytes
        filled = self.end == len(self.buf)
        self._grow = filled
        self.recv_oct += nbytes
        self.recv_cnt += 1
        now = time.monotonic()
        elapsed = now - self.last_read
        self.last_read = now
        if self.state == _CLOSED:
            # after close-ok, what the client still sends is discarded until it closes the
            # socket (RabbitMQ's reader in its "closed" state)
            self.start = self.end = 0
            return
        peeked = self._direct_next
        self._direct_next = False  # _read_slice sets it again if a large body follows
        self._read_slice()
        if self.start == self.end:
            self.start = self.end = 0
            size = len(self.buf)
            if (size > _BUF_MIN and not filled and nbytes * 8 <= size and not peeked
                    and not self._direct_next):
                self._resize(_BUF_MIN)  # a small read drained the socket: traffic is light
        transport = self.transport
        if (self._paced(nbytes, elapsed) and not peeked and transport is not None
                and not transport.is_closing()):
            self._yielded = True  # _next_turn reads again: as after a READ_BUDGET yield
            transport.pause_reading()
            self.loop.call_later(PACE_DELAY, self._next_turn)

    def _paced(self, nbytes: int, elapsed: float) -> bool:
        """Update the read rate with this read; whether to pause reading (see PACE_BELOW)."""
        weight = elapsed / PACE_WINDOW if elapsed < PACE_WINDOW else 1.0
        if elapsed < 1e-6:
            elapsed = 1e-6
        self.read_rate += (nbytes / elapsed - self.read_rate) * weight
        return (nbytes < PACE_BELOW and self.read_rate > PACE_RATE and self.state == _OPEN
                and not self._yielded and not self.blocked and not self._confirm_channels)

    def _body_read(self, nbytes: int) -> None:
        """Bytes of a large body frame's payload arrived, in place (see _read_direct), perhaps
        with what follows it: the view has _DIRECT_PEEK bytes of room beyond the payload, so
        one read takes the rest of a body and the next publish's frames up to its body."""
        self._body_fill += nbytes
        self.recv_oct += nbytes
        self.recv_cnt += 1
        self.last_read = time.monotonic()
        over = self._body_fill - self._body_size
        if over < 0:
            return
        if over:  # the frame-end octet and what came after it go to the (empty) read buffer
            view = self._body_view
            assert view is not None
            self.buf[0:over] = view[self._body_size : self._body_fill]
            self.start, self.end = 0, over
        self._end_body_view()
        if over:
            if self.state == _CLOSED:
                self.start = self.end = 0
                return
            self._read_slice()
            if self.start == self.end:
                self.start = self.end = 0

    def _end_body_view(self) -> None:
        if self._body_view is not None:
            self._body_view.release()
            self._body_view = None

    def _read_direct(self, end: int) -> None:
        """The next frame is a large body frame not yet complete: read the rest of its payload
        straight into the message's bytes (frames.body_buffer), not into the read buffer, so
        the body is copied once between the sockets; the bytes already here move there."""
        start = self.start
        size = _FRAME_SIZE.unpack_from(self.buf, start + 3)[0]
        have = end - start - 7
        self._body, self._body_view = frames.body_buffer(size, _DIRECT_PEEK)
        self._body_size = size
        self._body_view[0:have] = self.view[start + 7 : end]
        self._body_fill = have
        self._body_channel = (self.buf[start + 1] << 8) | self.buf[start + 2]
        self._direct_next = True
        self.start = self.end = 0
        if have == size:
            self._end_body_view()

    def _body_frame_end(self, start: int, end: int) -> int:
        """The payload read in place is complete: check its frame-end octet and hand the body
        on as the codec would have; returns where the next frame starts (-1: not here yet)."""
        if start == end:
            return -1
        if self.buf[start] != 0xCE:
            raise FrameError(FRAME_ERROR, "frame end octet is not 0xCE")
        body = frames.finish_body(self._body, self._body_size)
        self._body = None
        self.start = start + 1
        self._handle_events([(EV_BODY, self._body_channel, body)])
        return start + 1

    def _read_slice(self) -> None:
        """Handle the complete frames that start within the next READ_BUDGET bytes; if more
        complete frames wait, stop reading and handle them next loop turn (a partial frame
        only waits for the next read)."""
        start, end = self.start, self.end
        more = False
        try:
            if self.state == _AWAIT_HEADER:
                self._log_accepted()
                if not self._read_protocol_header():
                    return
                start = self.start
            if self._body is not None:
                start = self._body_frame_end(start, end)
                if start < 0:
                    return
            events, self.start = frames.split_frames(self.buf, start, end, self.frame_max,
                                                     READ_BUDGET)
            more = _frame_at(self.buf, self.start, end)
            if events:
                self._handle_events(events)
            if (not more and self.state == _OPEN and end - self.start >= 7
                    and self.buf[self.start] == 3 and not self._yielded
                    and _FRAME_SIZE.unpack_from(self.buf, self.start + 3)[0] >= DIRECT_BODY):
                self._read_direct(end)
        except ConnectionError_ as exc:
            self.close_with_error(exc.code, exc.text, getattr(exc, "method", "none"),
                                  getattr(exc, "channel", 0), exc.method_ids or (0, 0))
        except FrameError as exc:
            self.close_with_error(exc.reply_code, exc.text)
        except Exception:  # never let one client's bad input take the server down
            log.exception("internal error on AMQP connection %s (%s)", self.pid,
                          self._log_ids(), extra=self._log_fields())
            self.close_with_error(INTERNAL_ERROR, "internal error")
        transport = self.transport
        if (more and not self._yielded and self.state < _CLOSING
                and transport is not None and not transport.is_closing()):
            self._yielded = True
            transport.pause_reading()
            self.loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """Go on with the bytes a connection read beyond its READ_BUDGET, then read again (also
        the end of a read pause, _paced)."""
        self._yielded = False
        transport = self.transport
        if self.blocked or transport is None or transport.is_closing():
            return
        if self.state == _CLOSED:  # closed by the client: discard, and read on to its EOF
            self.start = self.end = 0
            transport.resume_reading()
            return
        self._read_slice()
        if not self._yielded:
            if self.start == self.end:
                self.start = self.end = 0
            if not self.blocked:
                transport.resume_reading()

    def trim_buffer(self) -> None:
        """Give back a large read buffer that holds nothing (an idle connection)."""
        if self.start == self.end and len(self.buf) > _BUF_MIN:
            self.start = self.end = 0
            self._resize(_BUF_MIN)

    def eof_received(self) -> bool | None:
        return None

    # ------------------------------------------------------------------ output

    def want_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def want_confirm_flush(self, channel: Channel) -> None:
        self._confirm_channels.add(channel)
        self.want_flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._confirm_channels:
            chans, self._confirm_channels = self._confirm_channels, set()
            for ch in chans:
                ch.flush_confirms(self.out)
        transport = self.transport
        if transport is None or transport.is_closing():
            self.out.clear()
            self._pieces = []
            return
        if self._pieces:
            pieces = self._pieces
            pieces.append(self.out)
            self._pieces = []
            self.out = bytearray()
            for piece in pieces:
                self.send_oct += len(piece)
            self.send_cnt += 1
            transport.writelines(pieces)  # one writev: the bodies are not copied
            self._wrote_since_tick = True
        elif self.out:
            data, self.out = self.out, bytearray()
            self.send_oct += len(data)
            self.send_cnt += 1
            transport.write(data)
            self._wrote_since_tick = True

    def write_body(self, channel_id: int, body: bytes) -> None:
        """The body frames of a large message: their headers go to ``out``, the body itself is
        handed to the transport as it is, sliced by frame_max, not copied."""
        chunk = self.frame_max - 8
        size = len(body)
        view = memoryview(body)
        out = self.out
        for off in range(0, size, chunk):
            n = min(chunk, size - off)
            out += _BODY_FRAME_HEAD.pack(3, channel_id, n)
            self._pieces.append(out)
            self._pieces.append(body if n == size else view[off : off + n])
            out = bytearray(b"\xce")
        self.out = out

    def send_method(self, channel_id: int, method: object) -> None:
        frames.encode_method(self.out, channel_id, method)
        self.want_flush()

    # ------------------------------------------------------------------ handshake

    def _read_protocol_header(self) -> bool:
        if self.end - self.start < 8:
            if bytes(self.view[self.start : self.end]) != PROTOCOL_HEADER[: self.end - self.start]:
                self._bad_header()
            return False
        header = bytes(self.view[self.start : self.start + 8])
        if header != PROTOCOL_HEADER:
            self._bad_header()
            return False
        self.start += 8
        handshake.send_start(self)
        return True

    def _bad_header(self) -> None:
        # AMQP 0-9-1 section 4.2.2: answer with the protocol header we support, then close
        assert self.transport is not None
        self.transport.write(PROTOCOL_HEADER)
        self.state = _CLOSED
        self.transport.close()

    def _handshake_timeout(self) -> None:
        if self.state < _OPEN and self.transport is not None:
            stage = "handshake" if self.state == _AWAIT_HEADER else "frame_header"
            self._log_accepted()
            log.error("closing AMQP connection %s (%s):\n{handshake_timeout,%s}", self.pid,
                      self.log_name, stage, extra=self._log_fields())
            self.state, self._close_logged = _CLOSED, True
            self.transport.abort()

    def client_capability(self, name: str) -> bool:
        caps = self.client_properties.get("capabilities")
        return bool(isinstance(caps, dict) and caps.get(name))

    def check_user_id(self, msg: Message) -> None:
        # rabbitmq.com/docs/validated-user-id: user_id must match the connection's user
        raw = msg.raw_props
        if len(raw) < 2 or not raw[1] & 0x10:  # user_id is property bit 4
            return
        uid = msg.properties.get("user_id")
        if uid is not None and uid != self.user and not self._impersonator():
            raise ChannelError(PRECONDITION_FAILED, f"user_id property set to '{uid}' but "
                                                    f"authenticated user was '{self.user}'")

    def _impersonator(self) -> bool:
        """A user tagged ``impersonator`` may publish with any user_id (rabbit_channel:
        check_user_id_header)."""
        user = self.server.access.user(self.user)
        return user is not None and "impersonator" in user.tags

    # ------------------------------------------------------------------ heartbeats

    def _heartbeat_tick(self) -> None:
        if self.state >= _CLOSING or self.transport is None:
            return
        now = time.monotonic()
        if self.blocked:
            # we are not reading a blocked connection, so its silence proves nothing (RabbitMQ
            # pauses the heartbeat monitor of a blocked connection too)
            self.last_read = now
        if now - self.last_read > 2 * self.heartbeat:
            # two missed intervals: the peer is gone (rabbitmq.com/docs/heartbeats)
            log.error("closing AMQP connection %s (%s):\n"
                      "missed heartbeats from client, timeout: %ss", self.pid, self.log_name,
                      self.heartbeat, extra=self._log_fields())
            self.state, self._close_logged = _CLOSED, True
            self.transport.abort()
            return
        if now - self.last_read > self.heartbeat / 2:
            self.trim_buffer()
        if not self._wrote_since_tick:
            frames.encode_heartbeat(self.out)
            self.want_flush()
        self._wrote_since_tick = False
        self._heartbeat_handle = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    # ------------------------------------------------------------------ frame dispatch

    def _handle_events(self, events: list[tuple]) -> None:
        channels = self.channels
        for ev in events:
            kind = ev[0]
            if self.state >= _CLOSING:
                if kind == EV_METHOD and ev[1] == 0:
                    self._connection_method(ev)
                continue
            ch_id = ev[1]
            if kind == EV_HEARTBEAT:
                continue
            if kind == EV_ERROR:
                self.close_with_error(ev[2], ev[3], "none", ch_id)
                return
            ch = channels.get(ch_id)
            if ch is None or ch.closing:
                try:
                    self._frame_outside_channel(ch, ev)
                except (ConnectionError_, FrameError) as exc:
                    self._close_for(exc, ev)
                    return
                continue
            try:
                if kind == EV_PUBLISH:
                    ch.on_publish(ev)
                elif kind == EV_HEADER:
                    ch.on_header(ev)
                elif kind == EV_BODY:
                    ch.on_body(ev)
                elif kind == EV_ACK:
                    ch.on_ack(ev)
                elif kind == EV_NACK:
                    ch.on_nack(ev)
                elif kind == EV_REJECT:
                    ch.on_reject(ev)
                else:
                    self._channel_method(ch, ev)
            except ChannelError as exc:
                if exc.code in HARD_ERRORS:
                    self._close_for(exc, ev)
                    return
                self._close_channel(ch, exc, ev)
            except (ConnectionError_, FrameError) as exc:
                self._close_for(exc, ev)
                return
        return

    def _frame_outside_channel(self, ch: Channel | None, ev: tuple) -> None:
        """A frame for channel 0, a closing channel or one not open."""
        kind, ch_id = ev[0], ev[1]
        if ch_id == 0 and kind == EV_METHOD:
            self._connection_method(ev)
            return
        if ch is not None or ch_id in self.closing_channels:
            # after channel.close only close-ok (or close) counts on that channel
            if kind == EV_METHOD and ev[2] in (_CHANNEL_CLOSE_OK, _CHANNEL_CLOSE):
                self._channel_closed(ch_id, ev[2] == _CHANNEL_CLOSE)
            return
        if kind == EV_METHOD and ev[2] == _CHANNEL_OPEN and self.state == _OPEN:
            self._open_channel(ch_id)
            return
        no_method = None if kind in _METHOD_EVENTS else (0, 0)
        if ch_id == 0:
            # RabbitMQ: "CHANNEL_ERROR - unexpected method in connection state running"
            raise ConnectionError_(CHANNEL_ERROR if kind == EV_METHOD else UNEXPECTED_FRAME,
                                   "unexpected frame on channel 0", no_method)
        if self.state != _OPEN:
            raise ConnectionError_(COMMAND_INVALID, "channel frame before connection.open",
                                   no_method)
        raise ConnectionError_(CHANNEL_ERROR, "expected 'channel.open'", no_method)

    def _close_for(self, exc: AMQPError | FrameError, ev: tuple) -> None:
        """Close the connection for an error raised while handling ``ev``: connection.close
        names the offending method's class and method ids, as RabbitMQ's does."""
        if isinstance(exc, FrameError):
            ids = _method_ids(ev)
            self.close_with_error(exc.reply_code, exc.text, _name_of(*ids), ev[1], ids)
        else:
            ids = exc.method_ids or _method_ids(ev)
            self.close_with_error(exc.code, exc.text, _name_of(*ids), ev[1], ids)

    def _channel_method(self, ch: Channel, ev: tuple) -> None:
        index = ev[2]
        if index == _CHANNEL_CLOSE:
            self.send_method(ch.id, spec.Channel.CloseOk())
            ch.release()
            del self.channels[ch.id]
            return
        if index == _CHANNEL_CLOSE_OK:
            return
        if index == _CHANNEL_OPEN:
            raise ConnectionError_(CHANNEL_ERROR, "second 'channel.open' seen")
        if ch._pub is not None:
            raise ConnectionError_(UNEXPECTED_FRAME, "expected content header for class 60, "
                                   "got non content header frame instead", _PUBLISH_IDS)
        method = frames.decode_method(index, ev[3])
        if index >> 16 == 10:
            raise ConnectionError_(COMMAND_INVALID, f"{method.name} on channel {ch.id}")
        ch.handle_method(method)

    def close_channel(self, ch: Channel, exc: AMQPError) -> None:
        """Close ``ch`` for ``exc`` outside any client method (consumer_timeout); a hard
        error's code closes the connection."""
        if ch.closing or not ch.open or self.state >= _CLOSING:
            return
        if exc.code in HARD_ERRORS:
            ids = exc.method_ids or (0, 0)
            self.close_with_error(exc.code, exc.text, _name_of(*ids), ch.id, ids)
            return
        self._close_channel(ch, exc, ())

    def _close_channel(self, ch: Channel, exc: AMQPError, ev: tuple) -> None:
        class_id, method_id = exc.method_ids or _method_ids(ev)
        log.error("Channel error on connection %s (%s), channel %d:\n"
                  "operation %s caused a channel exception %s: %s", self.pid,
                  self._log_ids(with_name=False), ch.id, _name_of(class_id, method_id),
                  REPLY_NAMES.get(exc.code, str(exc.code)).lower(), exc.text,
                  extra={**self._log_fields(), "channel": ch.id, "code": exc.code})
        ch.closing = True
        ch.release()
        self.send_method(ch.id, spec.Channel.Close(
            reply_code=exc.code, reply_text=exc.reply_text,
            class_id=class_id, method_id=method_id,
        ))

    def _channel_closed(self, ch_id: int, client_sent_close: bool) -> None:
        if client_sent_close:
            self.send_method(ch_id, spec.Channel.CloseOk())
        self.channels.pop(ch_id, None)
        self.closing_channels.discard(ch_id)

    def _open_channel(self, ch_id: int) -> None:
        # RabbitMQ limits how many channels are open, not their numbers: any number up to
        # 65535 may be opened while fewer than channel_max are (rabbit_reader:create_channel)
        if self.channel_max and len(self.channels) >= self.channel_max:
            raise ConnectionError_(NOT_ALLOWED, f"number of channels opened "
                                                f"({len(self.channels)}) has reached the "
                                                f"negotiated channel_max ({self.channel_max})",
                                   (0, 0))
        self.channels[ch_id] = Channel(self, ch_id)
        self.server.counters.channel_created += 1
        self.send_method(ch_id, spec.Channel.OpenOk())

    def _connection_method(self, ev: tuple) -> None:
        method = frames.decode_method(ev[2], ev[3])
        if isinstance(method, spec.Connection.CloseOk):
            if self.transport is not None:
                self.transport.close()
            self.state = _CLOSED
            return
        if isinstance(method, spec.Connection.Close):
            self._log_closing()
            self._closed_by_client()
            return
        if self.state >= _CLOSING:
            return
        if self.state == _AWAIT_START_OK and isinstance(method, spec.Connection.StartOk):
            handshake.start_ok(self, method)
        elif self.state == _AWAIT_TUNE_OK and isinstance(method, spec.Connection.TuneOk):
            handshake.tune_ok(self, method)
        elif self.state == _AWAIT_OPEN and isinstance(method, spec.Connection.Open):
            handshake.open_vhost(self, method)
        elif self.state == _OPEN and isinstance(method, (spec.Connection.Blocked,
                                                         spec.Connection.Unblocked)):
            return
        elif self.state == _OPEN and isinstance(method, spec.Connection.UpdateSecret):
            self.send_method(0, spec.Connection.UpdateSecretOk())
        elif self.state == _OPEN:
            raise ConnectionError_(CHANNEL_ERROR, "unexpected method in connection state running")
        else:
            raise ConnectionError_(COMMAND_INVALID, f"unexpected {method.name} on channel 0")

    # ------------------------------------------------------------------ closing

    def _closed_by_client(self) -> None:
        """connection.close from the client: close the channels and delete the exclusive
        queues, answer close-ok, then leave the socket to the client. What still arrives is
        discarded (amqplib flushes publishes around its close and would get EPIPE if the
        socket were gone); a client that does not close it within the heartbeat timeout (at
        most 30 s) is dropped. This is RabbitMQ's rabbit_reader:close_connection."""
        self._release_all()
        self.send_method(0, spec.Connection.CloseOk())
        self._flush()
        self.state = _CLOSED
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
        grace = self.heartbeat if 0 < self.heartbeat < _CLOSING_TIMEOUT else _CLOSING_TIMEOUT
        self._close_timer = self.loop.call_later(grace, self._abort_if_open)

    def close_with_error(self, code: int, text: str, method: str | None = "none",
                         channel: int = 0, method_ids: tuple[int, int] = (0, 0)) -> None:
        """Send connection.close with ``code`` and stop handling anything but close-ok;
        ``method`` (``"basic.publish"``) and ``channel`` say what caused it, for the log
        (method None: the caller logged it already); ``method_ids``, the class and method
        ids connection.close names."""
        if self.state >= _CLOSING or self.transport is None:
            return
        if method is not None:
            self._log_hard_error(code, text, method, channel)
        if self.state == _AWAIT_HEADER:
            self.transport.close()
            return
        self.state = _CLOSING
        self.writable = False  # nothing more is delivered to a closing connection
        for ch in list(self.channels.values()):
            ch.release()
        self.send_method(0, spec.Connection.Close(
            reply_code=code, reply_text=reply_text(code, text),
            class_id=method_ids[0], method_id=method_ids[1],
        ))
        self._flush()
        # wait briefly for close-ok, then drop the socket (AMQP 0-9-1 section 2.2.4)
        self._close_timer = self.loop.call_later(self.settings.close_timeout,
                                                 self._abort_if_open)

    def _log_hard_error(self, code: int, text: str, method: str, channel: int) -> None:
        # RabbitMQ's wording (rabbit_reader): a vhost or permission refused at connection.open
        # is logged with the user and the reason only; other errors name the operation
        state = _STATE_NAMES[self.state]
        fields = {**self._log_fields(), "code": code}
        if self.state == _AWAIT_OPEN and code == NOT_ALLOWED:
            log.error("Error on AMQP connection %s (%s, user: '%s', state: %s):\n%s", self.pid,
                      self.log_name, self.user, state, text, extra=fields)
            return
        log.error("Error on AMQP connection %s (%s, state: %s), channel %d:\n"
                  " operation %s caused a connection exception %s: \"%s\"", self.pid,
                  self._log_ids(), state, channel, method,
                  REPLY_NAMES.get(code, str(code)).lower(), text, extra=fields)

    def _abort_later(self) -> None:
        self.state = _CLOSING
        self.loop.call_later(0.05, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # ------------------------------------------------------------------ flow control

    def block(self, reason: str) -> None:
        """Memory alarm: stop reading this publisher (rabbitmq.com/docs/connection-blocked)."""
        if self.blocked or self.transport is None:
            return
        self.blocked = True
        if self.client_capability("connection.blocked"):
            self.send_method(0, spec.Connection.Blocked(reason=reason))
        self.transport.pause_reading()

    def unblock(self) -> None:
        if not self.blocked or self.transport is None or self.state >= _CLOSING:
            self.blocked = False
            return
        self.blocked = False
        if self.client_capability("connection.blocked"):
            self.send_method(0, spec.Connection.Unblocked())
        if not self._yielded:
            # bytes read before the block may be waiting: handle them, then read again
            self._yielded = True
            self.loop.call_soon(self._next_turn)

    def force_close(self, text: str = "broker forced connection closure with reason 'shutdown'"):
        if self.state == _CLOSED:  # closed by the client already: no need to wait for it
            self._abort_if_open()
            return
        self.close_with_error(CONNECTION_FORCED, text)


class Connection(AMQPConnection, asyncio.BufferedProtocol):
    """The AMQP 0-9-1 server side of one TCP connection: the protocol the event loop drives
    (asyncio's loop wants a BufferedProtocol; uvloop's takes any object with get_buffer)."""


def _frame_at(buf: bytearray, pos: int, end: int) -> bool:
    """Does a whole frame start at ``buf[pos]`` (within ``end``)?"""
    return end - pos >= 7 and pos + 8 + _FRAME_SIZE.unpack_from(buf, pos + 3)[0] <= end


def _method_name(ev: tuple) -> str:
    """``basic.publish``: the method an event belongs to, as RabbitMQ's log names it."""
    return _name_of(*_method_ids(ev))


def _name_of(class_id: int, method_id: int) -> str:
    method: Any = INDEX_MAPPING.get(class_id << 16 | method_id)
    return method.name.lower() if method is not None else "none"


def _method_ids(ev: tuple) -> tuple[int, int]:
    kind = ev[0]
    if kind == EV_METHOD:
        return ev[2] >> 16, ev[2] & 0xFFFF
    if kind in (EV_PUBLISH, EV_HEADER, EV_BODY):
        return 60, 40
    return {EV_ACK: (60, 80), EV_NACK: (60, 120), EV_REJECT: (60, 90)}.get(kind, (0, 0))


_PUBLISH_IDS = (60, 40)
_METHOD_EVENTS = (EV_METHOD, EV_PUBLISH, EV_ACK, EV_NACK, EV_REJECT)
# RabbitMQ's ?CLOSING_TIMEOUT: the longest a client may keep its socket after close-ok
_CLOSING_TIMEOUT = 30
_CHANNEL_OPEN = (20 << 16) | 10
_CHANNEL_CLOSE = (20 << 16) | 40
_CHANNEL_CLOSE_OK = (20 << 16) | 41

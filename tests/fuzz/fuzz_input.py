"""Fuzz target for the server's whole input path: what a client's bytes go through.

    python tests/fuzz/fuzz_input.py CORPUS_DIR              # atheris: runs until stopped
    python tests/fuzz/fuzz_input.py -max_total_time=3600 -jobs=2 -workers=2 CORPUS_DIR
    python tests/fuzz/fuzz_input.py --seeds CORPUS_DIR      # write the seed inputs, then stop
    python tests/fuzz/fuzz_input.py --replay FILE...        # run inputs (a crash file) once

Options other than ``--seeds`` and ``--replay`` are libFuzzer's (``-runs=N``, ``-seed=N``,
``-max_len=N``, ``-dict=...``); CORPUS_DIR collects the inputs that reach new code. Needs
``pip install atheris`` (Linux; in the test extras there). tests/test_fuzz_input.py runs the
same checks over the seeds and deterministic mutations of them in the test suite, and a few
thousand atheris iterations when atheris is installed. perf/README.md has a long run's figures.

Each input is checked three ways (``check``):

1. The frame codec: ``split_frames`` of the compiled (``_frames_c``) and the pure
   (``_frames_py``) codec on the same bytes (the first byte picks frame_max: none, 4096 or
   131072) must give the same events and stop at the same place (an ``EV_ERROR``'s reply
   code and channel must agree; its text is each codec's own); neither may raise (bad frames
   are ``EV_ERROR`` events).
2. What the split gives is decoded further as the server does: each method frame by
   ``methods.decode_method``, which may only raise ``FrameError`` (501/503) and, where pamqp
   decodes the same payload, must agree with it (pamqp is the oracle; where it recurses or
   is looser, no comparison); each content header's properties by both codecs'
   ``decode_properties``, which must agree.
3. The connection: the same bytes (after the protocol header and a valid handshake, so they
   land in an open connection with channel 1 open) are fed to a real ``Connection`` on a real
   ``Server`` (not listening), a slice at a time, with the loop's callbacks run between
   reads. Nothing may escape the protocol, and nothing may be logged as an internal error
   (541 and a traceback): every client error must be a clear reply.

Set LEVERET_NO_EXTENSIONS=1 to fuzz the pure codec alone (no comparison then).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import struct
import sys
from collections.abc import Iterator
from typing import Any

FRAME_MAX_CHOICES = (0, 4096, 131072)


def _codecs() -> tuple[Any, Any | None]:
    py = importlib.import_module("leveret._frames_py")
    if os.environ.get("LEVERET_NO_EXTENSIONS", "") not in ("", "0"):
        return py, None
    try:
        return py, importlib.import_module("leveret._frames_c")
    except ImportError:
        if os.environ.get("LEVERET_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise
        return py, None


class Disagreement(AssertionError):
    """The two codecs, or our decoder and pamqp, disagree; or something not allowed raised."""


# ---------------------------------------------------------------------- 1 and 2: the codec


def _split(codec: Any, data: bytes, frame_max: int) -> Any:
    from leveret._frames_common import EV_ERROR

    try:
        events, consumed = codec.split_frames(bytearray(data), 0, len(data), frame_max)
    except Exception as exc:  # none is allowed: reported with the disagreement
        return ("raised", type(exc).__name__, str(exc))
    # an error's text is each codec's own (the compiled one words some more tersely); its
    # reply code, channel and place must agree, as tests/test_frames.py requires
    return [ev[:3] if ev[0] == EV_ERROR else ev for ev in events], consumed


def _properties(codec: Any, raw: bytes) -> Any:
    from leveret._frames_common import FrameError

    try:
        return codec.decode_properties(raw)
    except FrameError as exc:
        return ("FrameError", exc.reply_code)
    except Exception as exc:
        raise Disagreement(f"decode_properties raised {exc!r} on {raw!r}") from exc


def _pamqp_decode(index: int, payload: bytes) -> Any:
    """pamqp's decoding of a method payload, or None where pamqp cannot (or recurses)."""
    from pamqp import commands as spec

    cls = spec.INDEX_MAPPING.get(index)
    if cls is None:
        return None
    try:
        method = cls()
        method.unmarshal(payload)
    except (Exception, RecursionError):
        return None
    return method


def _same(value: Any) -> Any:
    """A value in a form where equal means equal: NaN equal to NaN, byte arrays as bytes."""
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_same(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(value))
    if isinstance(value, float) and value != value:
        return ("nan",)
    return value


def check_codec(data: bytes) -> list[tuple]:
    """Checks 1 and 2; returns the events the split gave."""
    from leveret import methods
    from leveret._frames_common import EV_HEADER, EV_METHOD, FrameError

    py, c = _codecs()
    frame_max = FRAME_MAX_CHOICES[data[0] % 3] if data else 0
    frames = data[1:]
    result = _split(py, frames, frame_max)
    if c is not None:
        other = _split(c, frames, frame_max)
        if other != result:
            raise Disagreement(f"split_frames: pure {result!r} != compiled {other!r}")
    if isinstance(result, tuple) and result and result[0] == "raised":
        raise Disagreement(f"split_frames raised {result[1]}: {result[2]}")
    events, _ = result
    for ev in events:
        if ev[0] == EV_METHOD:
            try:
                ours = methods.decode_method(ev[2], ev[3])
            except FrameError:
                continue
            except Exception as exc:
                raise Disagreement(f"decode_method({ev[2]:#x}) raised {exc!r} on "
                                   f"{ev[3]!r}") from exc
            oracle = _pamqp_decode(ev[2], ev[3])
            if oracle is not None:
                for name in type(ours).__slots__:
                    if _same(getattr(ours, name)) != _same(getattr(oracle, name)):
                        raise Disagreement(f"{type(ours).name}.{name}: {getattr(ours, name)!r}"
                                           f" != pamqp's {getattr(oracle, name)!r}")
        elif ev[0] == EV_HEADER:
            raw = ev[4]
            mine = _properties(py, raw)
            if c is not None and _same(_properties(c, raw)) != _same(mine):
                raise Disagreement(f"decode_properties differ on {raw!r}")
    return events


# ---------------------------------------------------------------------- 3: the connection


class _Transport(asyncio.Transport):
    """Enough of a socket transport for a Connection: what it writes is dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.paused = False
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 5672)}.get(
            name, default)


class _InternalErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


class ConnectionHarness:
    """One Server (not listening) on a loop of its own; a fresh Connection per input."""

    def __init__(self) -> None:
        from leveret.server import Server
        from leveret.settings import Settings

        self.loop = asyncio.new_event_loop()
        self.server = Server(Settings(), self.loop)
        self.server.create_defaults()
        self.errors = _InternalErrors()
        self.handshake = _handshake()

    def run(self, data: bytes) -> None:
        from leveret.connection import Connection

        # errors only, and only for this input: the logging of the process around (a test
        # session) is left as it was
        logger = logging.getLogger("leveret")
        level = logger.level
        logger.setLevel(logging.ERROR)
        logger.addHandler(self.errors)
        conn = Connection(self.server)
        transport = _Transport()
        try:
            conn.connection_made(transport)
            try:
                self._feed(conn, transport, self.handshake + data)
            finally:
                conn.connection_lost(None)
                self._turns(3)
        finally:
            logger.removeHandler(self.errors)
            logger.setLevel(level)
        if self.errors.records:
            record = self.errors.records[0]
            self.errors.records.clear()
            raise Disagreement(f"internal error logged: {record.getMessage()}")

    def _feed(self, conn: Any, transport: _Transport, data: bytes) -> None:
        pos = 0
        while pos < len(data) and not transport.closing:
            if transport.paused:  # a read budget used up, or blocked: the next turns
                self._turns(1)
                if transport.paused:
                    return  # blocked by an alarm: not read again (none here)
                continue
            view = conn.get_buffer(-1)
            n = min(len(view), len(data) - pos, 1 + (data[pos] * 61) % 9000)
            view[:n] = data[pos:pos + n]
            pos += n
            conn.buffer_updated(n)
            self._turns(1)

    def _turns(self, n: int) -> None:
        for _ in range(n):
            self.loop.run_until_complete(asyncio.sleep(0))

    def close(self) -> None:
        self.loop.close()


def _handshake() -> bytes:
    """The bytes of a client that logs in and opens channel 1 (replies are not awaited: the
    connection answers each step as it reads it)."""
    from pamqp import commands as spec
    from pamqp import frame as pframe

    out = b"AMQP\x00\x00\x09\x01"
    for ch, method in (
        (0, spec.Connection.StartOk(client_properties={"capabilities": {
            "authentication_failure_close": True, "connection.blocked": True}},
            mechanism="PLAIN", response="\0guest\0guest", locale="en_US")),
        (0, spec.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0)),
        (0, spec.Connection.Open(virtual_host="/")),
        (1, spec.Channel.Open()),
    ):
        out += pframe.marshal(method, ch)
    return out


_harness: ConnectionHarness | None = None


def check(data: bytes) -> None:
    """One input through checks 1, 2 and 3; ``Disagreement`` on a finding."""
    global _harness
    check_codec(data)
    if _harness is None:
        _harness = ConnectionHarness()
    _harness.run(data[1:])


# ---------------------------------------------------------------------- seeds


def seeds() -> Iterator[bytes]:
    """Inputs to start from: well-formed frames of every kind a server reads, alone and mixed,
    each with a frame_max byte in front."""
    import datetime
    from decimal import Decimal

    from pamqp import body as pbody
    from pamqp import commands as spec
    from pamqp import frame as pframe
    from pamqp import header as pheader
    from pamqp import heartbeat as pheartbeat

    table = {"s": "text", "i": -5, "l": 2**40, "b": True, "f": 1.5, "d": Decimal("1.25"),
             "t": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc),
             "a": [1, "x", {"n": None}], "n": {"deep": {"er": [bytearray(b"bytes")]}}, "v": None}
    props = spec.Basic.Properties(content_type="text/plain", delivery_mode=2, priority=3,
                                  headers=table, expiration="60000", message_id="m1",
                                  correlation_id="c", reply_to="r", timestamp=datetime.datetime(
                                      2024, 1, 1, tzinfo=datetime.timezone.utc),
                                  message_type="t", user_id="guest", app_id="a")
    body = b"hello fuzz" * 3

    def f(ch: int, frame: Any) -> bytes:
        return pframe.marshal(frame, ch)

    publish = (f(1, spec.Basic.Publish(exchange="amq.direct", routing_key="k", mandatory=True))
               + f(1, pheader.ContentHeader(0, len(body), props))
               + f(1, pbody.ContentBody(body)))
    methods = [
        spec.Queue.Declare(queue="fuzz-q", durable=False, arguments={
            "x-message-ttl": 1000, "x-max-length": 10, "x-queue-type": "classic",
            "x-dead-letter-exchange": "dlx"}),
        spec.Queue.Bind(queue="fuzz-q", exchange="amq.topic", routing_key="a.*.#",
                        arguments=table),
        spec.Exchange.Declare(exchange="fuzz-x", exchange_type="headers", arguments=table),
        spec.Basic.Qos(prefetch_count=10),
        spec.Basic.Consume(queue="fuzz-q", consumer_tag="ct", arguments={"x-priority": 5}),
        spec.Basic.Get(queue="fuzz-q"),
        spec.Basic.Ack(delivery_tag=1, multiple=True),
        spec.Basic.Nack(delivery_tag=2, multiple=False, requeue=True),
        spec.Basic.Reject(delivery_tag=3, requeue=False),
        spec.Basic.Cancel(consumer_tag="ct"),
        spec.Confirm.Select(),
        spec.Tx.Select(),
        spec.Queue.Purge(queue="fuzz-q"),
        spec.Queue.Delete(queue="fuzz-q"),
        spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
        spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
    ]
    frames = [f(1, m) for m in methods]
    heartbeat = pheartbeat.Heartbeat().marshal()
    for fm in range(3):
        lead = bytes([fm])
        yield lead + publish
        yield lead + publish * 3 + heartbeat
        for frame in frames:
            yield lead + frame
        yield lead + b"".join(frames[:5]) + publish + b"".join(frames[5:])
        yield lead + f(0, spec.Connection.StartOk(client_properties=table, mechanism="PLAIN",
                                                   response="\0guest\0guest", locale="en_US"))
        # a content header with bytes after its properties, a truncated frame, a bad end
        yield lead + publish[:-len(body) - 8 - 8] + b"\x00" * 4
        yield lead + publish[:-1] + b"\x00"
        yield lead + struct.pack(">BHI", 1, 1, 2**31) + b"\xce"


# ---------------------------------------------------------------------- entry points


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--seeds":
        directory = argv[2]
        os.makedirs(directory, exist_ok=True)
        for i, seed in enumerate(seeds()):
            with open(os.path.join(directory, f"seed-{i:03d}"), "wb") as out:
                out.write(seed)
        return 0
    if len(argv) > 1 and argv[1] == "--replay":
        for path in argv[2:]:
            with open(path, "rb") as inp:
                check(inp.read())
            print(f"{path}: ok")
        return 0
    import atheris

    with atheris.instrument_imports():
        import leveret._frames_py  # noqa: F401
        import leveret.channel  # noqa: F401
        import leveret.connection  # noqa: F401
        import leveret.methods  # noqa: F401
    atheris.Setup(argv, check)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""What idle connections cost: the broker's resident memory (VmRSS) with N open sockets that
send nothing, N that stopped after the protocol header (before authenticating), and N fully
opened AMQP connections with a channel; then after half of them closed.

    python perf/idle_connections.py                  # 2,000 of each kind
    python perf/idle_connections.py -n 500
    python perf/idle_connections.py --leveret-cmd "python -m leveret"   # another build

Leveret runs as ``<leveret-cmd> --port N --in-memory --heartbeat 0`` (heartbeat 0 so the
opened connections stay truly silent). Each kind is measured on a fresh broker. Every figure
is the broker's VmRSS, in MiB, two seconds after the sockets were opened or closed (the
broker has answered every one by then).
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from pamqp import commands as spec
from pamqp import frame as pframe

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_broker(cmd: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(cmd + ["--port", str(port), "--host", "127.0.0.1", "--in-memory",
                                   "--heartbeat", "0", "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            time.sleep(1.0)
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the broker did not listen")


def _recv_frame(sock: socket.socket, buf: bytearray) -> None:
    """Read until one whole frame is in ``buf`` and drop it."""
    while True:
        if len(buf) >= 7:
            size = struct.unpack_from(">I", buf, 3)[0]
            if len(buf) >= size + 8:
                del buf[: size + 8]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("broker closed the connection")
        buf += chunk


def open_socket(port: int, kind: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if kind == "silent":
        return sock
    sock.sendall(PROTOCOL_HEADER)
    buf = bytearray()
    _recv_frame(sock, buf)  # connection.start
    if kind == "pre-auth":
        return sock
    sock.sendall(pframe.marshal(spec.Connection.StartOk(
        client_properties={"product": "idle_connections.py"}, mechanism="PLAIN",
        response="\0guest\0guest", locale="en_US"), 0))
    _recv_frame(sock, buf)  # tune
    sock.sendall(pframe.marshal(spec.Connection.TuneOk(channel_max=2047, frame_max=131072,
                                                       heartbeat=0), 0)
                 + pframe.marshal(spec.Connection.Open(virtual_host="/"), 0)
                 + pframe.marshal(spec.Channel.Open(), 1))
    _recv_frame(sock, buf)  # open-ok
    _recv_frame(sock, buf)  # channel open-ok
    return sock


def measure(cmd: list[str], kind: str, n: int) -> tuple[float, float, float]:
    proc, port = start_broker(cmd)
    try:
        before = rss_mib(proc.pid)
        socks = [open_socket(port, kind) for _ in range(n)]
        time.sleep(2.0)
        opened = rss_mib(proc.pid)
        for s in socks[: n // 2]:
            s.close()
        time.sleep(2.0)
        after_close = rss_mib(proc.pid)
        for s in socks[n // 2 :]:
            s.close()
        return before, opened, after_close
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=2000, help="sockets of each kind (default 2000)")
    p.add_argument("--leveret-cmd",
                   default=f"{shlex.quote(sys.executable)} -m leveret --no-management "
                   "--no-prometheus",
                   help="how to start Leveret (default: this Python's -m leveret)")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.n + 100), hard))
    cmd = shlex.split(args.leveret_cmd)
    print(f"{'kind':<10} {'idle broker':>12} {f'{args.n} open':>12} {'half closed':>12} "
          f"{'per socket':>12}")
    for kind in ("silent", "pre-auth", "opened"):
        before, opened, after = measure(cmd, kind, args.n)
        per = (opened - before) * 1024 / args.n
        print(f"{kind:<10} {before:>9.1f} MiB {opened:>8.1f} MiB {after:>8.1f} MiB "
              f"{per:>8.1f} KiB", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

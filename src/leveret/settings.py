"""Broker settings shared by the command line, ``leveret.Broker`` and the pytest plugin."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tls import TLSOptions


@dataclass
class Settings:
    """Everything a broker can be told; the CLI flags map one to one onto these fields."""

    host: str = "127.0.0.1"
    port: int = 0
    # created on first boot (no user in the data dir yet), as RabbitMQ's default_user: the
    # first is the default user (tagged default_user_tags); each gets default_permissions on
    # each of the vhosts; users, vhosts and permissions then live in Server.access (auth.py)
    users: dict[str, str] = field(default_factory=lambda: {"guest": "guest"})
    vhosts: list[str] = field(default_factory=lambda: ["/"])
    default_user_tags: list[str] = field(default_factory=lambda: ["administrator"])
    default_permissions: tuple[str, str, str] = (".*", ".*", ".*")
    # users who may log in only through a loopback address (RabbitMQ's loopback_users;
    # rabbitmq.conf's `loopback_users.guest = false` takes guest out, `loopback_users = none`
    # empties it)
    loopback_users: list[str] = field(default_factory=lambda: ["guest"])
    frame_max: int = 131072  # RabbitMQ's default
    channel_max: int = 2047  # RabbitMQ's default
    heartbeat: int = 60  # seconds, RabbitMQ's default
    handshake_timeout: float = 10.0
    close_timeout: float = 1.0
    cluster_name: str = "leveret"
    data_dir: str | None = None  # None: nothing is written to disk
    # the memory high watermark (memory.py): a float is a share of the memory (RAM, or the
    # cgroup's limit when lower), an int bytes (at most that memory); None: no alarm. The
    # command line's default is RabbitMQ's 0.4; an embedded broker shares its process with the
    # program around it, so it has none unless asked
    memory_high_watermark: float | int | None = None
    # what "memory used" is: "rss" (the process's resident memory, RabbitMQ's default
    # strategy) or "queued" (bytes of message bodies held in memory by queues)
    memory_calculation_strategy: str = "rss"
    # the free disk space alarm (disk.py): an int is bytes, a float a multiple of the memory
    # (rabbitmq.conf's disk_free_limit.relative); None: RabbitMQ's 50 MB with a data_dir, no
    # check without one (nothing is written)
    disk_free_limit: float | int | None = None
    # the AMQPS listener (tls.py: certificate, key, CA, verify, fail_if_no_peer_cert, port);
    # None: no TLS listener
    tls: TLSOptions | None = None
    # with a data_dir: bytes of ready messages of durable queues kept in memory (bodies and
    # properties plus ~320 a message); past it they wait on disk and are read back in turn
    memory_budget: int = 128 * 1024 * 1024
    # the largest message body a publisher may send (RabbitMQ's max_message_size, bytes; 3.10's
    # default 128 MiB, at most 512 MiB): larger is refused at its content header (406)
    max_message_size: int = 128 * 1024 * 1024
    # ms a delivery may wait for its acknowledgement before its channel is closed with 406
    # (RabbitMQ's consumer_timeout, 30 minutes by default); None or 0: no limit
    consumer_timeout: int | None = 30 * 60 * 1000
    loop: str = "uvloop"
    # the management HTTP API's port (0: an ephemeral one; None: no API), on
    # ``management_host`` (None: ``host``); rabbitmq.conf's management.tcp.port / .ip
    management_port: int | None = None
    management_host: str | None = None
    # definitions files or directories (RabbitMQ's JSON) imported at start, as RabbitMQ's
    # load_definitions / management.load_definitions: on a first boot they replace the
    # default user and vhost (rabbit:maybe_insert_default_data)
    definitions_files: tuple[str, ...] = ()
    # the Prometheus metrics' port (rabbitmq_prometheus: 15692; 0: an ephemeral one; None: off),
    # on ``prometheus_host`` (None: ``host``); rabbitmq.conf's prometheus.tcp.port / .ip
    prometheus_port: int | None = None
    prometheus_host: str | None = None
    # the configuration files read, as the management API's node object lists them
    config_files: list[str] = field(default_factory=list)


@cache
def node_name() -> str:
    """``leveret@<host>``: the node name logs and tools show (RabbitMQ's is ``rabbit@<host>``)."""
    return f"leveret@{socket.gethostname().split('.')[0] or 'localhost'}"

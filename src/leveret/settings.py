"""Broker settings shared by the command line, ``leveret.Broker`` and the pytest plugin."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field


@dataclass
class Settings:
    """Everything a broker can be told; the CLI flags map one to one onto these fields."""

    host: str = "127.0.0.1"
    port: int = 0
    users: dict[str, str] = field(default_factory=lambda: {"guest": "guest"})
    vhosts: list[str] = field(default_factory=lambda: ["/"])
    frame_max: int = 131072  # RabbitMQ's default
    channel_max: int = 2047  # RabbitMQ's default
    heartbeat: int = 60  # seconds, RabbitMQ's default
    handshake_timeout: float = 10.0
    close_timeout: float = 1.0
    cluster_name: str = "leveret"
    data_dir: str | None = None  # None: nothing is written to disk
    memory_high_watermark: int = 0  # bytes of queued message bodies; 0 = no limit
    # with a data_dir: bytes of ready messages of durable queues kept in memory (bodies and
    # properties plus ~320 a message); past it they wait on disk and are read back in turn
    memory_budget: int = 128 * 1024 * 1024
    loop: str = "uvloop"

    def check_user(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        return expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        )

    def can_access(self, user: str, vhost: str) -> bool:
        # every configured user may use every virtual host, as guest can on a fresh RabbitMQ
        return user in self.users

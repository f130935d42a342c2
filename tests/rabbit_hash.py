"""RabbitMQ's password hash, computed as its docs describe it (rabbitmq.com/docs/passwords:
"Computing Password Hash"): a 32-bit random salt, then SHA-256 of salt + UTF-8 password, the
two concatenated and base64-encoded. Definitions files carry users this way."""

from __future__ import annotations

import base64
import hashlib
import os


def rabbit_password_hash(password: str, salt: bytes | None = None) -> str:
    """``password_hash`` for ``hashing_algorithm: rabbit_password_hashing_sha256``."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions_user(name: str, password: str, tags: tuple[str, ...] = ("administrator",)
                     ) -> dict[str, object]:
    """A ``users`` entry of a definitions file."""
    return {"name": name, "password_hash": rabbit_password_hash(password),
            "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": list(tags)}

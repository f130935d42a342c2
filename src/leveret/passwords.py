"""Password hashes as RabbitMQ stores them, so users move between Leveret and RabbitMQ.

RabbitMQ's internal backend keeps ``salt + H(salt + password)``: a random 4-byte salt, then
the digest of the salt followed by the UTF-8 password (``rabbit_password:hash/2``).
Definitions carry it base64-encoded as ``password_hash``, with the module that made it as
``hashing_algorithm``. SHA-256 is RabbitMQ's default since 3.6; SHA-512 is the other module it
ships, and MD5 is what 3.5 and older used (and what a user record without an algorithm means).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable

SHA256 = "rabbit_password_hashing_sha256"
SHA512 = "rabbit_password_hashing_sha512"
MD5 = "rabbit_password_hashing_md5"
DEFAULT_ALGORITHM = SHA256

_DIGESTS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    SHA256: hashlib.sha256,
    SHA512: hashlib.sha512,
    MD5: hashlib.md5,
}

ALGORITHMS = tuple(_DIGESTS)
SALT_BYTES = 4


class UnknownAlgorithm(ValueError):
    """A ``hashing_algorithm`` Leveret cannot verify (RabbitMQ plugins may add others)."""


def _digest(algorithm: str) -> Callable[[bytes], hashlib._Hash]:
    try:
        return _DIGESTS[algorithm]
    except KeyError:
        raise UnknownAlgorithm(f"unknown hashing algorithm '{algorithm}' (known: "
                               f"{', '.join(ALGORITHMS)})") from None


def hash_password(password: str, algorithm: str = DEFAULT_ALGORITHM,
                  salt: bytes | None = None) -> str:
    """The base64 ``password_hash`` of ``password`` with a fresh (or the given) 4-byte salt."""
    digest = _digest(algorithm)
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    elif len(salt) != SALT_BYTES:
        raise ValueError(f"a salt is {SALT_BYTES} bytes")
    raw = salt + digest(salt + password.encode("utf-8")).digest()
    return base64.b64encode(raw).decode("ascii")


def decode_hash(password_hash: str) -> bytes:
    """The raw bytes of a base64 ``password_hash``; ValueError if it is not base64."""
    try:
        return base64.b64decode(password_hash.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"password_hash '{password_hash}' is not base64") from None


def check_hash(password_hash: str, algorithm: str) -> None:
    """Raise ValueError (or UnknownAlgorithm) unless ``password_hash`` can be verified: empty
    (no password) or base64 of a salt and one digest of ``algorithm``."""
    digest = _digest(algorithm)
    raw = decode_hash(password_hash)
    if raw and len(raw) != SALT_BYTES + digest(b"").digest_size:
        raise ValueError(f"password_hash is {len(raw)} bytes, not a {SALT_BYTES}-byte salt and "
                         f"a {algorithm} digest")


def verify_password(password_hash: str, algorithm: str, password: str) -> bool:
    """Whether ``password`` matches the stored hash. An empty hash (a user without a password)
    matches nothing, as in RabbitMQ, and neither does an empty password (RabbitMQ's internal
    backend refuses blank passwords before it looks at the hash)."""
    if not password or not password_hash:
        return False
    try:
        raw = decode_hash(password_hash)
        digest = _digest(algorithm)
    except ValueError:
        return False
    salt, stored = raw[:SALT_BYTES], raw[SALT_BYTES:]
    if len(salt) != SALT_BYTES or not stored:
        return False
    return hmac.compare_digest(stored, digest(salt + password.encode("utf-8")).digest())

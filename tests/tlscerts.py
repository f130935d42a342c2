"""Certificates for the TLS tests, made by the ``openssl`` command line (no Python dependency:
``cryptography`` is not among the test requirements); tests skip when openssl is missing.

``make_certificates(directory)`` writes a CA, a server certificate for ``localhost`` and
127.0.0.1 signed by it, client certificates signed by it (``CN=guest,O=leveret-tests`` and one
for a user who does not exist), and a second CA with a client certificate of its own, which a
broker trusting the first CA must refuse.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    directory: Path

    def path(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def ca(self) -> str:
        return self.path("ca.pem")

    @property
    def server_cert(self) -> str:
        return self.path("server.pem")

    @property
    def server_key(self) -> str:
        return self.path("server.key")

    def client(self, name: str) -> tuple[str, str]:
        """(certificate, key) of client ``name``: guest, stranger, rogue (other CA)."""
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


def have_openssl() -> bool:
    return shutil.which("openssl") is not None


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(cwd: Path, name: str, subject: str) -> None:
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
         "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=cwd)


def _signed(cwd: Path, name: str, ca: str, subject: str, extensions: str) -> None:
    (cwd / f"{name}.ext").write_text(extensions)
    _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
         "-out", f"{name}.csr", cwd=cwd)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
         cwd=cwd)


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    _ca(directory, "ca", "/O=leveret-tests/CN=Leveret Test CA")
    _signed(directory, "server", "ca", "/O=leveret-tests/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client_ext = "extendedKeyUsage=clientAuth\n"
    _signed(directory, "guest", "ca", "/O=leveret-tests/CN=guest", client_ext)
    _signed(directory, "stranger", "ca", "/O=leveret-tests/CN=nobody-here", client_ext)
    _ca(directory, "rogue-ca", "/O=elsewhere/CN=Rogue CA")
    _signed(directory, "rogue", "rogue-ca", "/O=elsewhere/CN=guest", client_ext)
    return Certificates(directory)

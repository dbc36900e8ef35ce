"""Test certificates made with the openssl CLI, and a Mosquitto with a TLS listener.

``make_pki(dir)`` writes a CA, a server certificate for ``localhost`` / ``127.0.0.1`` (both in
the subjectAltName), a server certificate from the same CA for another name only
(``other.example``: what the host-name check must refuse), a client certificate signed by the
same CA, and a second, unrelated CA (the "wrong" one). EC P-256 keys: quick to make.
``SecureMosquitto`` keeps the plain listener of :class:`tests.harness.mosquitto.Mosquitto` (for the
test's own subscriber) and adds a TLS listener; with ``passwords`` every client on every
listener must log in (``per_listener_settings false``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.mosquitto import Mosquitto, password_file
from tests.harness.ports import free_port, wait_port

__all__ = ["Pki", "SecureMosquitto", "make_pki", "openssl_binary"]


def openssl_binary() -> str | None:
    return shutil.which("openssl")


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path
    other_name_cert: Path
    other_name_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path,
             cwd=path.parent)  # fmt: skip


def _ca(d: Path, name: str) -> Path:
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _key(key)
    _openssl(
        "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    return cert


def _leaf(d: Path, name: str, ca: str, usage: str, san: str | None) -> tuple[Path, Path]:
    key, csr, cert, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    _key(key)
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}", cwd=d)
    lines = ["basicConstraints=critical,CA:FALSE", f"extendedKeyUsage={usage}"]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext,
        cwd=d,
    )  # fmt: skip
    return cert, key


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca = _ca(d, "test-ca")
    server_cert, server_key = _leaf(
        d, "localhost", "test-ca", "serverAuth", "DNS:localhost,IP:127.0.0.1"
    )
    client_cert, client_key = _leaf(d, "hazardgw", "test-ca", "clientAuth", None)
    wrong_ca = _ca(d, "other-ca")
    other_cert, other_key = _leaf(d, "other-host", "test-ca", "serverAuth", "DNS:other.example")
    return Pki(
        ca, server_cert, server_key, client_cert, client_key, wrong_ca, other_cert, other_key
    )


class SecureMosquitto(Mosquitto):
    """Mosquitto with a TLS listener on ``tls_port`` beside the plain one."""

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        require_certificate: bool = False,
        passwords: dict[str, str] | None = None,
        other_name: bool = False,
    ) -> None:
        """``other_name``: serve the certificate for ``other.example`` instead of localhost's."""
        self.tls_port = free_port()
        cert, key = (
            (pki.other_name_cert, pki.other_name_key)
            if other_name
            else (pki.server_cert, pki.server_key)
        )
        lines = [
            f"listener {self.tls_port} 127.0.0.1",
            f"cafile {pki.ca}",
            f"certfile {cert}",
            f"keyfile {key}",
            f"require_certificate {'true' if require_certificate else 'false'}",
        ]
        if passwords:
            pw = password_file(workdir, passwords)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        super().__init__(workdir, extra="\n".join(lines) + "\n")

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def start(self) -> SecureMosquitto:
        super().start()
        wait_port(self.tls_port)
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

"""Mosquitto for tests: a real broker on a free loopback port.

Started as a subprocess with a config written to a temp dir; as root Mosquitto needs
``user root``. ``max_queued_messages 0`` lets a test's subscriber never lose a message.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.harness.ports import free_port, wait_port

__all__ = ["Mosquitto", "PersistentMosquitto", "mosquitto_binary", "password_file"]


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


def password_file(workdir: Path, passwords: dict[str, str]) -> Path:
    """A Mosquitto password file (``mosquitto_passwd``) for ``{user: password}``, mode 0600."""
    path = workdir / "passwords"
    path.write_text("")
    for user, password in passwords.items():
        subprocess.run(
            ["mosquitto_passwd", "-b", str(path), user, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
    path.chmod(0o600)
    return path


class Mosquitto:
    """A Mosquitto broker process on a free port; restartable on the same port."""

    def __init__(self, workdir: Path, *, port: int | None = None, extra: str = "") -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "persistence false",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n" + self.extra)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


class PersistentMosquitto(Mosquitto):
    """Mosquitto with persistence on: sessions, subscriptions and queued QoS 1 messages are
    saved every second and come back after a restart, also after a SIGKILL (up to the last
    save)."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        store = workdir / "mosquitto-store"
        store.mkdir(parents=True, exist_ok=True)
        super().__init__(
            workdir,
            port=port,
            extra=f"persistence true\npersistence_location {store}/\nautosave_interval 1\n",
        )
        self.store = store / "mosquitto.db"

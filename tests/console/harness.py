"""A whole control room on loopback: Mosquitto, simulators, a gateway process and the console.

* The simulators run in a thread of the test process on a fast clock (the gas-leak scenario at
  ``speed`` × real time), held at ``hold_s`` of scenario time so the methane stays up for as long
  as a test needs it.
* The gateway is ``hazardgw run`` in its own process, on a site file written for the test.
* The console is ``hazardgw console`` in its own process, with a users file made by
  ``hazardgw console adduser`` (an operator and a viewer).
* A recorder thread subscribes to the site's topics like any other client and notes when each
  message arrived, so a test can compare the page with what the gateway published.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from tests.harness.mosquitto import Mosquitto
from tests.harness.paths import PACKS, ROOT
from tests.harness.ports import free_port, wait_port
from tests.harness.processes import HAZARDGW, stop_process
from tests.harness.simulators import SimulatorThread

__all__ = [
    "BROKER_PASSWORD",
    "OPERATOR",
    "PASSWORD",
    "VIEWER",
    "ConsoleStack",
    "Recorder",
    "chromium_path",
]

OPERATOR, VIEWER, PASSWORD = "wang.operator", "li.viewer", "correct horse 7"
BROKER_PASSWORD = "broker-pw-Xy9-never-shown"
SITE_ID = "console-mine-01"
CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str | None:
    return CHROMIUM if os.path.exists(CHROMIUM) else None


def _site_yaml(broker_port: int, prefix: str, ports: list[int]) -> str:
    packs = PACKS / "coal_mine.yaml"
    return f"""
site: {{id: {SITE_ID}, name: "Console test mine"}}
mqtt: {{url: "mqtt://127.0.0.1:{broker_port}", topic_prefix: {prefix}, keepalive: 5}}
rules: ["{packs}"]
devices:
  - id: face1-gas
    profile: gas_detector
    connection: {{transport: tcp, host: 127.0.0.1, port: {ports[0]}}}
    poll_interval: 0.5
    timeout: 0.5
    tags: {{area: face-1, position: T1}}
  - id: face1-return-gas
    profile: gas_detector
    connection: {{transport: tcp, host: 127.0.0.1, port: {ports[1]}}}
    poll_interval: 0.5
    timeout: 0.5
    tags: {{area: face-1, position: T2}}
"""


@dataclass
class Recorder:
    """Every message under the site's base topic, with the wall-clock time it arrived."""

    host: str
    port: int
    base: str
    seen: list[tuple[float, str, dict[str, Any] | None, bool]] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _task: asyncio.Task[None] | None = None
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Recorder:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        self._subscribed.wait(10)
        return self

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port) as client:
                    await client.subscribe(f"{self.base}/#", qos=1)
                    self._subscribed.set()
                    async for msg in client.messages:
                        raw = msg.payload if isinstance(msg.payload, bytes) else b""
                        doc = json.loads(raw) if raw else None
                        self.seen.append((time.time(), str(msg.topic), doc, msg.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)
            except asyncio.CancelledError:
                return

    def first(self, topic_tail: str, **match: Any) -> tuple[float, dict[str, Any]] | None:
        for at, topic, doc, _ in list(self.seen):
            wanted = topic == f"{self.base}/{topic_tail}" and doc is not None
            if wanted and all(doc.get(k) == v for k, v in match.items()):  # type: ignore[union-attr]
                return at, doc  # type: ignore[return-value]
        return None

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(5)


class ConsoleStack:
    """Broker, simulators, gateway and console, started in that order, stopped in reverse."""

    def __init__(self, workdir: Path, *, speed: float = 10.0, hold_s: float = 200.0) -> None:
        self.workdir = workdir
        self.prefix = "console-test"
        self.broker = Mosquitto(workdir)
        self.console_port = free_port()
        self.site_file = workdir / "site.yaml"
        self.users_file = workdir / "console-users"
        self.speed = speed
        self.hold_s = hold_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sims: SimulatorThread | None = None
        self.recorder: Recorder | None = None
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HAZARDGW_CONSOLE_SECRET": "session-key-" + "k" * 32,
            "CONSOLE_MQTT_USER": "console",
            "CONSOLE_MQTT_PASSWORD": BROKER_PASSWORD,
        }

    @property
    def base(self) -> str:
        return f"{self.prefix}/{SITE_ID}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    def _adduser(self, name: str, role: str) -> None:
        subprocess.run(
            [
                *HAZARDGW,
                "console",
                "adduser",
                name,
                "--users",
                str(self.users_file),
                "--role",
                role,
                "--password-stdin",
            ],
            input=PASSWORD.encode() + b"\n",
            check=True,
            capture_output=True,
            cwd=ROOT,
        )

    def start(self) -> ConsoleStack:
        self.broker.start()
        self.recorder = Recorder("127.0.0.1", self.broker.port, self.base).start()
        self.site_file.write_text(
            _site_yaml(self.broker.port, self.prefix, [free_port(), free_port()])
        )
        self._adduser(OPERATOR, "operator")
        self._adduser(VIEWER, "viewer")
        self.start_console()
        self.sims = SimulatorThread(
            self.site_file, scenario="gas-leak", seed=1, speed=self.speed, hold_s=self.hold_s
        ).start()
        self.procs["gateway"] = subprocess.Popen(
            [*HAZARDGW, "run", "-c", str(self.site_file), "--log-level", "WARNING"],
            stderr=(self.workdir / "gateway.log").open("w"),
            env=self.env,
            cwd=ROOT,
        )
        return self

    def start_console(self) -> None:
        self.procs["console"] = subprocess.Popen(
            [
                *HAZARDGW,
                "console",
                "--mqtt",
                self.broker.url,
                "--prefix",
                self.prefix,
                "--sites",
                SITE_ID,
                "--listen",
                f"127.0.0.1:{self.console_port}",
                "--users",
                str(self.users_file),
                "--log-level",
                "INFO",
                "--mqtt-username-env",
                "CONSOLE_MQTT_USER",
                "--mqtt-password-env",
                "CONSOLE_MQTT_PASSWORD",
            ],
            stderr=(self.workdir / "console.log").open("a"),
            env=self.env,
            cwd=ROOT,
        )
        wait_port(self.console_port, timeout=20)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop_process(self, name: str) -> int | None:
        """Ctrl-C to one process; its exit status, or None if it had to be killed after 10 s."""
        return stop_process(self.procs.pop(name, None), sig=signal.SIGINT, timeout=10)

    def stop(self) -> None:
        for name in ("gateway", "console"):
            self.stop_process(name)
        if self.sims is not None:
            self.sims.stop()
        if self.recorder is not None:
            self.recorder.stop()
        self.broker.stop()

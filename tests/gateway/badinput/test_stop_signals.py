"""A stop that always works: SIGINT and SIGTERM, sent many times to a real ``hazardgw run``
polling many devices at the shortest poll interval the config allows, stop it every time.

On Python 3.11, ``asyncio.wait_for`` (which pymodbus awaits every answer through) returns the
answer when it arrives in the same loop step as a cancellation, and the cancellation is gone: a
poller that did not re-check went on polling and the gateway never stopped. Every await in the
polling path now re-raises a pending cancellation.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gateway.config import MIN_POLL_INTERVAL_S, MIN_TIMEOUT_S
from tests.harness.mosquitto import Mosquitto
from tests.harness.ports import free_port, wait_port

pytestmark = pytest.mark.integration

DEVICES = 40
STOPS = 16
#: generous: a stopping gateway closes its links and says goodbye to the broker (about 0.1 s)
STOP_WITHIN_S = 10.0
_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
GATEWAY = [sys.executable, "-m", "hazardgw"]


@pytest.fixture
def site(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Path]:
    port = free_port()
    doc = {
        "site": {"id": "stop-site"},
        "mqtt": {"url": mosquitto.url, "topic_prefix": "stop"},
        "devices": [
            {
                "id": f"gas-{i:03d}",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                "unit": i + 1,
                "poll_interval": MIN_POLL_INTERVAL_S,
                "timeout": max(MIN_TIMEOUT_S, 1.0),
            }
            for i in range(DEVICES)
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    sim = subprocess.Popen(
        [*GATEWAY, "simulate", "-c", str(path), "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "sim.log").open("w"),
        env=_ENV,
    )
    try:
        wait_port(port, 20)
        yield path
    finally:
        sim.terminate()
        sim.wait(10)


@pytest.mark.timeout(400)
def test_sigint_and_sigterm_always_stop_a_busy_gateway(site: Path, tmp_path: Path) -> None:
    rng = random.Random(15)
    hung: list[str] = []
    for i in range(STOPS):
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        log = tmp_path / f"gw{i}.log"
        gw = subprocess.Popen(
            [*GATEWAY, "run", "-c", str(site), "--log-level", "INFO"],
            stderr=log.open("w"),
            env=_ENV,
        )
        try:
            deadline = time.monotonic() + 30
            while "devices on" not in log.read_text():  # running, its signal handlers set
                assert gw.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            time.sleep(rng.uniform(0.3, 1.5))  # connected, polling at full rate
            assert gw.poll() is None, log.read_text()
            gw.send_signal(sig)
            try:
                code = gw.wait(STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                hung.append(f"stop {i} ({sig.name})")
                continue
            assert code == 0, (sig.name, code, log.read_text())
            assert "Traceback" not in log.read_text(), log.read_text()
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait(10)
    assert hung == [], f"{len(hung)} of {STOPS} stops hung: {hung}"

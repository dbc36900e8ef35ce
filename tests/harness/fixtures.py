"""The service fixtures every test can ask for (made available by ``tests/conftest.py``).

Each starts a real server on free loopback ports in the test's temporary directory and stops it
by its own process handle afterwards; a test whose server is not installed is skipped, saying
what to install (``make system-deps`` installs them all).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.mosquitto import Mosquitto, mosquitto_binary
from tests.harness.nats import NatsCluster, nats_binary
from tests.harness.victoria_metrics import VictoriaMetrics, find_binary

__all__ = ["mosquitto", "nats_cluster", "vm"]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto broker (anonymous, no persistence) on a free loopback port."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed: run `make test` as root to install it")
    broker = Mosquitto(tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A fresh victoria-metrics on a free loopback port with a temporary storage directory."""
    if find_binary() is None:
        pytest.skip("victoria-metrics is not installed (apt install victoria-metrics)")
    with VictoriaMetrics.launch(tmp_path) as server:
        yield server


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A 3-node NATS cluster with JetStream and MQTT, on free loopback ports."""
    if nats_binary() is None:
        pytest.skip("nats-server is not installed: run `make test` as root to install it")
    with NatsCluster.launch(tmp_path / "nats", nodes=3) as cluster:
        yield cluster

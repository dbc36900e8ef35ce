"""Fixtures for the city platform: a real 3-node NATS cluster with JetStream and MQTT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.nats import NatsCluster, nats_binary


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    if nats_binary() is None:
        pytest.skip("nats-server is not installed: run `make test` as root to install it")
    with NatsCluster.launch(tmp_path / "nats", nodes=3) as cluster:
        yield cluster

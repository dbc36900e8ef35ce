"""Shared fixtures: a real Mosquitto per test on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Mosquitto, mosquitto_binary


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed: run `make test` as root to install it")
    broker = Mosquitto(tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()

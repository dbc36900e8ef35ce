"""Shared fixtures: a real Mosquitto per test on a free port; each test's own state directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.mosquitto import Mosquitto, mosquitto_binary


@pytest.fixture(autouse=True)
def _state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ``$STATE_DIRECTORY`` (inherited by the processes it starts): a
    gateway whose site file has no ``outbox`` keeps its outbox there, never in the user's state
    directory, and never shares one with another test or a later run."""
    state = tmp_path / "state"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    return state


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed: run `make test` as root to install it")
    broker = Mosquitto(tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()

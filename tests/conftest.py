"""Shared fixtures: each test's own state directory; the real servers of tests/harness
(``mosquitto``, ``vm``, ``nats_cluster``: see :mod:`tests.harness.fixtures`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.fixtures import mosquitto, nats_cluster, vm

__all__ = ["mosquitto", "nats_cluster", "vm"]


@pytest.fixture(autouse=True)
def _state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ``$STATE_DIRECTORY`` (inherited by the processes it starts): a
    gateway whose site file has no ``outbox`` keeps its outbox there, never in the user's state
    directory, and never shares one with another test or a later run."""
    state = tmp_path / "state"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    return state

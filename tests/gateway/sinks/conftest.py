"""Fixtures for the sink tests: a real VictoriaMetrics per test (skipped when not installed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.victoria_metrics import VictoriaMetrics, find_binary


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A fresh victoria-metrics on a free loopback port with a temporary storage directory."""
    if find_binary() is None:
        pytest.skip("victoria-metrics is not installed (apt install victoria-metrics)")
    with VictoriaMetrics.launch(tmp_path) as server:
        yield server

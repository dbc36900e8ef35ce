"""Fixtures for the sink tests: a real VictoriaMetrics per test (skipped when not installed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) leaves the repo off the path
    sys.path.insert(0, str(_ROOT))

from tests.vm import VictoriaMetrics, find_binary  # noqa: E402


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A fresh victoria-metrics on a free loopback port with a temporary storage directory."""
    if find_binary() is None:
        pytest.skip("victoria-metrics is not installed (apt install victoria-metrics)")
    with VictoriaMetrics.launch(tmp_path) as server:
        yield server

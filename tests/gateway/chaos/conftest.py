"""The chaos tier: skipped without Mosquitto or victoria-metrics; ``slow`` needs HAZARDGW_SLOW=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.mosquitto import mosquitto_binary
from tests.harness.victoria_metrics import find_binary


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: long-running (full-length outages); runs only with HAZARDGW_SLOW=1"
    )


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        if item.get_closest_marker("slow") and os.environ.get("HAZARDGW_SLOW") != "1":
            item.add_marker(pytest.mark.skip(reason="slow: set HAZARDGW_SLOW=1 to run it"))


@pytest.fixture(autouse=True)
def _services() -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    if find_binary() is None:
        pytest.skip("victoria-metrics is not installed")

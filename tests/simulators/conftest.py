"""Fixtures for the simulator tests: site configs built in the test, a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.config import SiteConfig, parse_site
from tests.harness.ports import free_port
from tests.harness.simulators import FakeClock

PROFILES = ("gas_detector", "tank_gauge", "elevator", "tower_crane")


def make_site(devices: list[dict[str, Any]], site_id: str = "sim-test") -> SiteConfig:
    """A checked site config holding ``devices``."""
    return parse_site({"site": {"id": site_id}, "devices": devices})


def tcp_device(
    device_id: str, profile: str, port: int, unit: int = 1, **extra: Any
) -> dict[str, Any]:
    """One device entry on a Modbus TCP endpoint."""
    return {
        "id": device_id,
        "profile": profile,
        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
        "unit": unit,
        **extra,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def four_kinds_site() -> Callable[[], SiteConfig]:
    """A factory for a site with one device of each built-in profile, on free TCP ports."""

    def build() -> SiteConfig:
        return make_site(
            [
                tcp_device("face1-gas", "gas_detector", free_port()),
                tcp_device("tank-1", "tank_gauge", free_port()),
                tcp_device("lift-1", "elevator", free_port()),
                tcp_device("crane-1", "tower_crane", free_port(), unit=3),
            ]
        )

    return build

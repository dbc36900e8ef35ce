"""Devices built from the built-in profiles, for the sink tests."""

from __future__ import annotations

from fieldmodel.model import Device, TcpConnection
from gateway.config import load_profile

TS = 1_764_000_000_123


def make_device(profile: str = "gas_detector", dev_id: str = "face1-gas", **tags: str) -> Device:
    prof = load_profile(profile)
    return Device(
        id=dev_id,
        profile=prof,
        connection=TcpConnection(transport="tcp", host="127.0.0.1", port=5020),
        unit=1,
        poll_interval=1.0,
        timeout=1.0,
        tags=tags,
        points=prof.points,
    )

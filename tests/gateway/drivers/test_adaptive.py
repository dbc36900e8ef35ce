"""Adaptive read plans against a fake device that refuses some addresses (exception 2)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import parse_site
from gateway.drivers.modbus.adaptive import AdaptiveReader, merge_spans
from gateway.drivers.modbus.planner import ReadRequest
from gateway.errors import DeviceException, DeviceOffline


class RefusingDevice:
    """Holding registers equal to their address; reads touching ``refused`` get exception 2."""

    def __init__(self, refused: set[int], *, code: int = 2) -> None:
        self.refused = refused
        self.code = code
        self.log: list[ReadRequest] = []

    async def read(
        self, device: str, unit: int, req: ReadRequest, timeout: float
    ) -> Sequence[int] | Sequence[bool]:
        self.log.append(req)
        if self.refused & set(range(req.address, req.end)):
            raise DeviceException(device, f"refused {req}", address=req.address, code=self.code)
        return list(range(req.address, req.end))


def device(points: list[dict[str, Any]], max_gap: int = 8) -> Any:
    site = parse_site(
        {
            "site": {"id": "t"},
            "devices": [
                {
                    "id": "d1",
                    "profile": "gas_detector",
                    "connection": {"transport": "rtu", "port": "/dev/null"},
                    "max_gap": max_gap,
                    "points": points,
                }
            ],
        }
    )
    return site.devices[0]


def only_holding(n: int, stride: int = 2) -> list[dict[str, Any]]:
    return [
        {"name": f"r{i}", "register": "holding", "address": 100 + i * stride, "type": "uint16"}
        for i in range(n)
    ]


def values_of(dev: Any, values: np.ndarray, name: str) -> float:
    return float(values[[p.name for p in dev.points].index(name)])


async def test_unmapped_hole_between_points_is_learned_and_everything_reads() -> None:
    dev = device(only_holding(4))  # r0..r3 at 100, 102, 104, 106; 101 is not implemented
    reader = AdaptiveReader(dev)
    fake = RefusingDevice({101})
    values, good, _ = await reader.read(fake)
    names = [p.name for p in dev.points]
    for name in ("r0", "r1", "r2", "r3"):
        assert good[names.index(name)]
        assert values_of(dev, values, name) == int(name[1:]) * 2 + 100
    assert reader.refused["holding"] == [(101, 102)]
    assert not reader.plan.unread
    # the next poll reads with the learned plan: no exception, no bisecting
    fake.log.clear()
    await reader.read(fake)
    assert all(not ({101} & set(range(r.address, r.end))) for r in fake.log)
    assert len(fake.log) == len(reader.plan.requests)


async def test_refused_point_reads_bad_and_the_rest_stays_good() -> None:
    dev = device(only_holding(6))
    reader = AdaptiveReader(dev)
    values, good, _ = await reader.read(RefusingDevice({104}))
    names = [p.name for p in dev.points]
    bad = {names[i] for i in np.flatnonzero(~good)}
    assert "r2" in bad
    assert np.isnan(values_of(dev, values, "r2"))
    for name in ("r0", "r1", "r3", "r4", "r5"):
        assert good[names.index(name)], name
    assert names.index("r2") in reader.plan.unread


async def test_device_refusing_every_point_fails() -> None:
    dev = device(only_holding(3))
    everything = set(range(0, 200))
    with pytest.raises(DeviceException) as info:
        await AdaptiveReader(dev).read(RefusingDevice(everything))
    assert info.value.code == 2


async def test_other_exceptions_and_timeouts_fail_the_device() -> None:
    dev = device(only_holding(3))
    with pytest.raises(DeviceException) as info:
        await AdaptiveReader(dev).read(RefusingDevice({102}, code=4))
    assert info.value.code == 4

    class Silent:
        async def read(self, device: str, unit: int, req: ReadRequest, timeout: float) -> list[int]:
            raise DeviceOffline(device, "no answer")

    with pytest.raises(DeviceOffline):
        await AdaptiveReader(dev).read(Silent())


async def test_learned_plan_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    dev = device(only_holding(4))
    reader = AdaptiveReader(dev)
    fake = RefusingDevice({101})
    with caplog.at_level(logging.INFO, logger="gateway.drivers.modbus.adaptive"):
        for _ in range(3):
            await reader.read(fake)
    learned = [r for r in caplog.records if "learned read plan" in r.getMessage()]
    assert len(learned) == 1
    assert "holding 101" in learned[0].getMessage()


def test_merge_spans() -> None:
    assert merge_spans([(5, 6), (1, 3), (3, 4), (10, 12)]) == [(1, 4), (5, 6), (10, 12)]


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=30),
    stride=st.integers(min_value=1, max_value=4),
    refused=st.sets(st.integers(min_value=95, max_value=230), max_size=12),
)
async def test_adaptive_reads_exactly_the_points_outside_refused_addresses(
    n: int, stride: int, refused: set[int]
) -> None:
    dev = device(
        [
            *only_holding(n, stride),
            {"name": "big", "register": "holding", "address": 200, "type": "uint32"},
        ]
    )
    reader = AdaptiveReader(dev)
    fake = RefusingDevice(refused)
    values, good, _ = await reader.read(fake)
    for i, p in enumerate(dev.points):
        if p.register != "holding":
            continue
        touches = bool(refused & set(range(p.address, p.address + p.width)))
        assert good[i] == (not touches), p
        if not touches and p.name[0] == "r" and p.name[1:].isdigit():
            assert values[i] == p.address
    # the learned plan never asks for a refused address again
    fake.log.clear()
    await reader.read(fake)
    assert all(not (refused & set(range(r.address, r.end))) for r in fake.log)

"""Learned refusals are asked for again every ``refusal_recheck``: a real Modbus TCP server that
refuses a range is reconfigured to answer it; an injected clock decides when the reader asks."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer

from gateway.config import ConfigError, parse_site
from gateway.drivers.modbus.adaptive import AdaptiveReader
from gateway.drivers.modbus.link import ModbusLink
from tests.harness.ports import free_port
from tests.harness.simulators import scripted_device, serve_tcp

pytestmark = pytest.mark.integration

N = 10  # holding registers 0..9, one uint16 point on each


class ReconfigurableDevice:
    """Holding register i holds i; reads touching ``refused`` get exception 2. Every request's
    (address, count) is logged."""

    def __init__(self, refused: set[int]) -> None:
        self.refused = refused
        self.port = free_port()
        self.requests: list[tuple[int, int]] = []
        self.server: ModbusTcpServer | None = None

    async def _action(  # noqa: PLR0917 (pymodbus calls it with these positionals)
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests.append((address, count))
        if self.refused & set(range(address, address + count)):
            return ExcCodes.ILLEGAL_ADDRESS
        registers[start_address : start_address + N] = list(range(N))
        return None

    async def start(self) -> None:
        self.server = await serve_tcp(self.port, [scripted_device(N, self._action)])

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]


@pytest.fixture
async def device() -> AsyncIterator[ReconfigurableDevice]:
    dev = ReconfigurableDevice({4, 5})
    await dev.start()
    try:
        yield dev
    finally:
        await dev.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _site(port: int, **extra: Any) -> Any:
    points = [
        {"name": f"p{i}", "register": "holding", "address": i, "type": "uint16"} for i in range(N)
    ]
    return parse_site(
        {
            "site": {"id": "recheck"},
            "devices": [
                {
                    "id": "tank-1",
                    "profile": "tank_gauge",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                    "points": points,
                    **extra,
                }
            ],
        }
    )


def _good(reader: AdaptiveReader, good: np.ndarray[Any, Any]) -> set[str]:
    names = [p.name for p in reader.device.points]
    return {n for n, g in zip(names, good, strict=True) if g and n.startswith("p")}


async def test_refused_ranges_are_asked_for_again_every_refusal_recheck(
    device: ReconfigurableDevice,
) -> None:
    site = _site(device.port)
    dev = site.devices[0]
    assert dev.refusal_recheck == 600.0  # the default: ten minutes
    # only the test's points: the profile's own would be refused by this device
    dev = dataclasses.replace(dev, points=dev.points[-N:])
    clock = Clock()
    reader = AdaptiveReader(dev, clock=clock)
    link = ModbusLink(dev.connection, timeout=1.0)
    everything = {f"p{i}" for i in range(N)}
    try:
        _, good, _ = await reader.read(link)
        assert _good(reader, good) == everything - {"p4", "p5"}
        assert reader.refused == {"holding": [(4, 6)]}

        device.refused = set()  # the device is reconfigured: it answers 4 and 5 now
        clock.now += 599.0
        device.requests.clear()
        _, good, _ = await reader.read(link)
        assert _good(reader, good) == everything - {"p4", "p5"}  # not asked again yet
        assert all(not ({4, 5} & set(range(a, a + c))) for a, c in device.requests)

        clock.now += 1.0  # refusal_recheck after the refusal was learned
        values, good, _ = await reader.read(link)
        assert _good(reader, good) == everything
        assert reader.refused == {}
        names = [p.name for p in dev.points]
        assert values[names.index("p4")] == 4.0 and values[names.index("p5")] == 5.0

        device.refused = {7}  # a new refusal is learned at once, as ever
        _, good, _ = await reader.read(link)
        assert _good(reader, good) == everything - {"p7"}
        clock.now += 600.0
        device.requests.clear()
        _, good, _ = await reader.read(link)  # asked again, still refused: learned again
        assert any(7 in range(a, a + c) for a, c in device.requests)
        assert _good(reader, good) == everything - {"p7"}
        assert reader.refused == {"holding": [(7, 8)]}
    finally:
        link.close()


@pytest.mark.parametrize("value", [0, -1, 86_401, "soon"])
def test_refusal_recheck_bounds(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        _site(1502, refusal_recheck=value)
    assert [i.path for i in info.value.issues] == ["devices[0].refusal_recheck"]

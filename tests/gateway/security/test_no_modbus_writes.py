"""The gateway never writes to a field device unless a point is explicitly ``writable: true`` —
and today it has no write path at all: no pymodbus write call in the package, no write method on
the Modbus link, and a recorder between the gateway and the simulators sees read function codes
only, even with points marked writable."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import BUILTIN_PROFILES, load_profile, parse_site
from gateway.drivers.modbus.link import ModbusLink
from simulators import SiteSimulator
from tests.harness.mosquitto import Mosquitto
from tests.harness.paths import ROOT
from tests.harness.ports import free_port

GATEWAY = ROOT / "gateway"
READ_CODES = {1, 2, 3, 4}  # read coils, discrete inputs, holding registers, input registers
WRITE_CALL = re.compile(
    r"\b(write_(coil|coils|register|registers)|mask_write_register|readwrite_registers)\b"
)


def test_no_modbus_write_call_in_the_gateway_package() -> None:
    hits = [
        f"{path.relative_to(GATEWAY.parent)}:{n}: {line.strip()}"
        for path in sorted(GATEWAY.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if WRITE_CALL.search(line)
    ]
    assert hits == []


def test_the_modbus_link_offers_reads_only() -> None:
    public = {
        name
        for name in dir(ModbusLink)
        if not name.startswith("_") and callable(getattr(ModbusLink, name))
    }
    assert public == {"connect", "read", "close", "stop_reads"}


def test_no_builtin_profile_point_is_writable() -> None:
    for name in BUILTIN_PROFILES:
        assert not any(p.writable for p in load_profile(name).points), name


def test_points_are_read_only_unless_marked() -> None:
    site = parse_site(
        {
            "site": {"id": "ro"},
            "devices": [
                {
                    "id": "face1-gas",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "port": 1502},
                    "points": [{"name": "relay_cut", "writable": True}],
                }
            ],
        }
    )
    writable = {p.name for p in site.devices[0].points if p.writable}
    assert writable == {"relay_cut"}


# -- what goes over the wire ------------------------------------------------------------------


class FunctionCodeRecorder:
    """A Modbus TCP proxy that counts the function code of every request passing through."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.codes: Counter[int] = Counter()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FunctionCodeRecorder:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def requests() -> None:
            buf = b""
            while data := await reader.read(4096):
                buf += data
                while len(buf) >= 8:  # MBAP header (7 bytes) + function code
                    size = 6 + int.from_bytes(buf[4:6], "big")
                    if len(buf) < size:
                        break
                    self.codes[buf[7]] += 1
                    buf = buf[size:]
                up_writer.write(data)
                await up_writer.drain()

        async def replies() -> None:
            while data := await up_reader.read(4096):
                writer.write(data)
                await writer.drain()

        with contextlib.suppress(Exception):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(requests())
                tg.create_task(replies())
        writer.close()
        up_writer.close()


def device(dev_id: str, profile: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": dev_id,
        "profile": profile,
        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
        "poll_interval": 0.2,
        "timeout": 0.5,
        **extra,
    }


KINDS = {
    "face1-gas": (
        "gas_detector",
        {
            "points": [{"name": "relay_cut", "writable": True}],
            "tags": {"position": "T1", "area": "face-1"},
        },
    ),
    "tank-1": ("tank_gauge", {}),
    "lift-1": ("elevator", {}),
    "crane-1": ("tower_crane", {}),
}


@contextlib.asynccontextmanager
async def recorders(ports: dict[str, int]) -> AsyncIterator[dict[str, FunctionCodeRecorder]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {
            dev: await stack.enter_async_context(FunctionCodeRecorder(port))
            for dev, port in ports.items()
        }


@pytest.mark.integration
async def test_a_gateway_run_sends_read_requests_only(mosquitto: Mosquitto) -> None:
    upstream = {dev: free_port() for dev in KINDS}
    sim_site = parse_site(
        {
            "site": {"id": "ro"},
            "devices": [device(d, p, upstream[d], **x) for d, (p, x) in KINDS.items()],
        }
    )
    async with SiteSimulator(sim_site, "normal"), recorders(upstream) as rec:
        gw_site = parse_site(
            {
                "site": {"id": "ro"},
                "mqtt": {"url": mosquitto.url, "topic_prefix": "ro"},
                "rules": [
                    "rules/packs/coal_mine.yaml",
                    "rules/packs/tank_farm.yaml",
                    "rules/packs/elevator.yaml",
                    "rules/packs/tower_crane.yaml",
                ],
                "devices": [device(d, p, rec[d].port, **x) for d, (p, x) in KINDS.items()],
            }
        )
        gw = Gateway(gw_site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            await gw.publisher.wait_connected(15)
            async with asyncio.timeout(20):
                while min(sum(r.codes.values()) for r in rec.values()) < 10:  # noqa: ASYNC110 (four proxies' counters)
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            async with asyncio.timeout(20):
                await task
        for dev, r in rec.items():
            assert set(r.codes) <= READ_CODES, f"{dev}: function codes {dict(r.codes)}"
        assert set().union(*(r.codes for r in rec.values())) >= {1, 2, 3}

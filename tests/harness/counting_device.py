"""A Modbus TCP device that counts its reads: the ground truth for "every sample read arrived".

Each :class:`CountingDevice` is a real pymodbus server on a free loopback port, run on its own
event loop in a background thread (so it keeps serving while the test starts, signals and kills
gateway processes). Holding registers 0-1 hold a ``uint32`` (ABCD) that every read of them
advances first: the n-th read answers ``n``. The device records when each read was answered, so a
test knows exactly which samples a gateway took, and when:

    with CountingDevices(3) as devices:
        site = devices.site_yaml(...)            # a ``counter`` device per server
        ...                                       # run a gateway on it
        devices[0].reads                          # [(seq, time.time()), ...]

``COUNTER_PROFILE`` is the profile the site uses (``kind: counter``, one point ``seq``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer

from tests.harness.ports import free_port, wait_port
from tests.harness.simulators import scripted_device, serve_tcp

__all__ = ["COUNTER_PROFILE", "CountingDevice", "CountingDevices"]

COUNTER_PROFILE = """\
kind: counter
measurement: counter
description: a test device whose register 0-1 counts the reads of it
points:
  - {name: seq, register: holding, address: 0, type: uint32}
"""
_FC_READ_HOLDING = 3


class CountingDevice:
    """One counting device (unit 1) on a loopback port, served from a background loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, device_id: str) -> None:
        self.device_id = device_id
        self.port = free_port()
        self._loop = loop
        self._lock = threading.Lock()
        self._reads: list[tuple[int, float]] = []
        self._server: ModbusTcpServer | None = None

    async def _action(  # noqa: PLR0917 (pymodbus calls it with these positionals)
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code == _FC_READ_HOLDING and values is None and address <= 1:
            with self._lock:
                seq = len(self._reads) + 1
                self._reads.append((seq, time.time()))
            registers[start_address] = (seq >> 16) & 0xFFFF
            registers[start_address + 1] = seq & 0xFFFF
        return None

    async def _start(self) -> None:
        self._server = await serve_tcp(self.port, [scripted_device(16, self._action)])

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        wait_port(self.port)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    @property
    def reads(self) -> list[tuple[int, float]]:
        """Every read answered so far: ``(seq, wall-clock time)``, in order."""
        with self._lock:
            return list(self._reads)

    def reads_after(self, t: float) -> list[int]:
        """The sequence numbers answered after wall-clock time ``t``."""
        return [seq for seq, at in self.reads if at > t]


class CountingDevices:
    """``n`` counting devices on one background event loop; a context manager."""

    def __init__(self, n: int, prefix: str = "counter") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.devices = [CountingDevice(self._loop, f"{prefix}-{i}") for i in range(n)]

    def __enter__(self) -> Self:
        self._thread.start()
        for device in self.devices:
            device.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for device in self.devices:
            with contextlib.suppress(Exception):
                device.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __getitem__(self, i: int) -> CountingDevice:
        return self.devices[i]

    def __iter__(self) -> Iterator[CountingDevice]:
        return iter(self.devices)

    def write_profile(self, directory: Path) -> Path:
        path = directory / "counter.yaml"
        path.write_text(COUNTER_PROFILE)
        return path

    def device_lines(self, profile: Path, poll_interval: float) -> list[str]:
        """The ``devices:`` entries (YAML flow mappings, indented) for a site file."""
        return [
            f"  - {{id: {d.device_id}, profile: '{profile}', connection: {{transport: tcp, "
            f"host: 127.0.0.1, port: {d.port}}}, unit: 1, poll_interval: {poll_interval}, "
            "timeout: 1.0}"
            for d in self.devices
        ]

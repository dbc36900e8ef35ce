"""Field devices for tests: pymodbus servers on free loopback ports, the site simulators, clocks.

* :func:`serve_tcp`: real pymodbus TCP servers for hand-built :class:`SimDevice` s, on a port;
  :func:`scripted_device`: a device whose answers a test's hook decides.
* :class:`SimulatorThread`: a site's simulators (``SiteSimulator``) in a thread with its own event
  loop, for tests whose gateway runs as a separate process.
* :class:`SimulatorProcess`: ``python -m simulators`` as its own process (it can be killed).
* :class:`FakeClock` (moved by hand) and :func:`fast_clock` (scenario time at ``factor`` × real
  time) drive simulated time without sleeping.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.config import load_site
from simulators import SiteSimulator
from tests.harness.paths import ROOT
from tests.harness.ports import wait_port
from tests.harness.processes import log_tail, stop_process

__all__ = [
    "FakeClock",
    "ModbusAction",
    "SimulatorProcess",
    "SimulatorThread",
    "fast_clock",
    "scripted_device",
    "serve_tcp",
]

ModbusAction = Callable[
    [int, int, int, int, list[int], list[int] | list[bool] | None],
    Coroutine[None, None, ExcCodes | None],
]
"""pymodbus's request hook: (function code, start address, address, count, registers,
values or None for a read) -> an exception code or None."""


class FakeClock:
    """A clock tests move by hand: ``clock.now += 5``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fast_clock(factor: float) -> Callable[[], float]:
    """A monotonic clock that runs ``factor`` times faster than real time from now on."""
    t0 = time.monotonic()
    return lambda: t0 + (time.monotonic() - t0) * factor


def scripted_device(registers: int, action: ModbusAction) -> SimDevice:
    """Unit 1 with ``registers`` zeroed holding and input registers (and 16 coils and discrete
    inputs); pymodbus calls ``action`` on every request, which may change the registers it
    answers with or return an exception code."""
    simdata = (
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)],
        [SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)],
    )
    return SimDevice(id=1, simdata=simdata, action=action)


async def serve_tcp(port: int, devices: Sequence[SimDevice]) -> ModbusTcpServer:
    """A real pymodbus TCP server for ``devices`` on ``127.0.0.1:port``, serving in the
    background of the running loop; ``await server.shutdown()`` when done."""
    server = ModbusTcpServer(list(devices), address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


class SimulatorThread:
    """A site file's simulators in a thread with its own event loop (a context manager).

    ``speed``: scenario time runs that many times faster than real time; ``hold_s``: scenario
    time stops there (a condition the scenario reached stays for as long as a test needs it).
    """

    def __init__(
        self,
        site_file: Path,
        *,
        scenario: str = "normal",
        seed: int = 1,
        speed: float = 1.0,
        hold_s: float = float("inf"),
    ) -> None:
        self.site = load_site(site_file)
        self.scenario = scenario
        self.seed = seed
        self.speed = speed
        self.hold_s = hold_s
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="simulators", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(15):
            raise TimeoutError("simulators did not start")
        return self

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        t0 = time.monotonic()

        def clock() -> float:
            return t0 + min((time.monotonic() - t0) * self.speed, self.hold_s)

        async with SiteSimulator(self.site, scenario=self.scenario, seed=self.seed, clock=clock):
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatorProcess:
    """``python -m simulators -c SITE`` as its own process, run from the repository root.

    ``imports``: modules with more scenarios (``--import``); ``ports``: the device ports to wait
    for before :meth:`start` returns. Its stderr goes to ``log``.
    """

    def __init__(
        self,
        site_file: Path,
        log: Path,
        *,
        scenario: str | None = None,
        seed: int | None = None,
        imports: Sequence[str] = (),
        ports: Sequence[int] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = [sys.executable, "-m", "simulators", "-c", str(site_file)]
        if scenario is not None:
            self.args += ["--scenario", scenario]
        for module in imports:
            self.args += ["--import", module]
        if seed is not None:
            self.args += ["--seed", str(seed)]
        self.log = log
        self.ports = tuple(ports)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=log
            )
        for port in self.ports:
            wait_port(port, timeout=timeout)
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        proc, self.proc = self.proc, None
        return stop_process(proc, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log, lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

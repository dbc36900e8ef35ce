"""Load check: how much CPU one simulator process spends serving many polled TCP devices.

::

    python -m simulators.loadcheck --devices 1000 --seconds 30

builds a site of ``--devices`` devices, each on its own TCP port, with a synthetic 60-register
profile (20 float32 + 20 uint16 points, a random walk per point; ``--profile gas_detector`` etc.
uses a built-in profile and its signal model instead), starts the simulator in a child process,
and polls every device once a second with one FC03 read of its whole holding block from this process
(raw asyncio sockets, requests spread evenly over the second). It reports the simulator's CPU use
(user + system time of the child over the measuring window), the replies per second, reply
latency percentiles, and errors. Only the child's CPU counts against the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import socket
import struct
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["LoadResult", "main", "run_load"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load check measured."""

    devices: int
    seconds: float
    replies_per_s: float
    errors: int
    simulator_cpu_pct: float
    latency_p50_ms: float
    latency_p99_ms: float
    registers_per_read: int
    profile: str


def _write_site(directory: Path, devices: int, first_port: int, profile_name: str) -> Path:
    if profile_name == "synthetic60":
        profile_name = "synthetic60.yaml"
    points = [
        f"  - {{name: f{i}, register: holding, address: {2 * i}, type: float32}}" for i in range(20)
    ] + [
        f"  - {{name: u{i}, register: holding, address: {40 + i}, type: uint16, scale: 0.1}}"
        for i in range(20)
    ]
    profile = directory / "synthetic60.yaml"
    profile.write_text("kind: synthetic\npoints:\n" + "\n".join(points) + "\n", encoding="utf-8")
    lines = ["site: {id: loadcheck}", "devices:"]
    for i in range(devices):
        lines.append(
            f"  - {{id: dev{i:05d}, profile: {profile_name}, unit: 1, "
            f"connection: {{transport: tcp, host: 127.0.0.1, port: {first_port + i}}}}}"
        )
    site = directory / "site.yaml"
    site.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site


def _free_port_range(count: int) -> int:
    """A first port such that ``count`` consecutive ports are free right now."""
    for first in range(20000, 60000 - count, 997):
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no run of {count} free ports")


def _serve(site_path: str, ready: multiprocessing.synchronize.Event) -> None:
    """Child process: run the simulator until terminated."""
    from gateway.config import load_site  # noqa: PLC0415 (imported in the child only)
    from simulators.site import SiteSimulator  # noqa: PLC0415

    async def serve() -> None:
        async with SiteSimulator(load_site(site_path), "normal", seed=1) as sim:
            ready.set()
            await sim.wait_closed()

    asyncio.run(serve())


async def _poll(  # noqa: PLR0917
    port: int,
    registers: int,
    offset: float,
    stop_at: float,
    replies: list[tuple[float, float]],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(offset)
    tid = 0
    expected = 9 + 2 * registers
    next_at = time.perf_counter()
    try:
        while next_at < stop_at:
            tid = (tid + 1) & 0xFFFF
            request = struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 0, registers)
            started = time.perf_counter()
            writer.write(request)
            try:
                reply = await asyncio.wait_for(reader.readexactly(expected), 2.0)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                errors.append(port)
                return
            done = time.perf_counter()
            if reply[7] != 3 or struct.unpack(">H", reply[:2])[0] != tid:
                errors.append(port)
            replies.append((done, done - started))
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _measure(  # noqa: PLR0917
    first_port: int, devices: int, registers: int, warmup: float, seconds: float, pid: int
) -> tuple[list[tuple[float, float]], list[int], tuple[float, float, float, float]]:
    import psutil  # noqa: PLC0415 (a dev dependency, needed only here)

    proc = psutil.Process(pid)
    replies: list[tuple[float, float]] = []
    errors: list[int] = []
    stop_at = time.perf_counter() + warmup + seconds + 1.0
    async with asyncio.TaskGroup() as tg:
        for i in range(devices):
            offset = i / devices
            tg.create_task(_poll(first_port + i, registers, offset, stop_at, replies, errors))
        await asyncio.sleep(warmup + 1.0)
        cpu = proc.cpu_times()
        t0, cpu0 = time.perf_counter(), cpu.user + cpu.system
        await asyncio.sleep(seconds)
        cpu = proc.cpu_times()
        t1, cpu1 = time.perf_counter(), cpu.user + cpu.system
    return replies, errors, (t0, t1, cpu0, cpu1)


def run_load(
    devices: int = 1000, seconds: float = 30.0, warmup: float = 5.0, profile: str = "synthetic60"
) -> LoadResult:
    """Serve ``devices`` polled devices for ``warmup + seconds`` and measure the simulator."""
    from gateway.config import load_site  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        first_port = _free_port_range(devices)
        site = _write_site(Path(tmp), devices, first_port, profile)
        first = load_site(site).devices[0]
        registers = max(p.address + p.width for p in first.points if p.register == "holding")
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        child = ctx.Process(target=_serve, args=(str(site), ready), daemon=True)
        child.start()
        try:
            if not ready.wait(120):
                raise RuntimeError("simulator did not start")
            assert child.pid is not None
            replies, errors, (t0, t1, cpu0, cpu1) = asyncio.run(
                _measure(first_port, devices, registers, warmup, seconds, child.pid)
            )
        finally:
            child.terminate()
            child.join(10)
    wall = t1 - t0
    window = sorted(lat for done, lat in replies if t0 <= done <= t1) or [0.0]
    return LoadResult(
        devices=devices,
        seconds=round(wall, 1),
        replies_per_s=round(len(window) / wall, 1),
        errors=len(errors),
        simulator_cpu_pct=round(100.0 * (cpu1 - cpu0) / wall, 1),
        latency_p50_ms=round(1000 * window[len(window) // 2], 2),
        latency_p99_ms=round(1000 * window[int(len(window) * 0.99)], 2),
        registers_per_read=registers,
        profile=profile,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: print one JSON line with the measurements."""
    parser = argparse.ArgumentParser(prog="python -m simulators.loadcheck", description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--profile", default="synthetic60", help="synthetic60 or a built-in profile name"
    )
    args = parser.parse_args(argv)
    result = run_load(args.devices, args.seconds, args.warmup, args.profile)
    print(json.dumps(asdict(result)))
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

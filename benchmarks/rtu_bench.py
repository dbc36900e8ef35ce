"""Shared RTU line: how busy is the line, and do healthy units keep their pace next to a silent one?

Serves ``--units`` units on one line (a socat pty pair for ``rtu``, a pymodbus RTU-framed TCP
server for ``rtu-over-tcp``), ``--silent`` of them never answering, each with the gateway
benchmark's synthetic register map. One ``ModbusLink`` owns the line and one ``DevicePoller`` per
unit polls it on its own interval, as the gateway does. Line utilisation is the time the line
was held by requests (sent until answered or timed out, ``ModbusLink.busy_s``) over wall time.
A pty does not pace bytes at the baud rate, so "time on the wire" here is request/response time
through the OS; on a real RS-485 line add the characters' wire time. Prints human lines, then
one JSON line last:

    {"mode": "rtu", "transport", "units", "silent", "points_per_unit", "poll_interval",
     "seconds", "line_utilisation", "requests_per_s", "points_per_s", "healthy_polls_per_s",
     "healthy_polls_expected_per_s", "failed_polls", "resyncs", "frame_gap_ms", "min_gap_ms"}

Usage: benchmarks/rtu_bench.py [--transport rtu|rtu-over-tcp] [--units N] [--silent K]
       [--points M] [--poll-interval S] [--seconds T] [--baudrate B]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymodbus.framer import FramerType  # noqa: E402
from pymodbus.pdu import ModbusPDU  # noqa: E402
from pymodbus.server import ModbusSerialServer, ModbusTcpServer  # noqa: E402
from pymodbus.simulator import DataType, SimData, SimDevice  # noqa: E402

from benchmarks.gateway_bench import synthetic_profile  # noqa: E402
from gateway.config import parse_site  # noqa: E402
from gateway.drivers.modbus.link import ModbusLink  # noqa: E402
from gateway.points import PointTable  # noqa: E402
from gateway.poller import DevicePoller, PollResult  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402


def start_pty_pair(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    socat = shutil.which("socat")
    if socat is None:
        raise SystemExit("rtu_bench: socat is not installed (needed for --transport rtu)")
    a, b = workdir / "line-a", workdir / "line-b"
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit("rtu_bench: socat did not create the pty pair")
        time.sleep(0.02)
    return proc, str(a), str(b)


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    (workdir / "bench_profile.yaml").write_text(synthetic_profile(args.points))
    answering = set(range(1, args.units - args.silent + 1))
    devices = [
        SimDevice(u, simdata=[SimData(0, values=[u] * 1000, datatype=DataType.REGISTERS)])
        for u in sorted(answering)
    ]

    def drop_silent(sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        return pdu if sending or pdu.dev_id in answering else None

    socat = None
    server: ModbusSerialServer | ModbusTcpServer
    if args.transport == "rtu":
        socat, a, b = start_pty_pair(workdir)
        server = ModbusSerialServer(
            devices,
            port=a,
            baudrate=args.baudrate,
            trace_pdu=drop_silent,  # type: ignore[arg-type]
        )
        conn: dict[str, Any] = {"transport": "rtu", "port": b, "baudrate": args.baudrate}
    else:
        port = free_port()
        server = ModbusTcpServer(
            devices,
            framer=FramerType.RTU,
            address=("127.0.0.1", port),
            trace_pdu=drop_silent,  # type: ignore[arg-type]
        )
        conn = {
            "transport": "rtu-over-tcp",
            "host": "127.0.0.1",
            "port": port,
            "baudrate": args.baudrate,
        }
    await server.serve_forever(background=True)
    site = parse_site(
        {
            "site": {"id": "rtu-bench"},
            "devices": [
                {
                    "id": f"unit{u:03d}",
                    "profile": "bench_profile.yaml",
                    "connection": conn,
                    "unit": u,
                    "poll_interval": args.poll_interval,
                    "timeout": args.timeout,
                }
                for u in range(1, args.units + 1)
            ],
        },
        base_dir=workdir,
    )
    table = PointTable(site.devices)
    link = ModbusLink(site.devices[0].connection, timeout=args.timeout)
    ok = {d.id: 0 for d in site.devices}
    failed = 0
    points = 0

    def on_result(res: PollResult) -> None:
        nonlocal failed, points
        if res.error is None and res.good is not None:
            ok[res.rows.device.id] += 1
            points += int(res.good.sum())
        else:
            failed += 1

    n = len(site.devices)
    pollers = [
        DevicePoller(
            rows,
            link,
            on_result,
            backoff_max=10 * args.poll_interval,
            start_delay=args.poll_interval * rows.index / n,
        )
        for rows in table.devices
    ]
    try:
        async with asyncio.timeout(args.seconds):
            async with asyncio.TaskGroup() as tg:
                for p in pollers:
                    tg.create_task(p.run(), name=f"poll {p.device.id}")
    except TimeoutError:
        pass
    wall = args.seconds
    link.close()
    await server.shutdown()
    if socat is not None:
        socat.terminate()
        socat.wait(5)
    healthy = [d.id for d in site.devices if d.unit in answering]
    healthy_rate = sum(ok[d] for d in healthy) / len(healthy) / wall if healthy else 0.0
    return {
        "mode": "rtu",
        "transport": args.transport,
        "units": args.units,
        "silent": args.silent,
        "points_per_unit": args.points,
        "poll_interval": args.poll_interval,
        "seconds": wall,
        "line_utilisation": round(link.busy_s / wall, 4),
        "requests_per_s": round(link.requests / wall, 1),
        "points_per_s": round(points / wall, 1),
        "healthy_polls_per_s": round(healthy_rate, 3),
        "healthy_polls_expected_per_s": round(1.0 / args.poll_interval, 3),
        "failed_polls": failed,
        "resyncs": link.resyncs,
        "frame_gap_ms": round(link.frame_gap * 1000, 3),
        "min_gap_ms": round((link.min_gap_s or 0.0) * 1000, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transport", choices=("rtu", "rtu-over-tcp"), default="rtu")
    ap.add_argument("--units", type=int, default=8)
    ap.add_argument("--silent", type=int, default=1)
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--poll-interval", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=0.3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--baudrate", type=int, default=9600)
    args = ap.parse_args()
    if not 0 <= args.silent < args.units:
        raise SystemExit("rtu_bench: need 0 <= --silent < --units")
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(bench(args, Path(tmp)))
    print(
        f"{result['transport']}: {result['units']} units ({result['silent']} silent) on one "
        f"line, {result['points_per_unit']} points each, every {result['poll_interval']} s"
    )
    print(
        f"  line utilisation {result['line_utilisation']:.1%}, "
        f"{result['requests_per_s']} requests/s, {result['points_per_s']} points/s"
    )
    print(
        f"  healthy units: {result['healthy_polls_per_s']} polls/s each "
        f"(schedule {result['healthy_polls_expected_per_s']}); "
        f"failed polls {result['failed_polls']}"
    )
    print(f"  frame gap {result['frame_gap_ms']} ms, shortest seen {result['min_gap_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

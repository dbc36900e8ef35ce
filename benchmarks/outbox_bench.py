"""Outbox throughput: async puts from many device tasks, then a drain through deliver().

Each message is a telemetry JSON of 60 values (~2 KB), as the gateway publishes them. A put is
``await AsyncOutbox.put`` from one of ``--devices`` concurrent tasks (so puts share transactions
as in the gateway); a drain is ``deliver()`` with a send that does nothing, so it measures the
outbox alone (peek + ack). While putting, a ticker measures how late the event loop runs (the
outbox must not block it). Both durability settings run; the JSON keys without a suffix are for
the default, ``synchronous="FULL"``. The last line printed is JSON, medians over ``--runs``.

    .venv/bin/python benchmarks/outbox_bench.py [--messages 20000] [--runs 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.outbox import AsyncOutbox, OutboxEntry, StoredEntry, Synchronous


def telemetry(device: int, n: int) -> OutboxEntry:
    values = {
        f"p{i:02d}": round(1000.0 * ((device * 31 + n * 7 + i) % 997) / 997, 4) for i in range(60)
    }
    body = {
        "ts": 1_760_000_000_000 + n,
        "values": values,
        "quality": dict.fromkeys(values, "good"),
    }
    payload = json.dumps(body, separators=(",", ":")).encode()
    key = f"dev{device:03d}"
    return OutboxEntry("telemetry", key, f"hazard/site-01/{key}/telemetry", payload, 1)


async def run_once(
    path: Path,
    *,
    messages: int,
    devices: int,
    synchronous: Synchronous,
    linger: float,
    max_bytes: int = 256 * 2**20,
) -> dict[str, float]:
    per_device = messages // devices
    entries = [[telemetry(d, n) for n in range(per_device)] for d in range(devices)]
    total = per_device * devices
    lags: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - start - 0.001)

    async def device(outbox: AsyncOutbox, items: list[OutboxEntry]) -> None:
        for item in items:
            await outbox.put("mqtt", item)

    async def send(stored: StoredEntry) -> None:
        return None

    async with AsyncOutbox(
        path, synchronous=synchronous, linger=linger, max_bytes=max_bytes
    ) as outbox:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for items in entries:
                tg.create_task(device(outbox, items))
        put_s = time.perf_counter() - start
        stop.set()
        await tick
        size = outbox.stats().bytes
        dropped = outbox.stats().dropped_telemetry
        start = time.perf_counter()
        drained = await outbox.deliver("mqtt", send, batch=500)
        drain_s = time.perf_counter() - start
    assert drained + dropped == total, (drained, dropped, total)
    return {
        "put_per_s": total / put_s,
        "drain_per_s": drained / drain_s,
        "bytes_per_msg": size / drained,
        "dropped": dropped,
        "put_mb_per_s": size / put_s / 2**20,
        "loop_lag_max_ms": max(lags, default=0.0) * 1000,
        "loop_lag_p99_ms": statistics.quantiles(lags, n=100)[98] * 1000 if len(lags) > 1 else 0.0,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--linger", type=float, default=0.005)
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    result: dict[str, Any] = {}
    modes: tuple[Synchronous, ...] = ("FULL", "NORMAL")  # FULL is the default
    for synchronous in modes:
        runs = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                stats = asyncio.run(
                    run_once(
                        Path(tmp) / "outbox.sqlite3",
                        messages=args.messages,
                        devices=args.devices,
                        synchronous=synchronous,
                        linger=args.linger,
                    )
                )
            runs.append(stats)
            print(
                f"{synchronous:6s} run {i + 1}: put {stats['put_per_s']:9.0f}/s "
                f"({stats['put_mb_per_s']:.1f} MB/s)  drain {stats['drain_per_s']:9.0f}/s  "
                f"loop lag max {stats['loop_lag_max_ms']:.1f} ms"
            )
        med = median_of(runs)
        if synchronous == "FULL":
            result.update({k: round(v, 1) for k, v in med.items() if k != "dropped"})
        else:
            result["put_per_s_normal"] = round(med["put_per_s"], 1)
            result["drain_per_s_normal"] = round(med["drain_per_s"], 1)
    bound_runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            path = Path(tmp) / "outbox.sqlite3"
            bound_runs.append(
                asyncio.run(
                    run_once(
                        path,
                        messages=args.messages,
                        devices=args.devices,
                        synchronous="FULL",
                        linger=args.linger,
                        max_bytes=4 * 2**20,
                    )
                )
            )
    at_bound = median_of(bound_runs)
    print(
        f"at a 4 MiB bound: put {at_bound['put_per_s']:.0f}/s, "
        f"{at_bound['dropped']:.0f} of {args.messages} telemetry dropped"
    )
    result["put_per_s_at_bound"] = round(at_bound["put_per_s"], 1)
    result.update(messages=args.messages, devices=args.devices, runs=args.runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

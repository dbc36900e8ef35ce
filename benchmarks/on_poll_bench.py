"""CPU of the gateway's hot path per poll, without the network: ``Gateway.on_poll``.

``gateway_bench`` measures the whole gateway against simulators and a broker, which on a shared
machine swings by tens of percent from run to run. This one times what the gateway does with one
poll's result (the point table, the telemetry record, its MQTT payload, the publisher's queue,
the alarm service's bookkeeping) on the same generated site (``--devices`` × ``--points``,
``benchmarks/bench_rules.yaml``), in process CPU time, so two versions can be compared to a few
percent even on a busy machine. Every tenth device has one failed point. No broker is
connected: the publisher's bounded QoS 0 queue drops its oldest message per poll, as it does
while the broker is away.

Usage: benchmarks/on_poll_bench.py [--devices N] [--points M] [--rounds R] [--no-rules]

Prints one human line, then one JSON line last:

    {"devices", "points", "rounds", "on_poll_us_per_device", "on_poll_cpu_s_per_10k_points"}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gateway_bench import BENCH_RULES, write_site  # noqa: E402
from gateway.app import Gateway  # noqa: E402
from gateway.config import load_site  # noqa: E402
from gateway.poller import PollResult  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--points", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--no-rules", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hazardgw-onpoll-"))
    rules = None if args.no_rules else BENCH_RULES
    # the MQTT URL is never dialled: the gateway is not run, only fed poll results
    site = load_site(
        write_site(work, args.devices, args.points, 1.0, "mqtt://127.0.0.1:1", rules=rules)
    )
    gateway = Gateway(site)
    rng = np.random.default_rng(1)
    results = []
    for rows in gateway.table.devices:
        n = len(rows.names)
        values = rng.normal(20.0, 5.0, n)
        values[rows.integer] = np.round(np.abs(values[rows.integer]))
        good = np.ones(n, dtype=bool)
        if rows.index % 10 == 0:
            good[3], values[3] = False, np.nan
        results.append(PollResult(rows, time.time(), values, good, None, 0.002, 0.001, 1))

    def one_round() -> float:
        start = time.process_time()
        for result in results:
            gateway.on_poll(result)
        return time.process_time() - start

    for _ in range(3):
        one_round()
    median = statistics.median(one_round() for _ in range(args.rounds))
    per_device_us = median / args.devices * 1e6
    per_10k = median / (args.devices * args.points) * 1e4
    print(
        f"on_poll: {per_device_us:.1f} µs per poll of {args.points} points "
        f"({per_10k:.5f} CPU s per 10k points), median of {args.rounds} rounds"
    )
    out = {
        "devices": args.devices,
        "points": args.points,
        "rounds": args.rounds,
        "on_poll_us_per_device": round(per_device_us, 2),
        "on_poll_cpu_s_per_10k_points": round(per_10k, 5),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Platform ingestion throughput: points/s that ``hazardgw ingest`` workers move from the NATS
cluster's MQTT store into VictoriaMetrics, with one worker and with two, on the same load.

Real parts: a NATS cluster (``--nodes``, default 3, JetStream and MQTT on each node), Debian's
victoria-metrics (``-dedup.minScrapeInterval=1ms``: a sample written twice counts once) and the
workers as their own processes (``hazardgw ingest``). The load is what site gateways publish:
telemetry messages in the gateway's JSON (``{"ts", "values", "quality"}``) published at QoS 1 over
MQTT to the cluster, ``--sites`` sites of ``--devices`` devices with ``--points`` float points
each (a generated profile, given to the workers in the site files as a real platform would).

Rounds alternate one worker, two workers (``--repeat`` each, medians reported, so both see the
same weather on a shared machine). Each round fills first, then drains. A worker is started once
at the beginning so the durable consumer exists (the MQTT store keeps messages only for consumers
that exist); each round publishes ``--records`` telemetry records per device (several MQTT
connections at once), then starts the workers; the clock runs from the moment every worker is
bound to the consumer (so a Python process's start-up is not counted) until the consumer has
nothing pending nor unacknowledged. ``points_per_s`` = points acknowledged in that window / its
length. Each round writes its own sites (``r1-...``, ``r2-...``), so ``lost`` (points published
but not in the database) is counted per round with a query. The machine's load (``uptime``)
is printed with the numbers.

Prints human lines, then one JSON line last:

    {"points_per_s_1_worker", "points_per_s_2_workers", "speedup", "lost", "points_per_round",
     "messages_per_round", "nodes", "load_avg", ...}

Usage: benchmarks/platform_bench.py [--nodes 3] [--sites 4] [--devices 25] [--points 50]
                                    [--records 150] [--batch 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402
import nats  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

from tests.gateway.ingest.harness import IngestProcess, wait_consumer  # noqa: E402
from tests.harness.nats import NatsCluster  # noqa: E402
from tests.harness.victoria_metrics import VictoriaMetrics  # noqa: E402

STORE = "$MQTT_msgs"
CONSUMER = "ingest"
PUBLISH_CONNECTIONS = 8
QUIET = logging.getLogger("platform_bench.mqtt")  # aiomqtt warns at >10 publishes in flight
QUIET.setLevel(logging.ERROR)


def write_sites(work: Path, rnd: int, args: argparse.Namespace) -> list[Path]:
    profile = work / "plc.yaml"
    if not profile.exists():
        points = [
            {"name": f"p{i}", "register": "holding", "address": 2 * i, "type": "float32"}
            for i in range(args.points)
        ]
        profile.write_text(yaml.safe_dump({"kind": "plc", "measurement": "plc", "points": points}))
    paths = []
    for s in range(args.sites):
        doc = {
            "site": {"id": f"r{rnd}-site-{s}"},
            "mqtt": {"url": "mqtt://127.0.0.1:1883", "telemetry_qos": 1},
            "devices": [
                {
                    "id": f"plc-{d}",
                    "profile": str(profile),
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 20000 + d},
                    "tags": {"area": f"a{d % 5}"},
                }
                for d in range(args.devices)
            ],
        }
        path = work / f"r{rnd}-site-{s}.yaml"
        path.write_text(yaml.safe_dump(doc))
        paths.append(path)
    return paths


def write_ingest(work: Path, vm_url: str, sites: list[Path], args: argparse.Namespace) -> Path:
    path = work / "ingest.yaml"
    doc = {
        "nats": {"ack_wait": 30},
        "influx": {"url": vm_url, "org": "bench", "bucket": "bench", "batch_size": args.batch},
        "sites": [str(p) for p in sites],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


async def fill(mqtt_ports: list[int], rnd: int, args: argparse.Namespace, base_ms: int) -> int:
    """Publish every record at QoS 1 (each PUBACK means: stored on a quorum); returns messages."""
    jobs = [
        (f"hazard/r{rnd}-site-{s}/plc-{d}/telemetry", d)
        for s in range(args.sites)
        for d in range(args.devices)
    ]
    names = [f"p{i}" for i in range(args.points)]
    quality = dict.fromkeys(names, "good")

    async def one(conn: int) -> int:
        mine = jobs[conn::PUBLISH_CONNECTIONS]
        port = mqtt_ports[conn % len(mqtt_ports)]
        sent = 0
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=f"bench-{rnd}-{conn}",
            max_inflight_messages=200,
            logger=QUIET,
        ) as client:
            for k in range(args.records):
                ts = base_ms + k * 1000
                pending = []
                for topic, d in mine:
                    values = {n: round(d + k * 0.001 + i * 0.01, 3) for i, n in enumerate(names)}
                    doc = {"ts": ts, "values": values, "quality": quality}
                    pending.append(client.publish(topic, json.dumps(doc), qos=1))
                await asyncio.gather(*pending)
                sent += len(pending)
        return sent

    counts = await asyncio.gather(*(one(c) for c in range(PUBLISH_CONNECTIONS)))
    return sum(counts)


async def consumer_state(nc: Any) -> tuple[int, int, int]:
    """(num_pending, num_ack_pending, messages acknowledged so far)."""
    info = await nc.jetstream().consumer_info(STORE, CONSUMER, timeout=5)
    pending, unacked = int(info.num_pending or 0), int(info.num_ack_pending or 0)
    delivered = int(info.delivered.consumer_seq or 0) if info.delivered else 0
    return pending, unacked, delivered - unacked


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes."""
    out = {}
    for group, group_pids in pids.items():
        total = 0.0
        for pid in group_pids:
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[group] = total
    return out


async def drain_rate(
    urls: list[str],
    procs: list[IngestProcess],
    timeout: float,
    *,
    cluster: NatsCluster,
    vm: VictoriaMetrics,
) -> tuple[float, int, dict[str, float]]:
    """(seconds, messages, CPU seconds by component) from the moment every worker is bound to
    the consumer until nothing is pending nor unacknowledged: worker start-up (a Python process,
    seconds on a busy machine) is not counted, and the workers share the whole window."""
    deadline = time.monotonic() + timeout
    while not all(p.bound() for p in procs):
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not bind to the consumer")
        await asyncio.sleep(0.02)
    pids = {
        "workers": [p.proc.pid for p in procs if p.proc is not None],
        "nats": [n.proc.pid for n in cluster.nodes if n.proc is not None],
        "victoria_metrics": [vm.pid] if vm.pid is not None else [],
    }
    nc = await nats.connect(urls)
    try:
        _, _, acked0 = await consumer_state(nc)
        cpu0 = cpu_seconds(pids)
        started = time.monotonic()
        while time.monotonic() < deadline:
            pending, unacked, acked = await consumer_state(nc)
            if pending == 0 and unacked == 0:
                elapsed = time.monotonic() - started
                cpu1 = cpu_seconds(pids)
                cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1}
                return elapsed, acked - acked0, cpu
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    raise TimeoutError(f"not drained within {timeout} s")


def stored_points(vm: VictoriaMetrics, rnd: int, expected: int) -> int:
    """Samples of the round in the database (asked again for a few seconds while fewer: the
    database makes what it took searchable asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        result = vm.query(f'sum(count_over_time({{__name__=~"plc_.*",site=~"r{rnd}-.*"}}[1d]))')
        stored = int(float(result[0]["value"][1])) if result else 0
        if stored >= expected or time.monotonic() > deadline:
            return stored
        time.sleep(0.5)


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


async def round_trip(
    rnd: int,
    workers: int,
    *,
    cluster: NatsCluster,
    vm: VictoriaMetrics,
    work: Path,
    config: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    mqtt_ports = [int(u.rsplit(":", 1)[1]) for u in cluster.mqtt_urls]
    # every round in the past, after the previous one (a query at "now" sees all of it)
    base_ms = int(time.time() * 1000) - 6 * 3_600_000 + rnd * (args.records + 10) * 1000
    t0 = time.monotonic()
    messages = await fill(mqtt_ports, rnd, args, base_ms)
    fill_s = time.monotonic() - t0
    procs = [
        IngestProcess(f"bench-r{rnd}-w{i}", config, cluster.nats_urls, work, stats_interval=5)
        for i in range(workers)
    ]
    load_before = load_avg()
    for p in procs:
        p.start()
    try:
        seconds, timed, cpu = await drain_rate(
            cluster.nats_urls, procs, timeout=300, cluster=cluster, vm=vm
        )
    finally:
        for p in procs:
            p.stop()
    points = messages * args.points
    timed_points = timed * args.points
    stored = stored_points(vm, rnd, points)
    shares = [p.written()[0] for p in procs]
    out = {
        "workers": workers,
        "messages": messages,
        "points": points,
        "fill_s": round(fill_s, 2),
        "drain_s": round(seconds, 2),
        "timed_points": timed_points,
        "points_per_s": round(timed_points / seconds),
        "stored": stored,
        "lost": max(0, points - stored),
        "messages_per_worker": shares,
        "cpu_s": cpu,
        "load_avg": load_before,
    }
    print(
        f"round {rnd}: {workers} worker(s): {points} points ({messages} messages) filled in "
        f"{fill_s:.1f} s, drained in {seconds:.2f} s = {out['points_per_s']:,} points/s; "
        f"stored {stored}, lost {out['lost']}; per worker {shares}; load {load_before}; "
        f"CPU seconds while draining: {cpu}"
    )
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="platform-bench-") as tmp:
        work = Path(tmp)
        with (
            NatsCluster.launch(work / "nats", nodes=args.nodes) as cluster,
            VictoriaMetrics.launch(work, extra_args=("-dedup.minScrapeInterval=1ms",)) as vm,
        ):
            rounds = 2 * args.repeat
            sites = [p for rnd in range(1, rounds + 1) for p in write_sites(work, rnd, args)]
            config = write_ingest(work, vm.url, sites, args)
            # the MQTT layer makes its store when a first client connects; a worker makes the
            # consumer; from then on the store keeps every QoS 1 message for the workers
            async with aiomqtt.Client("127.0.0.1", int(cluster.mqtt_urls[0].rsplit(":", 1)[1])):
                pass
            first = IngestProcess("bench-setup", config, cluster.nats_urls, work).start()
            nc = await nats.connect(cluster.nats_urls)
            try:
                await wait_consumer(nc.jetstream(), STORE, CONSUMER, 60)
            finally:
                await nc.close()
            first.stop()
            kw = {"cluster": cluster, "vm": vm, "work": work, "config": config, "args": args}
            results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            for rnd in range(1, rounds + 1):  # 1, 2, 1, 2, ...: both see the same weather
                workers = 1 if rnd % 2 else 2
                results[workers].append(await round_trip(rnd, workers, **kw))
    one = statistics.median(r["points_per_s"] for r in results[1])
    two = statistics.median(r["points_per_s"] for r in results[2])
    lost = sum(r["lost"] for rs in results.values() for r in rs)
    return {
        "points_per_s_1_worker": round(one),
        "points_per_s_2_workers": round(two),
        "speedup": round(two / one, 2),
        "lost": lost,
        "repeat": args.repeat,
        "points_per_round": results[1][0]["points"],
        "messages_per_round": results[1][0]["messages"],
        "points_per_message": args.points,
        "nodes": args.nodes,
        "batch": args.batch,
        "rounds": [r for rnd in zip(results[1], results[2], strict=True) for r in rnd],
        "load_avg": load_avg(),
        "cpus": os.cpu_count(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3, help="NATS cluster nodes (default 3)")
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--devices", type=int, default=25, help="devices per site")
    p.add_argument("--points", type=int, default=50, help="points per device")
    p.add_argument("--records", type=int, default=150, help="telemetry records per device")
    p.add_argument("--repeat", type=int, default=2, help="rounds per worker count (medians)")
    p.add_argument("--batch", type=int, default=1000, help="influx.batch_size of the workers")
    args = p.parse_args()
    print(f"platform bench: {os.cpu_count()} CPUs, load {os.getloadavg()}")
    result = asyncio.run(main_async(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    subprocess.run(["uptime"], check=False)
    sys.exit(main())

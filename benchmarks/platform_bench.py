"""Platform ingestion throughput: points/s that ``hazardgw ingest`` workers move from the NATS
cluster's MQTT store into VictoriaMetrics, with one worker and with two, on the same stream
content, and where the CPU goes while they do.

Real parts: a NATS cluster (``--nodes``, default 3, JetStream and MQTT on each node), Debian's
victoria-metrics (``-dedup.minScrapeInterval=1ms``: a sample written twice counts once) and the
workers as their own processes (``hazardgw ingest``). The load is what site gateways publish:
telemetry messages in the gateway's JSON (``{"ts", "values", "quality"}``) published at QoS 1 over
MQTT to the cluster, ``--sites`` sites of ``--devices`` devices with ``--points`` float points
each (a generated profile, given to the workers in the site files as a real platform would).

Each round fills, then drains. The fill publishes the same bytes every round (same topics,
timestamps and values, ``--records`` telemetry records per device over several MQTT connections
at once), so every drain works on the same stream content and, as in production, each
acknowledgement makes the server remove the message from the store. The workers of round ``N``
read site files that add the device tag ``drain=rN``: each round writes series of its own, so
``lost`` (points published but not in the database) is counted per round with a query.

A worker is started once at the beginning so the durable consumer exists (the MQTT store keeps
messages only for consumers that exist). In a round the clock runs from the moment every worker
is bound to the consumer (so a Python process's start-up is not counted) until the consumer has
nothing pending nor unacknowledged; ``points_per_s`` = points acknowledged in that window / its
length. Rounds run 1, 2, 2, 1, 1, 2, ... workers (``--repeat`` rounds each; medians reported)
so slow drifts of a shared machine weigh on both counts alike; ``speedups`` are the ratios of
neighbouring rounds.

The CPU each process used in the window (user + system, psutil) is in every round's ``cpu_s``:
each NATS node (``leader`` names the node leading the store and the consumer), each worker,
VictoriaMetrics, this benchmark (which asks the consumer's state every 50 ms), and ``others``:
what the rest of the machine used meanwhile (other people's work on a shared host).
``cpu_s_per_10k_points`` (medians) divides by the points of the window. ``capacity_points_per_s``
= cores × 10,000 / (CPU-seconds per 10,000 points of every part of the pipeline, median of the
two-worker rounds): the rate at which two workers' pipeline would fill every core of this
machine with nothing else running, and so ``speedup_ceiling`` = capacity / one worker's rate is
the most two workers could add here. The machine's load (``uptime``) is printed with the numbers.

Prints human lines, then one JSON line last:

    {"points_per_s_1_worker", "points_per_s_2_workers", "speedup", "speedups", "lost",
     "cpu_s_per_10k_points", "capacity_points_per_s", "speedup_ceiling", "rounds", "load_avg", ...}

Usage: benchmarks/platform_bench.py [--nodes 3] [--sites 4] [--devices 25] [--points 50]
                                    [--records 150] [--batch 1000] [--repeat 3]
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
POLL_S = 0.05
QUIET = logging.getLogger("platform_bench.mqtt")  # aiomqtt warns at >10 publishes in flight
QUIET.setLevel(logging.ERROR)
PIPELINE = ("nats", "workers", "victoria_metrics")
"""The parts of the ingest pipeline (what a platform host runs), as ``cpu_s`` groups them."""


def write_profile(work: Path, args: argparse.Namespace) -> Path:
    profile = work / "plc.yaml"
    points = [
        {"name": f"p{i}", "register": "holding", "address": 2 * i, "type": "float32"}
        for i in range(args.points)
    ]
    profile.write_text(yaml.safe_dump({"kind": "plc", "measurement": "plc", "points": points}))
    return profile


def write_sites(work: Path, profile: Path, rnd: int, args: argparse.Namespace) -> list[Path]:
    """Round ``rnd``'s site files: the same sites and devices every round, tagged ``drain=rN``."""
    paths = []
    for s in range(args.sites):
        doc = {
            "site": {"id": f"site-{s}"},
            "mqtt": {"url": "mqtt://127.0.0.1:1883", "telemetry_qos": 1},
            "devices": [
                {
                    "id": f"plc-{d}",
                    "profile": str(profile),
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 20000 + d},
                    "tags": {"area": f"a{d % 5}", "drain": f"r{rnd}"},
                }
                for d in range(args.devices)
            ],
        }
        path = work / f"r{rnd}-site-{s}.yaml"
        path.write_text(yaml.safe_dump(doc))
        paths.append(path)
    return paths


def write_ingest(
    work: Path, rnd: int, vm_url: str, sites: list[Path], args: argparse.Namespace
) -> Path:
    path = work / f"ingest-r{rnd}.yaml"
    doc = {
        "nats": {"ack_wait": 30},
        "influx": {"url": vm_url, "org": "bench", "bucket": "bench", "batch_size": args.batch},
        "sites": [str(p) for p in sites],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def payloads(args: argparse.Namespace, base_ms: int) -> list[list[tuple[str, bytes]]]:
    """Every round's messages, record by record: (topic, payload) for each device."""
    names = [f"p{i}" for i in range(args.points)]
    quality = dict.fromkeys(names, "good")
    out = []
    for k in range(args.records):
        ts = base_ms + k * 1000
        record = []
        for s in range(args.sites):
            for d in range(args.devices):
                values = {n: round(d + k * 0.001 + i * 0.01, 3) for i, n in enumerate(names)}
                doc = {"ts": ts, "values": values, "quality": quality}
                record.append((f"hazard/site-{s}/plc-{d}/telemetry", json.dumps(doc).encode()))
        out.append(record)
    return out


async def fill(mqtt_ports: list[int], rnd: int, records: list[list[tuple[str, bytes]]]) -> int:
    """Publish every record at QoS 1 (each PUBACK means: stored on a quorum); returns messages."""

    async def one(conn: int) -> int:
        port = mqtt_ports[conn % len(mqtt_ports)]
        sent = 0
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=f"bench-{rnd}-{conn}",
            max_inflight_messages=200,
            logger=QUIET,
        ) as client:
            for record in records:
                mine = record[conn::PUBLISH_CONNECTIONS]
                await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in mine))
                sent += len(mine)
        return sent

    counts = await asyncio.gather(*(one(c) for c in range(PUBLISH_CONNECTIONS)))
    return sum(counts)


async def consumer_state(nc: Any) -> tuple[int, int, int, str | None]:
    """(num_pending, num_ack_pending, messages acknowledged so far, the consumer's leader)."""
    info = await nc.jetstream().consumer_info(STORE, CONSUMER, timeout=5)
    pending, unacked = int(info.num_pending or 0), int(info.num_ack_pending or 0)
    delivered = int(info.delivered.consumer_seq or 0) if info.delivered else 0
    leader = info.cluster.leader if info.cluster is not None else None
    return pending, unacked, delivered - unacked, leader


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process; ``machine``: all of the host."""
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = 0.0
    host = psutil.cpu_times()
    out["machine"] = host.user + host.nice + host.system + host.irq + host.softirq + host.steal
    return out


async def drain_rate(
    urls: list[str],
    procs: list[IngestProcess],
    timeout: float,
    *,
    cluster: NatsCluster,
    vm: VictoriaMetrics,
) -> tuple[float, int, dict[str, float], dict[str, str | None]]:
    """(seconds, messages, CPU seconds by process, leaders) from the moment every worker is bound
    to the consumer until nothing is pending nor unacknowledged: worker start-up (a Python
    process, seconds on a busy machine) is not counted, and the workers share the whole window."""
    deadline = time.monotonic() + timeout
    while not all(p.bound() for p in procs):
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not bind to the consumer")
        await asyncio.sleep(0.02)
    pids = {f"nats_{n.name}": n.proc.pid for n in cluster.nodes if n.proc is not None}
    pids |= {f"worker_{i + 1}": p.proc.pid for i, p in enumerate(procs) if p.proc is not None}
    if vm.pid is not None:
        pids["victoria_metrics"] = vm.pid
    pids["bench"] = os.getpid()
    nc = await nats.connect(urls)
    try:
        _, _, acked0, leader = await consumer_state(nc)
        stream_info = await nc.jetstream().stream_info(STORE)
        stream_leader = stream_info.cluster.leader if stream_info.cluster is not None else None
        cpu0 = cpu_seconds(pids)
        started = time.monotonic()
        while time.monotonic() < deadline:
            pending, unacked, acked, _ = await consumer_state(nc)
            if pending == 0 and unacked == 0:
                elapsed = time.monotonic() - started
                cpu1 = cpu_seconds(pids)
                cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
                cpu["others"] = max(0.0, cpu.pop("machine") - sum(cpu.values()))
                leaders = {"store": stream_leader, "consumer": leader}
                return elapsed, acked - acked0, cpu, leaders
            await asyncio.sleep(POLL_S)
    finally:
        await nc.close()
    raise TimeoutError(f"not drained within {timeout} s")


def stored_points(vm: VictoriaMetrics, rnd: int, expected: int) -> int:
    """Samples of the round in the database (asked again for a few seconds while fewer: the
    database makes what it took searchable asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        result = vm.query(f'sum(count_over_time({{__name__=~"plc_.*",drain="r{rnd}"}}[1d]))')
        stored = int(float(result[0]["value"][1])) if result else 0
        if stored >= expected or time.monotonic() > deadline:
            return stored
        time.sleep(0.5)


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def group(cpu: dict[str, float]) -> dict[str, float]:
    """CPU seconds by part: nats (all nodes), workers, victoria_metrics, bench, others."""
    out = dict.fromkeys((*PIPELINE, "bench", "others"), 0.0)
    for name, s in cpu.items():
        key = name.split("_", 1)[0] if name.startswith(("nats_", "worker_")) else name
        out[{"worker": "workers"}.get(key, key)] += s
    return out


def per_10k(cpu: dict[str, float], points: int) -> dict[str, float]:
    return {k: round(v / points * 10_000, 4) for k, v in cpu.items()}


async def one_round(
    rnd: int,
    workers: int,
    *,
    cluster: NatsCluster,
    vm: VictoriaMetrics,
    work: Path,
    profile: Path,
    records: list[list[tuple[str, bytes]]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    mqtt_ports = [int(u.rsplit(":", 1)[1]) for u in cluster.mqtt_urls]
    config = write_ingest(work, rnd, vm.url, write_sites(work, profile, rnd, args), args)
    t0 = time.monotonic()
    messages = await fill(mqtt_ports, rnd, records)
    fill_s = time.monotonic() - t0
    procs = [
        IngestProcess(f"bench-r{rnd}-w{i}", config, cluster.nats_urls, work, stats_interval=5)
        for i in range(workers)
    ]
    load_before = load_avg()
    for p in procs:
        p.start()
    try:
        seconds, timed, cpu, leaders = await drain_rate(
            cluster.nats_urls, procs, timeout=300, cluster=cluster, vm=vm
        )
    finally:
        for p in procs:
            p.stop()
    points = messages * args.points
    timed_points = timed * args.points
    stored = stored_points(vm, rnd, points)
    shares = [p.written()[0] for p in procs]
    parts = group(cpu)
    out = {
        "round": rnd,
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
        "leaders": leaders,
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_s_per_10k_points": per_10k(parts, timed_points),
        "load_avg": load_before,
    }
    split = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
    print(
        f"round {rnd}: {workers} worker(s): {points} points ({messages} messages) filled in "
        f"{fill_s:.1f} s, drained in {seconds:.2f} s = {out['points_per_s']:,} points/s; "
        f"stored {stored}, lost {out['lost']}; per worker {shares}; load {load_before}; "
        f"CPU-s while draining: {split}"
    )
    return out


def order(repeat: int) -> list[int]:
    """Workers per round: 1, 2, 2, 1, 1, 2, ... (``repeat`` rounds each)."""
    pattern = [1, 2, 2, 1]
    return [pattern[i % 4] for i in range(2 * repeat)]


def summary(rounds: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    by = {w: [r for r in rounds if r["workers"] == w] for w in (1, 2)}
    one = statistics.median(r["points_per_s"] for r in by[1])
    two = statistics.median(r["points_per_s"] for r in by[2])
    # neighbouring rounds: (1, 2), (2, 1), (1, 2), ...: the ratio of each pair
    pairs = [(rounds[i], rounds[i + 1]) for i in range(0, len(rounds) - 1, 2)]
    speedups = [
        round(b["points_per_s"] / a["points_per_s"], 2)
        if a["workers"] == 1
        else round(a["points_per_s"] / b["points_per_s"], 2)
        for a, b in pairs
    ]
    per10k = {
        w: {
            k: round(statistics.median(r["cpu_s_per_10k_points"][k] for r in rs), 4)
            for k in rs[0]["cpu_s_per_10k_points"]
        }
        for w, rs in by.items()
    }
    # what bounds two workers: the pipeline's cost in the two-worker rounds
    pipeline = statistics.median(sum(r["cpu_s_per_10k_points"][k] for k in PIPELINE) for r in by[2])
    cpus = os.cpu_count() or 1
    capacity = cpus * 10_000 / pipeline
    return {
        "points_per_s_1_worker": round(one),
        "points_per_s_2_workers": round(two),
        "speedup": round(two / one, 2),
        "speedups": speedups,
        "lost": sum(r["lost"] for r in rounds),
        "repeat": args.repeat,
        "points_per_round": rounds[0]["points"],
        "messages_per_round": rounds[0]["messages"],
        "points_per_message": args.points,
        "nodes": args.nodes,
        "batch": args.batch,
        "cpu_s_per_10k_points": {"1_worker": per10k[1], "2_workers": per10k[2]},
        "pipeline_cpu_s_per_10k_points": round(pipeline, 4),
        "capacity_points_per_s": round(capacity),
        "speedup_ceiling": round(capacity / one, 2),
        "rounds": rounds,
        "load_avg": load_avg(),
        "cpus": cpus,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="platform-bench-") as tmp:
        work = Path(tmp)
        with (
            NatsCluster.launch(work / "nats", nodes=args.nodes) as cluster,
            VictoriaMetrics.launch(work, extra_args=("-dedup.minScrapeInterval=1ms",)) as vm,
        ):
            profile = write_profile(work, args)
            # every round in the past (a query at "now" sees all of it)
            records = payloads(args, int(time.time() * 1000) - 6 * 3_600_000)
            setup = write_ingest(work, 0, vm.url, write_sites(work, profile, 0, args), args)
            # the MQTT layer makes its store when a first client connects; a worker makes the
            # consumer; from then on the store keeps every QoS 1 message for the workers
            async with aiomqtt.Client("127.0.0.1", int(cluster.mqtt_urls[0].rsplit(":", 1)[1])):
                pass
            first = IngestProcess("bench-setup", setup, cluster.nats_urls, work).start()
            nc = await nats.connect(cluster.nats_urls)
            try:
                await wait_consumer(nc.jetstream(), STORE, CONSUMER, 60)
            finally:
                await nc.close()
            first.stop()
            kw = {"cluster": cluster, "vm": vm, "work": work, "profile": profile}
            rounds = [
                await one_round(rnd, workers, records=records, args=args, **kw)
                for rnd, workers in enumerate(order(args.repeat), start=1)
            ]
    return summary(rounds, args)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3, help="NATS cluster nodes (default 3)")
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--devices", type=int, default=25, help="devices per site")
    p.add_argument("--points", type=int, default=50, help="points per device")
    p.add_argument("--records", type=int, default=150, help="telemetry records per device")
    p.add_argument("--repeat", type=int, default=3, help="rounds per worker count (medians)")
    p.add_argument("--batch", type=int, default=1000, help="influx.batch_size of the workers")
    args = p.parse_args()
    print(f"platform bench: {os.cpu_count()} CPUs, load {os.getloadavg()}")
    result = asyncio.run(main_async(args))
    one, two = result["points_per_s_1_worker"], result["points_per_s_2_workers"]
    print(
        f"1 worker {one:,} points/s, 2 workers {two:,} points/s: {result['speedup']}x "
        f"(pairs {result['speedups']}); lost {result['lost']}; pipeline "
        f"{result['pipeline_cpu_s_per_10k_points']} CPU-s per 10k points = at most "
        f"{result['capacity_points_per_s']:,} points/s on {result['cpus']} cores "
        f"({result['speedup_ceiling']}x one worker); load {result['load_avg']}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    subprocess.run(["uptime"], check=False)
    sys.exit(main())

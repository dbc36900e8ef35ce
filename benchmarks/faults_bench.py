"""Healthy devices keep their timing while a dead and a slow device share the gateway.

Runs the gateway benchmark's load (simulators in their own processes, ``hazardgw run`` in its
own, a real Mosquitto) in alternating runs, A/B/A/B...:

* A: N healthy Modbus TCP devices;
* B: the same N healthy devices plus one *dead* device (accepts the connection, never answers:
  every attempt costs the gateway a full timeout) and one *slow* device (answers after
  ``--slow-share`` x timeout).

The dead and slow devices are served in both runs (by a simulator in this process with the
``Silence`` and ``Delay`` faults), so A and B differ only in the gateway's site file.

Healthy-device timing is measured from the gateway's own sample timestamps: each telemetry
message carries ``ts``, when the device's answer arrived. For every healthy device, sample k of a
run should land at ``phase + k * interval``; its *lag* is how much later than the device's best
sample in that run it lands (poll start lag plus response-time variation). The p99 over every
healthy device's samples is the run's ``lag_p99_ms``; faulty devices are left out, so A and B
measure the same devices. (The gateway status' ``poll_lag_p99_ms`` covers every device and only
the poll start; it is reported beside it.)

Prints one line per run, then a JSON line last::

    {"lag_p99_ms_healthy_only_run": <median of A>, "lag_p99_ms_with_faults": <median of B>,
     "ratio": B/A, "runs_healthy_only": n, "runs_with_faults": n, ...}

The target is ``ratio <= 1.10``.

Usage: benchmarks/faults_bench.py [--devices N] [--points M] [--pairs K] [--seconds T]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._processes import start_gateway, start_simulators, stop_all  # noqa: E402
from benchmarks.gateway_bench import synthetic_profile  # noqa: E402
from gateway.config import load_site  # noqa: E402
from gateway.topics import STATUS, TELEMETRY, site_base  # noqa: E402
from simulators import Delay, Silence, SiteSimulator  # noqa: E402
from tests.harness.mosquitto import Mosquitto  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402

DEAD, SLOW = "dead-dev", "slow-dev"
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # the in-process faulty devices


def device_line(dev_id: str, port: int, interval: float, timeout: float) -> str:
    return (
        f"  - {{id: {dev_id}, profile: bench_profile.yaml, connection: "
        f"{{transport: tcp, host: 127.0.0.1, port: {port}}}, unit: 1, "
        f"poll_interval: {interval}, timeout: {timeout}}}"
    )


def distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def write_sites(
    run_dir: Path, site_id: str, args: argparse.Namespace, mqtt_url: str, faults: bool
) -> tuple[Path, Path, Path]:
    """The healthy devices' site (for the simulator processes), the gateway's site (healthy plus,
    with ``faults``, the dead and slow devices) and the faulty devices' own site."""
    run_dir.mkdir(parents=True)
    (run_dir / "bench_profile.yaml").write_text(synthetic_profile(args.points))
    ports = distinct_ports(args.devices + 2)
    head = [
        f"site: {{id: {site_id}}}",
        f"mqtt: {{url: '{mqtt_url}', topic_prefix: hazard, telemetry_qos: 0}}",
        "devices:",
    ]
    healthy = [
        device_line(f"dev{i:05d}", ports[i], args.poll_interval, args.timeout)
        for i in range(args.devices)
    ]
    faulty = [
        device_line(DEAD, ports[-2], args.poll_interval, args.timeout),
        device_line(SLOW, ports[-1], args.poll_interval, args.timeout),
    ]
    sim_site = run_dir / "healthy.yaml"
    sim_site.write_text("\n".join(head + healthy) + "\n")
    gw_site = run_dir / "gateway.yaml"
    gw_site.write_text("\n".join(head + healthy + (faulty if faults else [])) + "\n")
    fault_site = run_dir / "faulty.yaml"
    fault_site.write_text("\n".join(head + faulty) + "\n")
    return sim_site, gw_site, fault_site


class FaultyDevices(threading.Thread):
    """The dead (Silence) and slow (Delay) devices, served from this process."""

    def __init__(self, site_file: Path, slow_ms: float) -> None:
        super().__init__(name="faulty-devices", daemon=True)
        self.site = load_site(site_file)
        self.slow_ms = slow_ms
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        async with SiteSimulator(self.site, "static") as sim:
            sim.inject(DEAD, Silence())
            sim.inject(SLOW, Delay(self.slow_ms))
            self.ready.set()
            await self._stop_event.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(10)


class Collector:
    """Keeps every telemetry timestamp per device, the device statuses and the gateway status."""

    def __init__(self, port: int, site_id: str) -> None:
        self.lock = threading.Lock()
        self.recording = False
        self.ts: dict[str, list[int]] = defaultdict(list)
        self.status: dict[str, dict[str, Any]] = {}
        self.gateway: dict[str, Any] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fb-{site_id}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        base = site_base("hazard", site_id)
        self.client.subscribe([(f"{base}/+/{TELEMETRY}", 0), (f"{base}/+/{STATUS}", 1)])
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        device = msg.topic.split("/")[-2]
        with self.lock:
            if msg.topic.endswith("/" + TELEMETRY):
                if self.recording:
                    self.ts[device].append(int(doc["ts"]))
            elif device == "gateway":
                self.gateway = doc
            else:
                self.status[device] = doc

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def healthy_lags_ms(ts: dict[str, list[int]], interval_ms: float) -> np.ndarray:
    """Every healthy sample's lateness against its device's best phase in the run."""
    lags: list[np.ndarray] = []
    for device, stamps in ts.items():
        if device in (DEAD, SLOW) or len(stamps) < 3:
            continue
        t = np.asarray(sorted(stamps), dtype=np.float64)
        k = np.round((t - t[0]) / interval_ms)
        phase = t - k * interval_ms
        lags.append(phase - phase.min())
    return np.concatenate(lags) if lags else np.zeros(0)


class RunFailed(Exception):
    """A run could not start (it is repeated with fresh ports)."""


def one_run(
    work: Path, broker: Mosquitto, args: argparse.Namespace, n: int, *, attempt: int
) -> dict[str, Any]:
    faults = n % 2 == 1  # A/B/A/B...
    site_id = f"fb{n}a{attempt}"
    run_dir = work / site_id
    sim_site, gw_site, fault_site = write_sites(run_dir, site_id, args, broker.url, faults)
    sims = start_simulators(sim_site, args.sim_procs, run_dir)
    faulty = FaultyDevices(fault_site, args.slow_share * args.timeout * 1000.0)
    faulty.start()
    if not faulty.ready.wait(20):
        raise SystemExit("faulty devices did not start")
    time.sleep(2.0 + args.devices / 500)
    if any(sim.poll() is not None for sim in sims):  # e.g. a port taken meanwhile
        for sim in sims:
            sim.terminate()
            sim.wait(10)
        faulty.stop()
        raise RunFailed(f"a simulator exited: see {run_dir}/sim*.log")
    collector = Collector(broker.port, site_id)
    gw = start_gateway(gw_site, run_dir / "gateway.log")
    try:
        time.sleep(args.warmup)
        if gw.poll() is not None:
            raise SystemExit(f"gateway exited: see {run_dir / 'gateway.log'}")
        with collector.lock:
            collector.recording = True
        time.sleep(args.seconds)
        with collector.lock:
            collector.recording = False
            ts = {k: list(v) for k, v in collector.ts.items()}
            status = dict(collector.status)
            gateway = dict(collector.gateway)
    finally:
        stop_all(gw, sims)
        faulty.stop()
        collector.close()
    lags = healthy_lags_ms(ts, args.poll_interval * 1000.0)
    samples = int(lags.size)
    lag_p99 = float(np.percentile(lags, 99)) if samples else float("nan")
    # telemetry ts has 1 ms resolution: the mean of the worst 1 % resolves finer than the p99
    worst = np.sort(lags)[-max(1, samples // 100) :] if samples else np.zeros(1)
    healthy_devices = sum(1 for d in ts if d not in (DEAD, SLOW))
    expected = args.devices * args.seconds / args.poll_interval
    result: dict[str, Any] = {
        "run": n,
        "faults": faults,
        "lag_p99_ms": round(lag_p99, 2),
        "lag_worst1pct_mean_ms": round(float(worst.mean()), 3),
        "healthy_samples": samples,
        "healthy_sample_share": round(samples / expected, 3),
        "healthy_devices_seen": healthy_devices,
        "gateway_poll_lag_p99_ms": gateway.get("poll_lag_p99_ms"),
    }
    if faults:
        result["dead_online"] = status.get(DEAD, {}).get("online")
        result["dead_samples"] = len(ts.get(DEAD, []))
        result["slow_samples"] = len(ts.get(SLOW, []))
        result["slow_latency_ms"] = status.get(SLOW, {}).get("latency_ms")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=300)
    ap.add_argument("--points", type=int, default=60)
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--slow-share", type=float, default=0.8, help="slow answer, x timeout")
    ap.add_argument("--pairs", type=int, default=3, help="A/B pairs")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--sim-procs", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hazardgw-faults-bench-"))
    broker = Mosquitto(work).start()
    runs: list[dict[str, Any]] = []
    try:
        for n in range(2 * args.pairs):
            for attempt in range(3):
                try:
                    result = one_run(work, broker, args, n, attempt=attempt)
                    break
                except RunFailed as exc:
                    print(f"run {n}: {exc}; again with fresh ports", file=sys.stderr)
            else:
                raise SystemExit(f"run {n} failed three times")
            runs.append(result)
            print(json.dumps(result), flush=True)
    finally:
        broker.stop()

    healthy = [r["lag_p99_ms"] for r in runs if not r["faults"]]
    faulty = [r["lag_p99_ms"] for r in runs if r["faults"]]
    a, b = statistics.median(healthy), statistics.median(faulty)
    summary = {
        "devices": args.devices,
        "points": args.points,
        "poll_interval_s": args.poll_interval,
        "timeout_s": args.timeout,
        "slow_answer_s": round(args.slow_share * args.timeout, 3),
        "lag_p99_ms_healthy_only_run": round(a, 2),
        "lag_p99_ms_with_faults": round(b, 2),
        "ratio": round(b / a, 3) if a > 0 else None,
        "runs_healthy_only": len(healthy),
        "runs_with_faults": len(faulty),
        "lag_p99_ms_healthy_only_runs": healthy,
        "lag_p99_ms_with_faults_runs": faulty,
        "lag_worst1pct_mean_ms_healthy_only": statistics.median(
            r["lag_worst1pct_mean_ms"] for r in runs if not r["faults"]
        ),
        "lag_worst1pct_mean_ms_with_faults": statistics.median(
            r["lag_worst1pct_mean_ms"] for r in runs if r["faults"]
        ),
        "gateway_poll_lag_p99_ms_healthy_only": statistics.median(
            r["gateway_poll_lag_p99_ms"] or 0.0 for r in runs if not r["faults"]
        ),
        "gateway_poll_lag_p99_ms_with_faults": statistics.median(
            r["gateway_poll_lag_p99_ms"] or 0.0 for r in runs if r["faults"]
        ),
        "statistic": "median over runs of each run's healthy-device sample lag p99",
    }
    print(f"work dir: {work}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

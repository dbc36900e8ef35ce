"""Gateway throughput: simulators -> Modbus TCP -> gateway -> real Mosquitto -> counter.

Simulators run in their own processes (``hazardgw simulate --shard i/n``), the gateway in its
own (``hazardgw run``), against a real Mosquitto; ``points_per_s`` counts the good values that
reached the broker (a subscriber here parses every telemetry message). Prints human lines, then
one JSON line last:

    {"devices", "points", "points_per_s", "requests_per_s", "gateway_cpu_s_per_10k_points",
     "poll_lag_p99_ms", "rss_mb", "gateway_cpu_pct", ...}

Usage: benchmarks/gateway_bench.py [--devices N] [--points M] [--poll-interval S] [--seconds T]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import Mosquitto, free_port  # noqa: E402

TYPES = [
    ("uint16", 1, "ABCD", 0.1),
    ("int16", 1, "ABCD", 0.01),
    ("float32", 2, "CDAB", 1.0),
    ("float32", 2, "ABCD", 1.0),
    ("uint32", 2, "BADC", 1.0),
]


def synthetic_profile(points: int) -> str:
    """A register map of ``points`` mixed-type points, densely packed (one request per 125)."""
    lines = ["kind: bench", "measurement: bench", "points:"]
    address = 0
    n = 0
    while n < points:
        if n % 12 == 11:  # a few status bits in one word
            for bit in range(min(4, points - n)):
                lines.append(
                    f"  - {{name: b{n}, register: holding, address: {address}, "
                    f"type: bool, bit: {bit}}}"
                )
                n += 1
            address += 1
            continue
        t, width, order, scale = TYPES[n % len(TYPES)]
        lines.append(
            f"  - {{name: p{n}, register: holding, address: {address}, type: {t}, "
            f"order: {order}, scale: {scale}}}"
        )
        address += width
        n += 1
    return "\n".join(lines) + "\n"


def write_site(workdir: Path, devices: int, points: int, interval: float, mqtt_url: str) -> Path:
    (workdir / "bench_profile.yaml").write_text(synthetic_profile(points))
    ports: list[int] = []
    seen: set[int] = set()
    while len(ports) < devices:
        port = free_port()
        if port not in seen:
            seen.add(port)
            ports.append(port)
    lines = [
        "site: {id: bench}",
        f"mqtt: {{url: '{mqtt_url}', topic_prefix: hazard, telemetry_qos: 0}}",
        "devices:",
    ]
    for i, port in enumerate(ports):
        lines.append(
            f"  - {{id: dev{i:05d}, profile: bench_profile.yaml, connection: "
            f"{{transport: tcp, host: 127.0.0.1, port: {port}}}, unit: 1, "
            f"poll_interval: {interval}, timeout: 1.0}}"
        )
    site = workdir / "site.yaml"
    site.write_text("\n".join(lines) + "\n")
    return site


class Counter:
    """Counts good values per telemetry message; keeps the newest gateway status."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.points = 0
        self.messages = 0
        self.status: dict[str, Any] = {}
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("hazard/bench/+/telemetry", 0), ("hazard/bench/gateway/status", 1)])
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        if msg.topic.endswith("/telemetry"):
            good = sum(1 for q in doc["quality"].values() if q == "good")
            with self.lock:
                self.points += good
                self.messages += 1
        else:
            self.status = doc

    def read(self) -> tuple[int, int]:
        with self.lock:
            return self.points, self.messages

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--points", type=int, default=60)
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--sim-procs", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="run the gateway under cProfile")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hazardgw-bench-"))
    broker = Mosquitto(work).start()
    site = write_site(work, args.devices, args.points, args.poll_interval, broker.url)
    exe = [sys.executable, "-m", "gateway"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sims = [
        subprocess.Popen(
            [
                *exe,
                "simulate",
                "-c",
                str(site),
                "--scenario",
                "normal",
                "--shard",
                f"{i}/{args.sim_procs}",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(work / f"sim{i}.log").open("w"),
            env=env,
        )
        for i in range(args.sim_procs)
    ]
    time.sleep(2.0 + args.devices / 500)
    counter = Counter(broker.port)
    gw_cmd = [*exe, "run", "-c", str(site), "--log-level", "WARNING"]
    if args.profile:
        gw_cmd = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(work / "gateway.prof"),
            "-m",
            "gateway",
            "run",
            "-c",
            str(site),
            "--log-level",
            "WARNING",
        ]
    gw = subprocess.Popen(gw_cmd, stderr=(work / "gateway.log").open("w"), env=env)
    proc = psutil.Process(gw.pid)
    try:
        time.sleep(args.warmup)
        if gw.poll() is not None:
            raise SystemExit(f"gateway exited: see {work / 'gateway.log'}")
        p0, m0 = counter.read()
        cpu0 = sum(proc.cpu_times()[:2])
        t0 = time.monotonic()
        rss_peak = 0.0
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.5)
            rss_peak = max(rss_peak, proc.memory_info().rss / 2**20)
        p1, m1 = counter.read()
        cpu1 = sum(proc.cpu_times()[:2])
        elapsed = time.monotonic() - t0
        status = dict(counter.status)
    finally:
        gw.send_signal(2)
        try:
            gw.wait(15)
        except subprocess.TimeoutExpired:
            gw.kill()
        for s in sims:
            s.terminate()
        for s in sims:
            s.wait(10)
        counter.close()
        broker.stop()

    points = p1 - p0
    pps = points / elapsed
    cpu = cpu1 - cpu0
    result = {
        "devices": args.devices,
        "points": args.points,
        "poll_interval_s": args.poll_interval,
        "offered_points_per_s": args.devices * args.points / args.poll_interval,
        "points_per_s": round(pps, 1),
        "messages_per_s": round((m1 - m0) / elapsed, 1),
        "requests_per_s": round(status.get("requests_per_s", 0.0), 1),
        "gateway_cpu_s_per_10k_points": round(cpu / max(points, 1) * 10_000, 4),
        "gateway_cpu_pct": round(100 * cpu / elapsed, 1),
        "poll_lag_p99_ms": status.get("poll_lag_p99_ms"),
        "alarm_latency_p99_ms": status.get("alarm_latency_p99_ms"),
        "rss_mb": round(rss_peak, 1),
        "seconds": round(elapsed, 1),
    }
    print(f"work dir: {work}")
    print(
        f"offered {result['offered_points_per_s']:.0f} points/s, "
        f"delivered {pps:.0f} points/s; gateway CPU {result['gateway_cpu_pct']} %"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Gateway throughput and alarm latency: simulators -> Modbus TCP -> gateway -> Mosquitto.

Simulators run in their own processes (``hazardgw simulate --shard i/n``), the gateway in its
own (``hazardgw run``), against a real Mosquitto; ``points_per_s`` counts the good values that
reached the broker (a subscriber here parses every telemetry message).

Alarms under load: the generated site loads ``benchmarks/bench_rules.yaml`` (``--rules``), high
limits on two points per device that the simulators' random walk crosses a few times a second
over 1,000 devices, so the rules engine ticks over the whole point table while the gateway polls
at full load (``--no-rules`` runs the same load without a rules engine, to see what rules cost).

``alarm_latency_p99_ms`` is measured at the subscriber, end to end: for every alarm raised
(an ``P/events/alarm`` transition to UNACK_ACTIVE from NORMAL or RTN_UNACK) it is the wall time
the event was received here minus the ``ts`` of the telemetry message of the poll whose sample
crossed the limit. The event's own ``ts`` is the engine's tick time, not the sample's, so the
crossing poll is found in the device's telemetry (which carries the poll response's wall time):
the oldest of the latest run of samples at or above the event's ``limit`` for that point. A raise
is matched only when the sample before the crossing is in hand and one poll interval older (no
telemetry lost in between); others are counted in ``alarm_unmatched``. Every process runs on
this machine, so the clocks agree. ``gateway_alarm_latency_p99_ms`` is the gateway's own figure
from its retained status (poll response to hand-off to the publisher, first raises only).

``power_off_latency_p99_ms`` is the same measure for the power-off interlock: from the telemetry
``ts`` of the sample that crosses a power-off limit (``bench_p0_high`` demands power-off of its
device's area; every generated device is its own area) to the retained ``P/interlock/{area}``
update that turns ``power_off`` on, as received here (``power_off_samples`` of them in the window;
the full load runs meanwhile). Target ≤ 50 ms; the regulation's budget for the whole interlock is
2 s.

Prints human lines, then one JSON line last:

    {"devices", "points", "points_per_s", "requests_per_s", "gateway_cpu_s_per_10k_points",
     "poll_lag_p99_ms", "alarm_latency_p99_ms", "alarms_per_s", "rss_mb", "gateway_cpu_pct", ...}

Usage: benchmarks/gateway_bench.py [--devices N] [--points M] [--poll-interval S] [--seconds T]
                                   [--rules PACK | --no-rules] [--broker-nagle]
                                   [--profile] [--py-spy]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._processes import start_gateway, start_simulators, stop_all  # noqa: E402
from gateway.topics import (  # noqa: E402
    EVENTS_ALARM,
    INTERLOCK,
    TELEMETRY,
    Topics,
    interlock_topic,
)
from tests.harness.mosquitto import Mosquitto  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402

BENCH_RULES = ROOT / "benchmarks" / "bench_rules.yaml"

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


def write_site(
    workdir: Path,
    devices: int,
    points: int,
    interval: float,
    mqtt_url: str,
    *,
    rules: Path | None = None,
) -> Path:
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
        *([f"rules: ['{rules.resolve()}']"] if rules else []),
        "devices:",
    ]
    for i, port in enumerate(ports):
        lines.append(
            f"  - {{id: dev{i:05d}, profile: bench_profile.yaml, connection: "
            f"{{transport: tcp, host: 127.0.0.1, port: {port}}}, unit: 1, "
            f"poll_interval: {interval}, timeout: 1.0, tags: {{area: a{i:05d}}}}}"
        )
    site = workdir / "site.yaml"
    site.write_text("\n".join(lines) + "\n")
    return site


class Counter:
    """Counts good values per telemetry message; times alarms; keeps the newest gateway status."""

    def __init__(self, port: int, interval: float) -> None:
        self.lock = threading.Lock()
        self.points = 0
        self.messages = 0
        self.status: dict[str, Any] = {}
        self.interval_ms = interval * 1000.0
        self.alarm_points: set[str] = set()
        # (device, point) -> recent (telemetry ts ms, value); raises waiting for their telemetry
        self.history: dict[tuple[str, str], deque[tuple[int, float]]] = {}
        self.pending: dict[
            tuple[str, str], list[tuple[float, float, list[tuple[float, float]]]]
        ] = {}
        self.latencies: list[tuple[float, float]] = []  # (received wall s, latency ms)
        self.power_off: list[tuple[float, float]] = []  # (received wall s, latency ms)
        self.power_off_limit = math.inf  # the power-off limit of the (device, point) of a cause
        self.raised: list[float] = []  # received wall s of every raise
        self.telemetry_ms: list[tuple[float, float]] = []  # (received wall s, latency ms)
        self.unmatched: list[float] = []  # received wall s of raises that could not be timed
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        topics = Topics("hazard", "bench")
        self.client.subscribe(
            [
                (topics.telemetry("+"), 0),
                (topics.gateway_status, 1),
                (topics.events_alarm, 1),
                (interlock_topic(topics.base, "+"), 1),
            ]
        )
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        received = time.time()
        doc = json.loads(msg.payload)
        if msg.topic.endswith("/" + TELEMETRY):
            good = sum(1 for q in doc["quality"].values() if q == "good")
            self.telemetry_ms.append((received, received * 1000.0 - doc["ts"]))
            device = msg.topic.split("/")[2]
            for point in self.alarm_points:
                value = doc["values"].get(point)
                if value is None:
                    continue
                key = (device, point)
                hist = self.history.setdefault(key, deque(maxlen=8))
                hist.append((doc["ts"], float(value)))
                for pend in self.pending.pop(key, []):
                    self._match(key, *pend)
            with self.lock:
                self.points += good
                self.messages += 1
        elif msg.topic.endswith("/" + EVENTS_ALARM):
            if doc.get("to") == "UNACK_ACTIVE" and doc.get("from") in ("NORMAL", "RTN_UNACK"):
                self.raised.append(received)
                self._match((doc["device"], doc["point"]), received, float(doc["limit"]))
        elif f"/{INTERLOCK}/" in msg.topic:
            # a new demand: power_off on, since = this update (not a change of feed or causes)
            if doc["power_off"] and doc["since"] == doc["ts"] and doc["causes"]:
                device, point, _rule = doc["causes"][0].split("/")
                key = (device, point)
                self._match(key, received, self.power_off_limit, self.power_off)
        else:
            self.status = doc

    def _match(
        self,
        key: tuple[str, str],
        received: float,
        limit: float,
        into: list[tuple[float, float]] | None = None,
    ) -> None:
        """Latency of one raise (or power-off, ``into`` its list) against the telemetry of the
        poll that crossed ``limit``."""
        into = self.latencies if into is None else into
        hist = self.history.get(key)
        if not hist or hist[-1][1] < limit:  # the crossing poll's telemetry is not here yet
            if len(self.pending.setdefault(key, [])) < 4:
                self.pending[key].append((received, limit, into))
            else:
                self.unmatched.append(received)
            return
        i = len(hist) - 1
        while i > 0 and hist[i - 1][1] >= limit:
            i -= 1
        if i == 0 or hist[i][0] - hist[i - 1][0] > 1.5 * self.interval_ms:
            # no sample before the crossing, or telemetry lost in between
            self.unmatched.append(received)
            return
        into.append((received, received * 1000.0 - hist[i][0]))

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
    ap.add_argument("--rules", type=Path, default=BENCH_RULES, help="rule pack for the load")
    ap.add_argument("--no-rules", action="store_true", help="no rules engine (same load)")
    ap.add_argument(
        "--broker-nagle",
        action="store_true",
        help="Mosquitto without set_tcp_nodelay (its default: up to 40 ms more to subscribers)",
    )
    ap.add_argument(
        "--py-spy", action="store_true", help="sample the gateway with py-spy while measuring"
    )
    args = ap.parse_args()
    rules = None if args.no_rules else args.rules

    work = Path(tempfile.mkdtemp(prefix="hazardgw-bench-"))
    broker = Mosquitto(work, extra="" if args.broker_nagle else "set_tcp_nodelay true\n").start()
    site = write_site(work, args.devices, args.points, args.poll_interval, broker.url, rules=rules)
    sims = start_simulators(site, args.sim_procs, work)
    time.sleep(2.0 + args.devices / 500)
    counter = Counter(broker.port, args.poll_interval)
    if rules is not None:
        counter.alarm_points = {"p0", "p1"}  # the points benchmarks/bench_rules.yaml binds
        counter.power_off_limit = 50.0  # bench_p0_high's power-off level
    profiled = None
    if args.profile:
        prof = str(work / "gateway.prof")
        profiled = [sys.executable, "-m", "cProfile", "-o", prof, "-m", "hazardgw", "run"]
        profiled += ["-c", str(site)]
    gw = start_gateway(site, work / "gateway.log", argv=profiled)
    proc = psutil.Process(gw.pid)
    try:
        time.sleep(args.warmup)
        if gw.poll() is not None:
            raise SystemExit(f"gateway exited: see {work / 'gateway.log'}")
        p0, m0 = counter.read()
        cpu0 = sum(proc.cpu_times()[:2])
        t0 = time.monotonic()
        wall0 = time.time()
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(gw.pid),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(work / "gateway.pyspy.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(work / "py-spy.log").open("w"),
            )
        rss_peak = 0.0
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.5)
            rss_peak = max(rss_peak, proc.memory_info().rss / 2**20)
        p1, m1 = counter.read()
        cpu1 = sum(proc.cpu_times()[:2])
        elapsed = time.monotonic() - t0
        wall1 = time.time()
        status = dict(counter.status)
        time.sleep(1.0)  # raises of the window's last polls still on their way
        if spy is not None:
            spy.wait(30)
    finally:
        stop_all(gw, sims)
        counter.close()
        broker.stop()

    points = p1 - p0
    pps = points / elapsed
    window = [lat for at, lat in counter.latencies if wall0 <= at <= wall1]
    raised = [at for at in counter.raised if wall0 <= at <= wall1]
    left = [at for waiting in counter.pending.values() for at, _, _ in waiting]
    unmatched = [at for at in counter.unmatched + left if wall0 <= at <= wall1]
    lat = np.array(window or [np.nan])
    tele = np.array([ms for at, ms in counter.telemetry_ms if wall0 <= at <= wall1] or [np.nan])

    def pct(q: float) -> float | None:
        return round(float(np.percentile(lat, q)), 1) if window else None

    cut = [ms for at, ms in counter.power_off if wall0 <= at <= wall1]

    def cut_pct(q: float) -> float | None:
        return round(float(np.percentile(np.array(cut), q)), 1) if cut else None

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
        "rules": rules.name if rules else None,
        "alarms_per_s": round(len(raised) / elapsed, 2),
        "alarm_latency_p50_ms": pct(50),
        "alarm_latency_p99_ms": pct(99),
        "alarm_latency_max_ms": pct(100),
        "alarm_latency_samples": len(window),
        "alarm_unmatched": len(unmatched),
        "gateway_alarm_latency_p99_ms": status.get("alarm_latency_p99_ms"),
        "power_off_latency_p50_ms": cut_pct(50),
        "power_off_latency_p99_ms": cut_pct(99),
        "power_off_latency_max_ms": cut_pct(100),
        "power_off_samples": len(cut),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "telemetry_latency_p50_ms": round(float(np.percentile(tele, 50)), 1),
        "telemetry_latency_p99_ms": round(float(np.percentile(tele, 99)), 1),
        "rss_mb": round(rss_peak, 1),
        "seconds": round(elapsed, 1),
    }
    print(f"work dir: {work}")
    print(
        f"offered {result['offered_points_per_s']:.0f} points/s, "
        f"delivered {pps:.0f} points/s; gateway CPU {result['gateway_cpu_pct']} %"
    )
    if rules is not None:
        print(
            f"alarms raised {result['alarms_per_s']}/s; subscriber-measured latency "
            f"p50 {result['alarm_latency_p50_ms']} ms, p99 {result['alarm_latency_p99_ms']} ms "
            f"({len(window)} matched, {len(unmatched)} unmatched); power-off interlock "
            f"p50 {result['power_off_latency_p50_ms']} ms, "
            f"p99 {result['power_off_latency_p99_ms']} ms ({len(cut)} matched)"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

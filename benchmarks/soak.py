"""Soak: the gateway benchmark's load under repeated broker restarts; counts what was lost.

The load of ``benchmarks/gateway_bench.py`` (its synthetic profile and site, simulators in their
own processes, the gateway as ``python -m hazardgw run``), with what makes losses countable:
``telemetry_qos: 1`` through the durable outbox, a rule pack on the synthetic profile (a
threshold in the middle of a random walk, so alarms come and go), and a Mosquitto with
persistence (saved every second). Every ``--restart-every`` seconds the broker is SIGKILLed and
started again on the same port after ``--outage`` seconds. A subscriber with a persistent session
(QoS 1, fixed client id) records every telemetry message and alarm event.

At the end the broker stays up until the gateway's status reports an empty outbox; the newest
status carries what this gateway process produced since it started (``telemetry_messages``,
``alarm_transitions``) up to its ``ts``, and everything counted there was put into the ordered
outbox before that status, so:

    samples_lost = telemetry_messages - distinct (device, ts) received with ts <= status.ts
    alarms_lost  = alarm_transitions  - distinct (alarm id, ts, state) received likewise

Mosquitto itself may lose a message it acknowledged in the instant before a SIGKILL (it saves
every second); see the chaos harness. ``rss_growth_pct`` compares the gateway's RSS after
the warm-up with its RSS after the final drain; at each of ``--checkpoints`` (seconds into the
chaos phase: 5, 15, 30 and 60 min by default) it records the gateway's RSS, the outbox depth of
the newest status and the deepest one since the previous checkpoint (``checkpoint {...}`` lines
as they happen, and ``checkpoints`` in the JSON), so a leak can be told from a working set that
settles. Prints human lines, then one JSON line last.

Usage: benchmarks/soak.py [--seconds T] [--devices N] [--points M] [--restart-every S]
                          [--outage S] [--checkpoints 300,900,1800,3600]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _processes import start_gateway, start_simulators, stop_all  # noqa: E402
from gateway_bench import write_site  # noqa: E402

from gateway.topics import TELEMETRY, Topics  # noqa: E402
from tests.harness.mosquitto import PersistentMosquitto  # noqa: E402

SITE_ID = "bench"  # gateway_bench's site id
TOPICS = Topics("hazard", SITE_ID)

RULE_PACK = """\
pack: soak
title: soak-test alarms on the synthetic benchmark profile
description: a threshold in the middle of p0's random walk (0-100), so alarms come and go
rules:
  - id: p0_high
    type: threshold
    title: p0 above the middle of its range
    kind: bench
    point: p0
    levels:
      H:
        limit: 50.0
        priority: 3
        source: soak benchmark (not a safety limit)
"""


class Tally:
    """A persistent-session subscriber keeping only what the counts need."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.telemetry: set[tuple[str, int]] = set()
        self.alarms: set[tuple[str, int, str]] = set()
        self.last_ts: dict[str, int] = {}
        self.duplicates = 0
        self.order_violations = 0
        self.statuses: list[dict[str, Any]] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="soak-tally", clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc == 0:
            client.subscribe(
                [
                    (TOPICS.telemetry("+"), 1),
                    (TOPICS.events_alarm, 1),
                    (TOPICS.gateway_status, 1),
                ]
            )

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        if not msg.payload:
            return
        doc = json.loads(msg.payload)
        topic = msg.topic
        with self.lock:
            if topic.endswith("/" + TELEMETRY):
                stream = topic.split("/")[2]
                key: tuple[Any, ...] = (stream, int(doc["ts"]))
                target: set[Any] = self.telemetry
            elif topic == TOPICS.events_alarm:
                if doc.get("type") != "transition":
                    return
                stream = str(doc["id"])
                key = (stream, int(doc["ts"]), str(doc["to"]))
                target = self.alarms
            else:
                if "telemetry_messages" in doc:
                    self.statuses.append(doc)
                return
            if key in target:
                self.duplicates += 1
                return
            if key[1] <= self.last_ts.get(stream, -1):
                self.order_violations += 1
            target.add(key)
            self.last_ts[stream] = max(self.last_ts.get(stream, -1), key[1])

    def newest_status(self) -> dict[str, Any] | None:
        with self.lock:
            return max(self.statuses, key=lambda d: d["ts"]) if self.statuses else None

    def counts_until(self, ts: int) -> tuple[int, int]:
        with self.lock:
            return (
                sum(1 for _, t in self.telemetry if t <= ts),
                sum(1 for _, t, _ in self.alarms if t <= ts),
            )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def prepare_site(work: Path, args: argparse.Namespace, mqtt_url: str) -> Path:
    site = write_site(work, args.devices, args.points, args.poll_interval, mqtt_url)
    doc = yaml.safe_load(site.read_text())
    doc["mqtt"]["telemetry_qos"] = 1
    doc["outbox"] = {"path": str(work / "outbox.sqlite3"), "max_mb": args.outbox_mb}
    (work / "soak_pack.yaml").write_text(RULE_PACK)
    doc["rules"] = [str(work / "soak_pack.yaml")]
    site.write_text(yaml.safe_dump(doc, sort_keys=False))
    return site


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="chaos phase length")
    ap.add_argument("--devices", type=int, default=200, help="default sized for 2 cores")
    ap.add_argument("--points", type=int, default=60)
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--restart-every", type=float, default=20.0, help="seconds between kills")
    ap.add_argument("--outage", type=float, default=3.0, help="seconds the broker stays down")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--outbox-mb", type=float, default=256.0)
    ap.add_argument("--sim-procs", type=int, default=1)
    ap.add_argument(
        "--checkpoints",
        default="300,900,1800,3600",
        help="seconds into the chaos phase at which to record RSS and the outbox depth",
    )
    args = ap.parse_args()
    checkpoints = sorted(float(x) for x in args.checkpoints.split(",") if x.strip())

    work = Path(tempfile.mkdtemp(prefix="hazardgw-soak-"))
    broker = PersistentMosquitto(work).start()
    site = prepare_site(work, args, broker.url)
    sims = start_simulators(site, args.sim_procs, work, cwd=ROOT)
    time.sleep(2.0 + args.devices / 500)
    tally = Tally(broker.port)
    gw = start_gateway(site, work / "gateway.log", cwd=ROOT)
    proc = psutil.Process(gw.pid)
    restarts = 0
    max_depth = 0
    rss_points: list[dict[str, Any]] = []
    try:
        time.sleep(args.warmup)
        if gw.poll() is not None:
            raise SystemExit(f"gateway exited: see {work / 'gateway.log'}")
        rss_start = proc.memory_info().rss / 2**20
        rss_peak = rss_start
        t0 = time.monotonic()
        next_kill = t0 + args.restart_every
        pending = [c for c in checkpoints if c <= args.seconds]
        depth_since = 0  # the deepest outbox reported since the previous checkpoint
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.5)
            rss = proc.memory_info().rss / 2**20
            rss_peak = max(rss_peak, rss)
            status = tally.newest_status()
            if status:
                max_depth = max(max_depth, int(status.get("outbox_depth", 0)))
                depth_since = max(depth_since, int(status.get("outbox_depth", 0)))
            if pending and time.monotonic() - t0 >= pending[0]:
                mark = pending.pop(0)
                point = {
                    "at_s": mark,
                    "rss_mb": round(rss, 1),
                    "outbox_depth": int(status.get("outbox_depth", 0)) if status else None,
                    "outbox_bytes": int(status.get("outbox_bytes", 0)) if status else None,
                    "status_age_s": round(time.time() - status["ts"] / 1000, 1) if status else None,
                    "outbox_depth_max_since_last": depth_since,
                    "broker_restarts": restarts,
                    "load_1min": round(psutil.getloadavg()[0], 2),
                }
                rss_points.append(point)
                depth_since = 0
                print("checkpoint " + json.dumps(point), flush=True)
            if time.monotonic() >= next_kill:
                broker.kill()
                print(f"broker SIGKILLed ({restarts + 1}); down for {args.outage:g} s", flush=True)
                time.sleep(args.outage)
                broker.start()
                restarts += 1
                next_kill = time.monotonic() + args.restart_every
            if gw.poll() is not None:
                raise SystemExit(f"gateway exited: see {work / 'gateway.log'}")
        for mark in pending:  # a checkpoint at the very end of the chaos phase (--seconds)
            status = tally.newest_status()
            point = {
                "at_s": mark,
                "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                "outbox_depth": int(status.get("outbox_depth", 0)) if status else None,
                "outbox_depth_max_since_last": depth_since,
                "broker_restarts": restarts,
                "load_1min": round(psutil.getloadavg()[0], 2),
            }
            rss_points.append(point)
            print("checkpoint " + json.dumps(point), flush=True)
        # drain: wait for a status produced after the chaos that reports an empty outbox
        chaos_end = int(time.time() * 1000)
        drain_start = time.monotonic()
        final: dict[str, Any] | None = None
        while time.monotonic() - drain_start < args.drain_timeout:
            time.sleep(1.0)
            status = tally.newest_status()
            if status and status["ts"] > chaos_end:
                max_depth = max(max_depth, int(status.get("outbox_depth", 0)))
                if status.get("outbox_depth", 1) <= args.devices:  # about one poll in flight
                    final = status
                    break
        drain_s = time.monotonic() - drain_start
        if final is None:
            final = tally.newest_status() or {}
        time.sleep(2.0)  # what the final status counted has arrived before it; margin
        rss_end = proc.memory_info().rss / 2**20
    finally:
        stop_all(gw, sims)
        tally.close()
        broker.stop()

    produced = int(final.get("telemetry_messages", 0))
    produced_alarms = int(final.get("alarm_transitions", 0))
    received, received_alarms = tally.counts_until(int(final.get("ts", 0)))
    result = {
        "seconds": args.seconds,
        "devices": args.devices,
        "points": args.points,
        "poll_interval_s": args.poll_interval,
        "broker_restarts": restarts,
        "outage_s": args.outage,
        "samples_produced": produced,
        "samples_received": received,
        "samples_lost": produced - received,
        "alarms_produced": produced_alarms,
        "alarms_received": received_alarms,
        "alarms_lost": produced_alarms - received_alarms,
        "duplicates": tally.duplicates,
        "order_violations": tally.order_violations,
        "outbox_dropped": int(final.get("outbox_dropped", 0)),
        "outbox_depth_max": max_depth,
        "drain_s": round(drain_s, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_pct": round(100.0 * (rss_end - rss_start) / rss_start, 1),
        "checkpoints": rss_points,
    }
    print(f"work dir: {work}")
    print(
        f"{restarts} broker restarts; {produced} samples produced, {received} received; "
        f"{produced_alarms} alarm transitions produced, {received_alarms} received"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

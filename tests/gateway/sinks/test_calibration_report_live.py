"""Calibration and the daily report end to end: simulators -> gateway -> Mosquitto and
victoria-metrics, with the operator's commands over MQTT and the report CLI in its own process.

The example site plays scenario ``calibration`` at 30x: the operator (this test) puts the face
detector in maintenance over MQTT, 2.0 %vol test gas reaches it, the operator ends the
maintenance. The day's midnight is brought to a few seconds after the start by a fixed-offset
zone given to the accumulators (the one seam; the site's ``timezone`` takes IANA names only),
and the database is down over that midnight: the ``daily`` lines wait in the outbox.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import Gateway
from gateway.config import InfluxConfig, OutboxConfig
from hazardgw.demo import demo_site
from simulators import SiteSimulator
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Message, listening
from tests.harness.paths import ROOT
from tests.harness.victoria_metrics import VictoriaMetrics

pytestmark = pytest.mark.integration
SPEED = 30.0
MIDNIGHT_AFTER_S = 22.0  # wall seconds from start to the accumulators' local midnight
FACE = "face1-gas"


def zone_with_midnight_at(ts: float) -> dt.timezone:
    """A fixed-offset zone in which ``ts`` is local midnight."""
    utc = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    since_midnight = utc.hour * 3600 + utc.minute * 60 + utc.second + utc.microsecond / 1e6
    offset = -since_midnight if since_midnight < 43_200 else 86_400 - since_midnight
    return dt.timezone(dt.timedelta(seconds=round(offset)))


async def test_calibration_is_maintenance_and_the_day_is_reported(
    mosquitto: Mosquitto, vm: VictoriaMetrics, tmp_path: Path
) -> None:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", mosquitto.url)
    site = dataclasses.replace(
        site,
        influx=InfluxConfig(url=vm.url, org="safety", bucket="hazard", flush_interval=0.2),
        outbox=OutboxConfig(path=str(tmp_path / "state" / "outbox.sqlite3")),
    )
    base = f"hazard/{site.site.id}"
    t0 = time.monotonic()
    fast = lambda: t0 + (time.monotonic() - t0) * SPEED  # noqa: E731
    midnight = time.time() + MIDNIGHT_AFTER_S
    seen: list[tuple[float, str, Any]] = []

    async with SiteSimulator(site, scenario="calibration", seed=1, clock=fast) as sim:
        gw = Gateway(site)
        assert gw.report is not None
        gw.report.daily.zone = zone_with_midnight_at(midnight)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:

            def note(message: Message) -> None:
                seen.append((message.at - t0, message.topic, message.doc))

            async with listening(mosquitto.port, f"{base}/#", on_message=note) as heard:
                client = heard.client
                await asyncio.sleep(0.5)
                # bad commands first: each gets an error reply and changes nothing
                bad = [
                    {"device": "no-such", "user": "op", "minutes": 10, "reason": "x"},
                    {"device": FACE, "user": "op", "minutes": 100_000, "reason": "x"},
                    {"device": FACE, "user": "op", "minutes": 10},
                ]
                for payload in bad:
                    await client.publish(
                        f"{base}/cmd/device/maintenance", json.dumps(payload), qos=1
                    )
                for cmd in sim.operator_commands:  # the scenario's operator, on time
                    await asyncio.sleep(max(0.0, t0 + cmd.at / SPEED - time.monotonic()))
                    await client.publish(f"{base}/cmd/{cmd.command}", json.dumps(cmd.payload))
                vm.stop()  # the database goes away before midnight
                await asyncio.sleep(max(0.0, midnight + 3.0 - time.time()))
        finally:
            stop.set()
            await task

    replies = [d for _, t, d in seen if t == f"{base}/cmd/reply"]
    assert [r["ok"] for r in replies] == [False, False, False, True, True]
    assert "unknown device" in replies[0]["error"]
    assert "minutes" in replies[1]["error"]
    assert "reason" in replies[2]["error"]

    def docs(topic: str) -> list[dict[str, Any]]:
        return [d for _, t, d in seen if t == topic and d is not None]

    quality = [d["quality"]["ch4"] for d in docs(f"{base}/{FACE}/telemetry")]
    gas = [d["values"]["ch4"] for d in docs(f"{base}/{FACE}/telemetry")]
    in_maintenance = [v for q, v in zip(quality, gas, strict=True) if q == "maintenance"]
    assert max(in_maintenance) >= 1.9, "the calibration gas was read during maintenance"
    assert quality[0] == "good" and quality[-1] == "good"
    assert all(v < 1.0 for q, v in zip(quality, gas, strict=True) if q == "good")

    face_alarms = [(t, d) for _, t, d in seen if t.startswith(f"{base}/alarms/{FACE}/")]
    states = [d["state"] for _, d in face_alarms if d]
    assert "OUT_OF_SERVICE" in states
    assert "UNACK_ACTIVE" not in states and "ACK_ACTIVE" not in states
    events = docs(f"{base}/events/maintenance")
    assert [(e["state"], e["user"]) for e in events if e["type"] == "maintenance"] == [
        ("start", "calibrator"),
        ("end", "calibrator"),
    ]
    status = [d["maintenance"] for d in docs(f"{base}/{FACE}/status")]
    assert any(m and m["user"] == "calibrator" for m in status) and status[-1] is None

    (summary,) = docs(f"{base}/report/daily")
    assert summary["complete"] is True
    notable = {(n["device"], n["point"]): n for n in summary["notable"]}
    face_ch4 = notable[FACE, "ch4"]
    assert 250 / SPEED < face_ch4["maintenance_s"] < 400 / SPEED
    assert face_ch4["over_count"] == 0 and face_ch4["power_off_count"] == 0
    assert face_ch4["max"] < 1.0  # calibration gas is not in the statistics
    day = summary["day"]

    # the files of the day, and the same report from the CLI in its own process
    state = tmp_path / "state" / f"daily-{site.site.id}"
    assert (state / f"{day}.npz").is_file() and (state / f"{day}.html").is_file()
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        yaml.safe_dump(
            {
                "site": {"id": site.site.id, "name": "calibration test"},
                "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite3")},
                "devices": [
                    {
                        "id": FACE,
                        "profile": "gas_detector",
                        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1502},
                    }
                ],
            }
        )
    )
    out = tmp_path / "out"
    argv = ["report", "daily", "-c", str(site_file), "--date", day, "--out", str(out)]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hazardgw", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = (out / f"{day}.csv").read_text().splitlines()
    header = rows[0].split(",")
    face_row = next(r.split(",") for r in rows if r.split(",")[1:3] == [FACE, "ch4"])
    assert float(face_row[header.index("maintenance_s")]) > 250 / SPEED
    page = (out / f"{day}.html").read_text()
    assert page.count("<svg") == len(rows) - 1
    assert "maintenance" in page and "<script" not in page
    assert "src=" not in page and "href=" not in page  # self-contained

    # the database was down at midnight; back now, it gets the daily lines from the outbox
    vm.start()
    gw2 = Gateway(site)
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(gw2.run(stop2))
    try:
        series = await asyncio.to_thread(
            vm.wait_for_samples,
            f'{{__name__="daily_maintenance_s",device="{FACE}",point="ch4"}}',
            count=1,
            timeout=20,
        )
    finally:
        stop2.set()
        await task2
    (stored,) = series
    assert stored.values == [pytest.approx(face_ch4["maintenance_s"], rel=1e-6)]
    assert stored.timestamps == [summary["start"]]  # stamped with the day's local midnight
    calibration = vm.export('{__name__="gas_ch4",quality="maintenance"}')
    assert {s.labels["device"] for s in calibration} == {FACE}
    assert max(max(s.values) for s in calibration) >= 1.9

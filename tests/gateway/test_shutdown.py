"""A stop that delivers: ``hazardgw run`` as a process, stopped with SIGTERM / SIGINT.

The devices are :class:`tests.harness.counting_device.CountingDevice` servers: the n-th read of one
answers ``n``, and the device records when it answered. So the test knows every sample the
gateway took, and holds what reached the broker and the database against it. The site files
have no ``outbox`` key: the default, durable outbox in the test's ``$STATE_DIRECTORY``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.config import default_outbox_path
from tests.harness.counting_device import CountingDevices
from tests.harness.mosquitto import Mosquitto, mosquitto_binary
from tests.harness.mqtt import SessionRecorder
from tests.harness.paths import ROOT
from tests.harness.victoria_metrics import VictoriaMetrics, find_binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed"),
]

SITE_ID = "stop-test"
POLL_S = 0.1
#: Process start-up and teardown allowance on top of shutdown_timeout (a loaded 2-core machine).
EXIT_SLACK_S = 8.0


def _write_site(
    work: Path,
    devices: CountingDevices,
    mqtt_url: str,
    *,
    influx_url: str | None = None,
    shutdown_timeout: float | None = None,
) -> Path:
    profile = devices.write_profile(work)
    lines = [
        f"site: {{id: {SITE_ID}}}",
        f"mqtt: {{url: '{mqtt_url}', telemetry_qos: 1, keepalive: 5}}",
    ]
    if influx_url is not None:
        # a long flush interval: lines are still waiting for the database when the signal comes
        lines.append(f"influx: {{url: '{influx_url}', org: o, bucket: b, flush_interval: 2.0}}")
    if shutdown_timeout is not None:
        lines.append(f"shutdown_timeout: {shutdown_timeout}")
    lines += ["devices:", *devices.device_lines(profile, POLL_S)]
    site = work / "site.yaml"
    site.write_text("\n".join(lines) + "\n")
    return site


def _start_gateway(site: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hazardgw", "run", "-c", str(site), "--log-level", "INFO"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def _wait_reads(devices: CountingDevices, n: int, gw: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while min(len(d.reads) for d in devices) < n:
        if gw.poll() is not None:
            raise AssertionError(f"the gateway exited: {log.read_text()[-3000:]}")
        assert time.monotonic() < deadline, "the gateway does not poll the devices"
        time.sleep(0.1)


def _mqtt_seqs(recorder: SessionRecorder) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for m in recorder.snapshot():
        if m.topic.endswith("/telemetry"):
            device = m.topic.split("/")[2]
            out.setdefault(device, set()).add(int(json.loads(m.payload)["values"]["seq"]))
    return out


def _wait_mqtt(recorder: SessionRecorder, expected: dict[str, set[int]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _mqtt_seqs(recorder)
        if all(expected[d] <= got.get(d, set()) for d in expected):
            return
        time.sleep(0.2)


def _db_seqs(
    vm: VictoriaMetrics, expected: dict[str, set[int]], timeout: float
) -> dict[str, set[int]]:
    deadline = time.monotonic() + timeout
    while True:
        stored: dict[str, set[int]] = {}
        for series in vm.export(f'{{__name__="counter_seq",site="{SITE_ID}"}}'):
            stored[series.labels["device"]] = {int(v) for _, v in series.samples}
        if all(expected[d] <= stored.get(d, set()) for d in expected):
            return stored
        if time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


def _outbox_rows() -> int:
    path = default_outbox_path(SITE_ID)
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM entries").fetchone()[0])


@pytest.mark.skipif(find_binary() is None, reason="victoria-metrics is not installed")
@pytest.mark.timeout(180)
def test_sigterm_delivers_every_sample_read_before_the_signal(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with CountingDevices(3) as devices, VictoriaMetrics.launch(tmp_path / "vm") as vm:
        recorder = SessionRecorder(
            mosquitto.port, "stop-recorder", [f"hazard/{SITE_ID}/+/telemetry"]
        )
        recorder.wait_connected()
        try:
            site = _write_site(tmp_path, devices, mosquitto.url, influx_url=vm.url)
            log = tmp_path / "gateway.log"
            gw = _start_gateway(site, log)
            _wait_reads(devices, 20, gw, log)
            signalled = time.time()
            gw.send_signal(signal.SIGTERM)
            assert gw.wait(30) == 0, log.read_text()[-3000:]
            exited = time.time()
            read = {d.device_id: {seq for seq, _ in d.reads} for d in devices}
            # polling stopped at the signal: at most the read already on its way was answered
            for d in devices:
                after = d.reads_after(signalled)
                assert len(after) <= 1, f"{d.device_id} was read {len(after)} times after SIGTERM"
            # every sample read reached the broker and the database before the process exited
            _wait_mqtt(recorder, read, timeout=5)  # (what the broker took, on to the recorder)
            got = _mqtt_seqs(recorder)
            for device, seqs in read.items():
                missing = sorted(seqs - got.get(device, set()))
                assert not missing, f"{device}: read, never on MQTT: {missing}"
            assert got == read
            stored = _db_seqs(vm, read, timeout=10)  # (the database ingests asynchronously)
            for device, seqs in read.items():
                missing = sorted(seqs - stored.get(device, set()))
                assert not missing, f"{device}: read, not in the database: {missing}"
            assert stored == read
            text = log.read_text()
            assert "stopping: everything delivered to the broker and the database" in text
            assert _outbox_rows() == 0
            assert exited - signalled < 10.0 + EXIT_SLACK_S  # the default shutdown_timeout
        finally:
            recorder.close()


@pytest.mark.timeout(180)
def test_sigint_with_the_broker_down_exits_in_time_and_keeps_the_rest(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    with CountingDevices(2) as devices:
        try:
            site = _write_site(tmp_path, devices, broker.url, shutdown_timeout=2.0)
            log = tmp_path / "gateway-1.log"
            gw = _start_gateway(site, log)
            _wait_reads(devices, 5, gw, log)
            broker.kill()
            killed = time.time()
            _wait_reads(devices, 15, gw, log)  # these samples can only go to the outbox
            signalled = time.monotonic()
            gw.send_signal(signal.SIGINT)
            assert gw.wait(30) == 0, log.read_text()[-3000:]
            took = time.monotonic() - signalled
            assert took < 2.0 + EXIT_SLACK_S, f"exited {took:.1f} s after SIGINT"
            assert took >= 2.0, "gave up before shutdown_timeout"
            text = log.read_text()
            assert "not delivered, kept in the outbox" in text
            assert _outbox_rows() > 0
            # read while the broker was away (a margin after the kill: what it took just before
            # it died went to the void, there was no subscriber yet)
            read = {d.device_id: set(d.reads_after(killed + 0.5)) for d in devices}
            assert all(read.values())

            # the next start delivers what the first process kept
            broker.start()
            recorder = SessionRecorder(
                broker.port, "stop-recorder-2", [f"hazard/{SITE_ID}/+/telemetry"]
            )
            try:
                recorder.wait_connected()
                log2 = tmp_path / "gateway-2.log"
                gw = _start_gateway(site, log2)
                _wait_mqtt(recorder, read, timeout=60)
                gw.send_signal(signal.SIGTERM)
                assert gw.wait(30) == 0, log2.read_text()[-3000:]
                got = _mqtt_seqs(recorder)
                for device, seqs in read.items():
                    assert seqs <= got[device], f"{device}: lost {sorted(seqs - got[device])}"
            finally:
                recorder.close()
        finally:
            broker.stop()

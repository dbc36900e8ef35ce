"""Secrets never leave the environment: a gateway run at DEBUG (every library's logger) with an
MQTT password and an InfluxDB token set logs neither, publishes neither, and ``hazardgw check``
prints neither."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.gateway.security.pki import Pki, SecureMosquitto, make_pki, openssl_binary
from tests.harness.mosquitto import mosquitto_binary
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

USER = "hazardgw"
PASSWORD = "mqtt-pw-Xq93!fL"
TOKEN = "influx-token-7hJk2LmN0pQ"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    if openssl_binary() is None or mosquitto_binary() is None:
        pytest.skip("needs the openssl CLI and mosquitto")
    return make_pki(tmp_path / "pki")


def write_site(tmp_path: Path, broker: SecureMosquitto, pki: Pki) -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(
        f"""
site: {{id: secrets}}
mqtt:
  url: {broker.tls_url}
  topic_prefix: sec
  username_env: HZ_MQTT_USER
  password_env: HZ_MQTT_PASSWORD
  tls: {{ca_file: {pki.ca}}}
influx:                       # nothing listens here: every write fails and is logged
  url: http://127.0.0.1:{free_port()}
  org: safety
  bucket: hazard
  token_env: HZ_INFLUX_TOKEN
  flush_interval: 0.2
outbox: {{path: {tmp_path / "outbox.sqlite3"}}}
rules: [rules/packs/coal_mine.yaml]
devices:                      # nothing listens here either: the device is offline
  - id: face1-gas
    profile: gas_detector
    connection: {{transport: tcp, host: 127.0.0.1, port: {free_port()}}}
    tags: {{position: T1, area: face-1}}
    poll_interval: 0.3
    timeout: 0.2
"""
    )
    return site


def env() -> dict[str, str]:
    return {
        **os.environ,
        "HZ_MQTT_USER": USER,
        "HZ_MQTT_PASSWORD": PASSWORD,
        "HZ_INFLUX_TOKEN": TOKEN,
        "PYTHONUNBUFFERED": "1",
    }


class Everything:
    """Every message on the broker, through the plain listener."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.payloads: list[bytes] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="secrets-spy")
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_message = lambda _c, _u, msg: self._add(msg.topic.encode() + msg.payload)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()

    def _add(self, data: bytes) -> None:
        with self.lock:
            self.payloads.append(data)

    def close(self) -> list[bytes]:
        self.client.loop_stop()
        self.client.disconnect()
        with self.lock:
            return list(self.payloads)


def test_debug_run_never_logs_or_publishes_a_secret(tmp_path: Path, pki: Pki) -> None:
    broker = SecureMosquitto(tmp_path, pki, passwords={USER: PASSWORD}).start()
    try:
        site = write_site(tmp_path, broker, pki)
        spy = Everything(broker.port)
        log = tmp_path / "gateway.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hazardgw", "run", "-c", str(site), "--log-level", "DEBUG"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env(),
            )
            try:
                deadline = time.monotonic() + 30
                # run until it is connected, has published and failed InfluxDB writes a few times
                while time.monotonic() < deadline:
                    text = log.read_text(errors="replace")
                    if "InfluxDB" in text and any(b"gateway/status" in p for p in spy.payloads):
                        break
                    time.sleep(0.2)
                time.sleep(3.0)
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(20)
        published = spy.close()
    finally:
        broker.stop()
    text = log.read_text(errors="replace")
    assert "DEBUG" in text, "the run logged at DEBUG"
    assert "InfluxDB" in text, "the InfluxDB failures were logged"
    assert any(b"/gateway/status" in p for p in published), "the gateway published over TLS"
    assert any(b"/face1-gas/status" in p for p in published)
    for secret in (PASSWORD, TOKEN):
        assert secret not in text
        assert not any(secret.encode() in p for p in published)
    assert PASSWORD not in broker.log_text()


def test_check_prints_no_secret(tmp_path: Path, pki: Pki) -> None:
    broker = SecureMosquitto(tmp_path, pki, passwords={USER: PASSWORD})  # not started
    site = write_site(tmp_path, broker, pki)
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(site)],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "secrets" in proc.stdout
    for secret in (PASSWORD, TOKEN):
        assert secret not in proc.stdout + proc.stderr


def test_influx_sink_repr_hides_the_token() -> None:
    from gateway.config import InfluxConfig
    from gateway.sinks.influx import InfluxSink

    cfg = InfluxConfig(url="http://127.0.0.1:1", org="o", bucket="b", token_env="T")
    sink = InfluxSink(cfg, "site", token=TOKEN)
    assert TOKEN not in repr(sink)
    assert TOKEN not in str(sink)

"""Prometheus metrics: off by default; with ``metrics.listen`` a scrape shows the gateway's polls,
poll lag, alarms by priority and state, outbox depth and connection states (real Mosquitto, real
pymodbus simulators in the gas-leak scenario at ten times real speed)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import Gateway
from gateway.config import MetricsConfig, SiteConfig, parse_site
from gateway.errors import ConfigError
from hazardgw.demo import demo_site
from simulators import SiteSimulator
from tests.harness.mosquitto import Mosquitto
from tests.harness.paths import ROOT
from tests.harness.ports import free_port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def gas_site(broker: Mosquitto, port: int | None) -> SiteConfig:
    site = demo_site(ROOT / "hazardgw" / "examples" / "site.yaml", broker.url)
    gas = tuple(d for d in site.devices if d.kind == "gas")
    metrics = MetricsConfig(listen=f"127.0.0.1:{port}") if port else None
    mqtt = site.mqtt.model_copy(update={"topic_prefix": "metrics-test"})
    return dataclasses.replace(site, devices=gas, metrics=metrics, mqtt=mqtt)


@pytest.mark.integration
async def test_scrape_shows_polls_lag_alarms_and_connections(mosquitto: Mosquitto) -> None:
    port = free_port()
    site = gas_site(mosquitto, port)
    t0 = time.monotonic()
    fast = lambda: t0 + (time.monotonic() - t0) * 10.0  # noqa: E731
    async with SiteSimulator(site, scenario="gas-leak", seed=1, clock=fast):
        gw = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            async with asyncio.timeout(40):
                while True:
                    await asyncio.sleep(0.5)
                    m = await asyncio.to_thread(scrape, port)
                    if m.get(("hazardgw_alarms", (("priority", "1"), ("state", "UNACK_ACTIVE")))):
                        break
        finally:
            stop.set()
            await task

    assert m["hazardgw_polls_total", ()] >= len(site.devices)
    assert m["hazardgw_failed_polls_total", ()] == 0
    assert m["hazardgw_points_total", ()] > 0
    assert m["hazardgw_poll_lag_seconds_count", ()] == m["hazardgw_polls_total", ()]
    assert m["hazardgw_poll_lag_seconds_bucket", (("le", "+Inf"),)] == m["hazardgw_polls_total", ()]
    assert m["hazardgw_broker_connected", ()] == 1
    assert m["hazardgw_devices_online", ()] == len(site.devices)
    assert m["hazardgw_outbox_depth", ()] == 0
    assert ("hazardgw_database_connected", ()) not in m  # no influx configured
    # the coal-face methane at HH: one priority-1 unacknowledged alarm, as the engine holds it
    alarms = {k[1]: v for k, v in m.items() if k[0] == "hazardgw_alarms"}
    active = gw.alarms.engine.active_alarms()  # type: ignore[union-attr]
    assert sum(alarms.values()) == len(active) >= 1


@pytest.mark.integration
async def test_metrics_are_off_by_default_and_a_taken_port_does_not_stop_polling(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    assert Gateway(gas_site(mosquitto, None)).metrics is None
    with port_taken() as port:
        site = gas_site(mosquitto, port)
        async with SiteSimulator(site, scenario="normal", seed=1):
            gw = Gateway(site)
            stop = asyncio.Event()
            task = asyncio.create_task(gw.run(stop))
            async with asyncio.timeout(20):
                while gw.stats.polls < len(site.devices):  # noqa: ASYNC110 (the gateway's own counter)
                    await asyncio.sleep(0.1)
            stop.set()
            await task
    assert f"metrics: cannot listen on 127.0.0.1:{port}" in caplog.text


class port_taken:
    """A port held by another listener."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.mark.parametrize("listen", ["9108", "localhost:99999", "a b:80", ":9108"])
def test_bad_metrics_listen_is_a_config_error(listen: str) -> None:
    text = f"""
site: {{id: s1}}
metrics: {{listen: "{listen}"}}
devices:
  - {{id: d1, profile: gas_detector, connection: {{transport: tcp, host: 127.0.0.1, port: 5020}}}}
"""
    with pytest.raises(ConfigError) as err:
        parse_site(yaml.safe_load(text))
    assert any("metrics.listen" in str(i) for i in err.value.issues)

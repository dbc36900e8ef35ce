"""``mqtt.urls``: cluster nodes in order, failover to the next, back-off once all have failed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.config import parse_site
from gateway.errors import ConfigError
from gateway.mqtt import FAILOVER_DELAY_S, MqttPublisher, failover_delay
from gateway.topics import Topics
from tests.harness.mosquitto import Mosquitto
from tests.harness.ports import free_port


def site(mqtt: dict[str, Any]) -> dict[str, Any]:
    return {
        "site": {"id": "s1"},
        "mqtt": mqtt,
        "devices": [
            {
                "id": "gas1",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
            }
        ],
    }


def test_urls_give_the_brokers_in_order() -> None:
    urls = ["mqtt://10.0.0.1:1883", "mqtt://10.0.0.2:1883", "mqtts://10.0.0.3"]
    assert parse_site(site({"urls": urls})).mqtt.brokers == tuple(urls)


def test_url_alone_is_one_broker() -> None:
    assert parse_site(site({"url": "mqtt://b:1884"})).mqtt.brokers == ("mqtt://b:1884",)
    assert parse_site(site({})).mqtt.brokers == ("mqtt://127.0.0.1:1883",)


def test_url_and_urls_together_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(site({"url": "mqtt://a:1883", "urls": ["mqtt://b:1883"]}))
    assert "mqtt" in str(err.value) and "not both" in str(err.value)


def test_a_bad_node_url_is_named_by_its_index() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(site({"urls": ["mqtt://a:1883", "http://b:1883"]}))
    text = str(err.value)
    assert "mqtt.urls[1]" in text and "http://b:1883" in text


def test_empty_urls_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(site({"urls": []}))
    assert "mqtt.urls" in str(err.value)


def test_next_node_at_once_then_back_off_per_round() -> None:
    # three nodes: two quick moves to the next node, then a wait that doubles each full round
    delays = [failover_delay(a, 3, 10.0) for a in range(1, 10)]
    assert delays[:2] == [FAILOVER_DELAY_S] * 2
    assert delays[2] == 0.4 and delays[5] == 0.8 and delays[8] == 1.6
    assert delays[3:5] == [FAILOVER_DELAY_S] * 2
    # one broker: plain doubling back-off, capped
    assert [failover_delay(a, 1, 3.0) for a in (1, 2, 3, 4)] == [0.4, 0.8, 1.6, 3.0]


@pytest.mark.integration
async def test_publisher_skips_a_dead_node(mosquitto: Mosquitto) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    cfg = parse_site(site({"urls": [dead, mosquitto.url]})).mqtt
    pub = MqttPublisher(cfg, Topics("hazard", "s1"), client_id="t-failover", version="t")
    task = asyncio.create_task(pub.run())
    try:
        await pub.wait_connected(10)
        assert pub.port == mosquitto.port
    finally:
        pub.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

"""Site files that used to pass and must not: device ids that collide with the topic tree, tiny
intervals, slash-edged topic prefixes, one device listed twice under two spellings of its host."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.config import MIN_POLL_INTERVAL_S, MIN_TIMEOUT_S, parse_site
from gateway.errors import ConfigError
from gateway.topics import RESERVED_DEVICE_IDS

SITE: dict[str, Any] = {
    "site": {"id": "hard-mine"},
    "devices": [
        {
            "id": "face1-gas",
            "profile": "gas_detector",
            "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
        }
    ],
}


def site_with(**device: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SITE)
    doc["devices"][0].update(device)
    return doc


def refused(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_site(doc)
    return str(info.value)


def test_the_reference_site_is_valid() -> None:
    assert parse_site(SITE).devices[0].id == "face1-gas"


def test_the_reserved_names_cover_the_topic_tree() -> None:
    assert {"gateway", "cmd", "alarms", "events", "interlock", "report", "rescue"} <= set(
        RESERVED_DEVICE_IDS
    )


@pytest.mark.parametrize("name", sorted(RESERVED_DEVICE_IDS))
def test_a_device_id_that_names_a_topic_of_the_tree_is_refused(name: str) -> None:
    text = refused(site_with(id=name))
    assert "devices[0].id" in text and "reserved" in text and name in text


@pytest.mark.parametrize("prefix", ["/", "/hazard", "hazard/", "a//b", "//"])
def test_a_topic_prefix_with_an_empty_level_is_refused(prefix: str) -> None:
    doc = copy.deepcopy(SITE)
    doc["mqtt"] = {"topic_prefix": prefix}
    text = refused(doc)
    assert "mqtt.topic_prefix" in text and "/" in text


@pytest.mark.parametrize("prefix", ["hazard", "a/b", "corp-1/mines_2/x"])
def test_a_topic_prefix_of_levels_is_accepted(prefix: str) -> None:
    doc = copy.deepcopy(SITE)
    doc["mqtt"] = {"topic_prefix": prefix}
    assert parse_site(doc).mqtt.topic_prefix == prefix


@pytest.mark.parametrize(
    ("first", "second"),
    [("localhost", "127.0.0.1"), ("127.0.0.1", "LOCALHOST"), ("127.0.0.1", "127.000.000.001")],
)
def test_one_device_under_two_spellings_of_its_host_is_refused(first: str, second: str) -> None:
    doc = copy.deepcopy(SITE)
    doc["devices"][0]["connection"]["host"] = first
    twin = copy.deepcopy(doc["devices"][0])
    twin["id"] = "face1-gas-twin"
    twin["connection"]["host"] = second
    doc["devices"].append(twin)
    text = refused(doc)
    assert "devices[1].unit" in text and "devices[0] already uses this connection" in text


def test_two_units_behind_one_host_are_two_devices() -> None:
    doc = copy.deepcopy(SITE)
    twin = copy.deepcopy(doc["devices"][0])
    twin.update(id="face2-gas", unit=2)
    twin["connection"]["host"] = "localhost"
    doc["devices"].append(twin)
    assert len(parse_site(doc).devices) == 2


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("poll_interval", 1e-300),
        ("poll_interval", MIN_POLL_INTERVAL_S / 2),
        ("poll_interval", 0),
        ("timeout", 1e-300),
        ("timeout", MIN_TIMEOUT_S / 2),
    ],
)
def test_intervals_and_timeouts_below_the_floor_are_refused(key: str, value: float) -> None:
    text = refused(site_with(**{key: value}))
    assert f"devices[0].{key}" in text and "greater than or equal" in text


def test_intervals_at_the_floor_are_accepted() -> None:
    dev = parse_site(site_with(poll_interval=MIN_POLL_INTERVAL_S, timeout=MIN_TIMEOUT_S)).devices[0]
    assert (dev.poll_interval, dev.timeout) == (MIN_POLL_INTERVAL_S, MIN_TIMEOUT_S)


def test_a_database_flush_interval_below_the_floor_is_refused() -> None:
    doc = copy.deepcopy(SITE)
    doc["influx"] = {"url": "http://127.0.0.1:8086", "org": "o", "bucket": "b"}
    doc["influx"]["flush_interval"] = 1e-300
    assert "influx.flush_interval" in refused(doc)

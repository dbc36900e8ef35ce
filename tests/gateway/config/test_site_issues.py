"""Every check of a site file reports where it found the problem, and all of them come in one
ConfigError, in the order of the file: devices, rule packs, MQTT credentials, TLS files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_site
from gateway.errors import ConfigError


def _tcp(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"transport": "tcp", "host": host, "port": port}


def test_every_stage_reports_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    raw = {
        "site": {"id": "s1"},
        "outbox": {"enabled": False},
        "mqtt": {
            "username_env": "MQTT USER",
            "password_env": "GOOD_NAME",
            "tls": {"ca_file": "missing-ca.pem", "cert_file": "c.pem", "key_file": "k.pem"},
        },
        "rules": ["no/such/pack.yaml", "packs"],
        "devices": [
            {"id": "a", "profile": "gas_detector", "connection": _tcp(502)},
            # same id, and the same endpoint as devices[0] under another spelling of its host
            {"id": "a", "profile": "gas_detector", "connection": _tcp(502, "localhost")},
            {"id": "b", "profile": "gas_detectr", "unit": 2, "connection": _tcp(502)},
            {"id": "c", "profile": "gas_detectr", "unit": 3, "connection": _tcp(502)},
            {
                "id": "d",
                "profile": "gas_detector",
                "unit": 4,
                "connection": {"transport": "rtu", "port": "/dev/ttyS0"},
                "points": [
                    {"name": "new", "register": "holding"},
                    {"name": "ch4", "scale": 0},
                    {"name": "ch4", "scale": 2},
                ],
            },
        ],
    }
    (tmp_path / "c.pem").write_text("")
    (tmp_path / "k.pem").write_text("")
    with pytest.raises(ConfigError) as info:
        parse_site(raw, base_dir=tmp_path)
    got = [(i.path, i.message, i.value) for i in info.value.issues]
    builtin = (
        "built-in profiles: elevator, gas_detector, mine_environment, tank_gauge, tower_crane, "
        "toxic_gas_detector"
    )
    missing = f"{tmp_path / 'gas_detectr'}: profile file not found; {builtin}"
    assert got == [
        ("devices[1].id", "duplicate device id (also devices[0])", "a"),
        ("devices[1].unit", "devices[0] already uses this connection and unit", 1),
        # a profile that does not load is reported for every device naming it
        ("devices[2].profile", missing, "gas_detectr"),
        ("devices[3].profile", missing, "gas_detectr"),
        ("devices[4].points[0].address", "required key is missing for a new point", None),
        ("devices[4].points[1].scale", "scale 0 would make every value 0", 0.0),
        ("devices[4].points[2].name", "duplicate point name", "ch4"),
        ("rules[0]", "rule pack file not found", "no/such/pack.yaml"),
        ("rules[1]", "not a regular file: a rule pack is a file", "packs"),
        ("mqtt.username_env", "not a valid environment variable name", "MQTT USER"),
        ("mqtt.tls.ca_file", "file not found", "missing-ca.pem"),
    ]


def test_a_good_site_has_its_rule_packs_resolved(tmp_path: Path) -> None:
    pack = tmp_path / "mine.yaml"
    pack.write_text("")
    site = parse_site(
        {
            "site": {"id": "s1"},
            "outbox": {"enabled": False},
            "rules": ["mine.yaml", "rules/packs/coal_mine.yaml"],
            "devices": [{"id": "a", "profile": "gas_detector", "connection": _tcp(502)}],
        },
        base_dir=tmp_path,
    )
    assert site.rules[0] == pack
    assert site.rules[1].name == "coal_mine.yaml" and site.rules[1].is_file()

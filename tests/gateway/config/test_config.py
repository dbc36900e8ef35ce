"""Site config: every bad example beside its expected message; good files resolve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import BUILTIN_PROFILES, load_profile, load_site, parse_site
from gateway.errors import ConfigError
from tests.harness.paths import ROOT

BAD = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))


def _expected(path: Path) -> list[str]:
    return [
        line.removeprefix("# expect:").strip()
        for line in path.read_text().splitlines()
        if line.startswith("# expect:")
    ]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_names_path_value_and_allowed(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_site(path)
    text = str(info.value)
    for expected in _expected(path):
        assert expected in text, f"{path.name}: expected {expected!r} in:\n{text}"


@pytest.mark.parametrize("path", BAD[:3], ids=[p.stem for p in BAD[:3]])
def test_check_cli_exits_2_without_traceback(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for expected in _expected(path):
        assert expected in proc.stderr


def test_all_problems_reported_at_once() -> None:
    raw = {
        "site": {"id": "s1"},
        "devices": [
            {"id": "a", "profile": "gas_detector", "connection": {"transport": "tcp", "port": 1}},
            {
                "id": "b",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "port": 2},
                "points": [{"name": "x", "register": "coil", "address": 0, "type": "int16"}],
            },
            {"id": "a", "profile": "nope", "connection": {"transport": "tcp", "port": 3}},
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_site(raw)
    paths = {i.path for i in info.value.issues}
    assert {"devices[1].points[0].type", "devices[2].id", "devices[2].profile"} <= paths


def test_example_site_resolves_every_profile() -> None:
    site = load_site(ROOT / "hazardgw" / "examples" / "site.yaml")
    kinds = {d.kind for d in site.devices}
    assert kinds == {"gas", "tank", "elevator", "crane"}
    assert all(len([d for d in site.devices if d.kind == k]) >= 2 for k in kinds)


def test_device_point_overrides_profile_point_partly() -> None:
    site = parse_site(
        {
            "site": {"id": "s1"},
            "devices": [
                {
                    "id": "g1",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "port": 5020},
                    "points": [
                        {"name": "ch4", "scale": 0.001},
                        {"name": "nh3", "register": "holding", "address": 20, "unit": "ppm"},
                    ],
                }
            ],
        }
    )
    points = {p.name: p for p in site.devices[0].points}
    assert points["ch4"].scale == 0.001
    assert points["ch4"].address == 1 and points["ch4"].type == "int16"  # kept from the profile
    assert points["nh3"].type == "uint16"


def test_profile_by_path_relative_to_site_file(tmp_path: Path) -> None:
    (tmp_path / "meter.yaml").write_text(
        "kind: meter\npoints:\n  - {name: kwh, register: input, address: 0, type: uint32}\n"
    )
    (tmp_path / "site.yaml").write_text(
        "site: {id: s1}\ndevices:\n  - {id: m1, profile: meter.yaml, "
        "connection: {transport: tcp, port: 5020}}\n"
    )
    site = load_site(tmp_path / "site.yaml")
    assert site.devices[0].kind == "meter"
    assert site.devices[0].measurement == "meter"


@pytest.mark.parametrize("name", sorted(BUILTIN_PROFILES))
def test_builtin_profiles_load(name: str) -> None:
    profile = load_profile(name)
    names = [p.name for p in profile.points]
    assert len(names) == len(set(names))
    kinds = {p.register for p in profile.points}
    assert "holding" in kinds


def test_check_cli_names_a_gas_detector_no_loaded_pack_places(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        f"""
site: {{id: mixed}}
rules: ['{ROOT}/rules/packs/coal_mine.yaml', '{ROOT}/rules/packs/hazchem_gas.yaml']
devices:
  - {{id: face1-gas, profile: gas_detector, connection: {{transport: tcp, port: 5020}},
     tags: {{position: T1}}}}
  - {{id: t101-lel, profile: gas_detector, connection: {{transport: tcp, port: 5021}},
     tags: {{position: tank-farm}}}}
""",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(site)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "devices: t101-lel.tags.position: got 'tank-farm'" in proc.stderr
    assert "coal_mine: T0" in proc.stderr and "hazchem_gas: process_unit" in proc.stderr

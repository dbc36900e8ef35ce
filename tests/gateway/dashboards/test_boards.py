"""The Grafana boards against the provisioning and the line-protocol schema.

Every Flux query may name only measurements, fields and tags the gateway writes for the built-in
profiles (gateway/profiles/*.yaml) and the alarm / device_status / gateway measurements: a board
that reads a name nobody writes would show "No data" in a control room.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import gateway.config
from gateway.config import load_profile
from gateway.sinks.lineprotocol import MeasurementSchema, schema_for
from tests.harness.paths import ROOT

BOARDS_DIR = ROOT / "dashboards"
PROVISIONING = BOARDS_DIR / "provisioning"
PROFILE_DIR = Path(gateway.config.__file__).parent / "profiles"

EXPECTED_UIDS = {
    "hazard-site-overview",
    "hazard-gas",
    "hazard-tanks",
    "hazard-elevators",
    "hazard-cranes",
    "hazard-alarms",
    "hazard-gateway-health",
}
SYSTEM_COLUMNS = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}
FLUX_VARS = {"defaultBucket", "timeRangeStart", "timeRangeStop", "windowPeriod"}


def load_schema() -> dict[str, MeasurementSchema]:
    profiles = [load_profile(str(path)) for path in sorted(PROFILE_DIR.glob("*.yaml"))]
    assert profiles, f"no profiles in {PROFILE_DIR}"
    return schema_for(profiles)


SCHEMA = load_schema()


def load_boards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(BOARDS_DIR.glob("*.json"))
    }


BOARDS = load_boards()


def datasource_uid() -> str:
    doc = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    [ds] = doc["datasources"]
    return str(ds["uid"])


def all_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows nest their panels


@dataclass(frozen=True)
class Query:
    board: str
    where: str
    text: str
    datasource: dict[str, Any] | None


def all_queries(name: str, board: dict[str, Any]) -> Iterator[Query]:
    for panel in all_panels(board):
        for target in panel.get("targets", []):
            yield Query(
                name,
                f"panel {panel['title']!r} {target.get('refId')}",
                target.get("query", ""),
                target.get("datasource"),
            )
    for ann in board.get("annotations", {}).get("list", []):
        target = ann.get("target", {})
        if "query" in target:
            yield Query(name, f"annotation {ann['name']!r}", target["query"], ann.get("datasource"))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]
            text = query if isinstance(query, str) else query.get("query", "")
            yield Query(name, f"variable {var['name']!r}", text, var.get("datasource"))


QUERIES = [q for name, board in BOARDS.items() for q in all_queries(name, board)]


# ---------------------------------------------------------------- the Flux checker


def check_flux(text: str, schema: dict[str, MeasurementSchema]) -> list[str]:
    """Names in one Flux query that the gateway does not write, as messages (empty = fine)."""
    problems: list[str] = []
    if re.search(r"\br\[", text):
        problems.append("use r.name, not r[...]: the check reads dotted names only")
    if re.search(r"r\._(measurement|field)\s*(=~|!~|!=)", text):
        problems.append("match _measurement and _field with == only, so the check can read them")
    measurements = re.findall(r'r\._measurement\s*==\s*"([^"]*)"', text)
    for m in measurements:
        if m not in schema:
            problems.append(f"measurement {m!r} is not written by the gateway")
    known = [schema[m] for m in measurements if m in schema]
    if known:
        tags = set().union(*(s.tags for s in known))
        fields = set().union(*(s.fields for s in known))
    else:  # no measurement named: only what every measurement carries
        tags = set.intersection(*(set(s.tags) for s in schema.values()))
        fields = set()
    pivoted = "pivot(" in text
    columns = tags | SYSTEM_COLUMNS | (fields if pivoted else set())

    for call in re.findall(r"filter\(fn: \(r\) => (.*?)\)\n|$", text):
        call_meas = re.findall(r'r\._measurement\s*==\s*"([^"]*)"', call)
        for f in re.findall(r'r\._field\s*==\s*"([^"]*)"', call):
            for m in call_meas:
                if m in schema and f not in schema[m].fields:
                    problems.append(f"field {f!r} is not written under {m!r}")
    for f in re.findall(r'r\._field\s*==\s*"([^"]*)"', text):
        if f not in fields:
            problems.append(f"field {f!r} is not written under {sorted(set(measurements))}")
    for name in re.findall(r"\br\.(\w+)", text):
        if name.startswith("_"):
            if name not in SYSTEM_COLUMNS:
                problems.append(f"column r.{name} does not exist")
        elif name not in columns:
            problems.append(f"tag r.{name} is not written under {sorted(set(measurements))}")
    for tag in re.findall(r'\btag:\s*"([^"]*)"', text):
        if tag not in tags:
            problems.append(f"tag {tag!r} (schema.tagValues) is not written")
    for group in re.findall(r"\b(?:columns|rowKey|columnKey):\s*\[([^\]]*)\]", text):
        for col in re.findall(r'"([^"]*)"', group):
            if col not in columns:
                problems.append(f"column {col!r} is not a tag, field or system column here")
    for col in re.findall(r'\bvalueColumn:\s*"([^"]*)"', text):
        if col not in columns:
            problems.append(f"valueColumn {col!r} does not exist")
    for var in re.findall(r"\bv\.(\w+)", text):
        if var not in FLUX_VARS:
            problems.append(f"v.{var} is not one of Grafana's Flux variables {sorted(FLUX_VARS)}")
    return problems


def test_checker_catches_names_nobody_writes() -> None:
    bad = (
        "from(bucket: v.defaultBucket)\n  |> range(start: v.timeRangeStart)\n"
        '  |> filter(fn: (r) => r._measurement == "gas" and r._field == "methane")\n'
        '  |> filter(fn: (r) => r.area == "face-1" and r._field == "level")\n'
        '  |> filter(fn: (r) => r._measurement == "gases")\n'
        '  |> group(columns: ["rule"])\n'
        "  |> filter(fn: (r) => r._field =~ /ch4/)\n"
        "  |> range(start: v.since)\n"
    )
    problems = "\n".join(check_flux(bad, SCHEMA))
    assert "field 'methane'" in problems
    assert "measurement 'gases'" in problems
    assert "tag r.area" in problems
    assert "field 'level' is not written" in problems
    assert "column 'rule'" in problems
    assert "== only" in problems
    assert "v.since" in problems
    good = (
        '  |> filter(fn: (r) => r._measurement == "alarm" and r._field == "state")\n'
        '  |> filter(fn: (r) => r.rule == "x")\n  |> group(columns: ["level"])\n'
    )
    assert check_flux(good, SCHEMA) == []


def test_schema_comes_from_the_profiles() -> None:
    assert set(SCHEMA) == {
        "gas",
        "tank",
        "elevator",
        "crane",
        "alarm",
        "device_status",
        "gateway",
        "daily",
        "exposure",
        "rescue",
    }
    assert {"ch4", "co", "o2", "h2s"} <= set(SCHEMA["gas"].fields)
    assert {"moment_pct", "wind_ms", "load_t"} <= set(SCHEMA["crane"].fields)


def test_the_elevator_board_lists_open_rescues() -> None:
    texts = [q.text for q in QUERIES if q.board == "elevators.json"]
    assert any(
        'r._measurement == "rescue"' in t and "r.open == 1" in t and "last(" in t for t in texts
    )


def test_exposure_panels_read_the_shift_rows() -> None:
    """The gas board shows the per-shift exposure rows; the checker knows their fields and
    tags."""
    texts = [q.text for q in QUERIES if q.board == "gas.json"]
    assert any('r._measurement == "exposure"' in t and "twa_pct" in t for t in texts)
    assert any('r._measurement == "exposure"' in t and "pivot(" in t for t in texts)
    bad = (
        '  |> filter(fn: (r) => r._measurement == "exposure" and r._field == "twa_percent")\n'
        '  |> filter(fn: (r) => r.quality == "good")\n'
    )
    problems = "\n".join(check_flux(bad, SCHEMA))
    assert "field 'twa_percent'" in problems
    assert "tag r.quality" in problems
    good = (
        '  |> filter(fn: (r) => r._measurement == "exposure" and r._field == "stel_max")\n'
        '  |> filter(fn: (r) => r.substance == "NH3" and r.rule == "nh3_exposure")\n'
    )
    assert check_flux(good, SCHEMA) == []


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.board}:{q.where}")
def test_query_reads_only_what_the_gateway_writes(query: Query) -> None:
    assert query.text.strip(), "empty query"
    assert check_flux(query.text, SCHEMA) == []


# ---------------------------------------------------------------- structure and provisioning


def test_the_seven_boards_exist_with_unique_uids_and_titles() -> None:
    uids = [b["uid"] for b in BOARDS.values()]
    titles = [b["title"] for b in BOARDS.values()]
    assert len(uids) == len(set(uids))
    assert len(titles) == len(set(titles))
    assert set(uids) == EXPECTED_UIDS
    assert all(len(uid) <= 40 for uid in uids)  # Grafana's limit


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_structure(name: str) -> None:
    board = BOARDS[name]
    panels = list(all_panels(board))
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique in a board"
    cells: set[tuple[int, int]] = set()
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        for y in range(pos["y"], pos["y"] + pos["h"]):
            for x in range(pos["x"], pos["x"] + pos["w"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
        if p["type"] != "row":
            assert p.get("targets"), f"panel {p['title']!r} has no query"
            assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_datasource_is_the_provisioned_one(name: str) -> None:
    uid = datasource_uid()
    board = BOARDS[name]
    for panel in all_panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "influxdb", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == uid
    for q in all_queries(name, board):
        assert q.datasource is not None, q.where
        assert q.datasource["uid"] == uid, q.where


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_template_variables_used_are_defined(name: str) -> None:
    board = BOARDS[name]
    defined = {v["name"] for v in board["templating"]["list"]}
    assert "site" in defined
    used: set[str] = set()
    for q in all_queries(name, board):
        used |= set(re.findall(r"\$\{(\w+)(?::\w+)?\}", q.text))
        used |= set(re.findall(r"\$(\w+)", q.text))
    assert used <= defined


def test_provisioning_files() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    [source] = ds["datasources"]
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "Flux"
    assert source["jsonData"]["defaultBucket"]
    assert "token" in source["secureJsonData"]
    assert source["secureJsonData"]["token"].startswith("${"), "the token comes from the env"
    prov = yaml.safe_load((PROVISIONING / "dashboards" / "hazard.yaml").read_text())
    [provider] = prov["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


def thresholds_of(board: dict[str, Any], title_start: str) -> list[float]:
    [panel] = [p for p in all_panels(board) if p["title"].startswith(title_start)]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    style = panel["fieldConfig"]["defaults"].get("custom", {}).get("thresholdsStyle", {})
    assert style.get("mode", "off") != "off", f"{title_start}: thresholds are not drawn"
    return [s["value"] for s in steps if s["value"] is not None]


def test_alarm_limits_are_drawn() -> None:
    gas = BOARDS["gas.json"]
    assert thresholds_of(gas, "CH4") == [1.0, 1.5]
    assert thresholds_of(gas, "CO") == [24]
    assert thresholds_of(gas, "O2") == [19.5, 23.5]
    assert thresholds_of(gas, "H2S") == [6.6, 10]
    cranes = BOARDS["tower-cranes.json"]
    assert 10.8 in thresholds_of(cranes, "Wind speed")
    assert {90, 100} <= set(thresholds_of(cranes, "Load moment"))
    tanks = BOARDS["tanks.json"]
    assert thresholds_of(tanks, "Level (% of tank height)") == [85, 90]


def test_alarm_board_marks_floods() -> None:
    [flood] = BOARDS["alarms.json"]["annotations"]["list"]
    assert flood["enable"]
    assert "r._value > 10" in flood["target"]["query"]
    assert "every: 10m" in flood["target"]["query"]

"""Each simulator scenario raises exactly its expected alarms on the example site.

The example site (``hazardgw/examples/site.yaml``: its devices and its rule packs) runs through a
scenario on simulated time (see :mod:`.harness`): the gateway's reader and decoder over the
simulator's registers, the point table, and the gateway's alarm service ticking the rules engine
at the devices' poll instants. The alarms raised — every transition to UNACK_ACTIVE, as
``(id, level)`` with the time of the first and the number of times — must equal the scenario's
golden list in ``golden/<scenario>.yaml``, where each entry says why it is expected.

Regenerate deliberately, after a change that should move the alarms, and review the diff::

    HAZARDGW_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/simulators/scenarios -k golden

Entries that survive keep their ``why``; new ones get ``TODO`` and fail until explained.
``HAZARDGW_LONG_SCENARIOS=1`` also runs ``normal`` for a whole simulated hour.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import SiteConfig, load_site
from rules import State
from simulators import SCENARIOS
from tests.harness.paths import ROOT
from tests.simulators.scenarios.harness import ScenarioRun, run_scenario

GOLDEN = Path(__file__).with_name("golden")
SITE = ROOT / "hazardgw" / "examples" / "site.yaml"
PREFIX = "hazard"
SEED = 1
TODO = "TODO: explain why this alarm is expected"
AT_TOLERANCE_S = 5.0

#: Simulated seconds per scenario: long enough for every step of the incident it plays.
DURATION_S = {
    "normal": 600.0,
    "static": 600.0,
    "gas-leak": 300.0,
    "tank-overfill": 960.0,
    "tank-leak": 600.0,
    "feed-stuck": 200.0,
    "sensor-fault": 200.0,
    "elevator-trapped": 90.0,
    "elevator-faults": 420.0,
    "crane-overload": 100.0,
    "high-wind": 240.0,
    "crane-tilt": 170.0,
    "toxic-release": 300.0,
    "calibration": 420.0,
}
BUILT_IN = sorted(n for n, s in SCENARIOS.items() if s.setup.__module__ == "simulators.scenarios")


@cache
def site() -> SiteConfig:
    return load_site(SITE)


@cache
def played(scenario: str, duration_s: float) -> ScenarioRun:
    return run_scenario(site(), scenario, seed=SEED, duration_s=duration_s, prefix=PREFIX)


def observed(run: ScenarioRun) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "level": r.level,
            "at_s": r.at_s,
            "activations": r.activations,
            "active_at_end": r.id in run.active_at_end,
        }
        for r in run.raised()
    ]


def write_golden(path: Path, run: ScenarioRun, old: dict[str, Any] | None) -> None:
    why = {(a["id"], a["level"]): a.get("why", TODO) for a in (old or {}).get("alarms", [])}
    alarms = [{**a, "why": why.get((a["id"], a["level"]), TODO)} for a in observed(run)]
    doc: dict[str, Any] = {
        "scenario": run.scenario,
        "seed": run.seed,
        "duration_s": run.duration_s,
        "floods": len(run.floods()),
        "alarms": alarms,
    }
    if old and old.get("note"):
        doc = {"note": old["note"], **doc}
    header = (
        f"# Golden alarms of scenario `{run.scenario}` on hazardgw/examples/site.yaml"
        " (its rule packs),\n"
        "# checked by tests/simulators/scenarios/test_golden.py. `at_s`: simulated seconds of the\n"
        "# first raise (checked within 5 s); `activations`: transitions to UNACK_ACTIVE at that\n"
        "# level.\n"
        "# Regenerate deliberately: HAZARDGW_REGEN_GOLDEN=1 .venv/bin/python -m pytest "
        "tests/simulators/scenarios\n"
    )
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=96)
    path.write_text(header + body, encoding="utf-8")


def load_golden(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def test_every_built_in_scenario_has_a_golden_list() -> None:
    assert sorted(DURATION_S) == BUILT_IN
    if not os.environ.get("HAZARDGW_REGEN_GOLDEN"):
        assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == BUILT_IN


@pytest.mark.parametrize("scenario", BUILT_IN)
def test_scenario_raises_exactly_its_golden_alarms(scenario: str) -> None:
    path = GOLDEN / f"{scenario}.yaml"
    run = played(scenario, DURATION_S[scenario])
    if os.environ.get("HAZARDGW_REGEN_GOLDEN"):
        write_golden(path, run, load_golden(path) if path.exists() else None)
    golden = load_golden(path)
    assert (golden["scenario"], golden["seed"], golden["duration_s"]) == (
        scenario,
        SEED,
        DURATION_S[scenario],
    ), f"{path.name} was made for another run: regenerate it"

    def key(a: dict[str, Any]) -> tuple[str, str, int, bool]:
        return (a["id"], a["level"], a["activations"], a["active_at_end"])

    got = observed(run)
    assert [key(a) for a in got] == [key(a) for a in golden["alarms"]]
    for want, have in zip(golden["alarms"], got, strict=True):
        assert abs(have["at_s"] - want["at_s"]) <= AT_TOLERANCE_S, (want, have)
        assert want.get("why") and want["why"] != TODO, f"{path.name}: explain {want['id']}"
    assert len(run.floods()) == golden["floods"]


@pytest.mark.parametrize("scenario", BUILT_IN)
def test_every_raise_is_published_as_event_and_retained_state(scenario: str) -> None:
    run = played(scenario, DURATION_S[scenario])
    base = f"{PREFIX}/{site().site.id}"
    events = [e for e in run.events() if "flood" not in e]
    assert len(events) == len(run.transitions)
    for tr, event in zip(run.transitions, events, strict=True):
        assert (event["id"], event["from"], event["to"], event["level"]) == (
            tr.id,
            str(tr.from_state),
            str(tr.to_state),
            tr.level,
        )
    retained = {m.topic: m.payload for m in run.messages if m.retain}
    for tr in run.transitions:
        payload = retained[f"{base}/alarms/{tr.id}"]
        shown = next(s for s in reversed(run.transitions) if s.id == tr.id).to_state
        if shown is State.NORMAL:
            assert payload == b""
        else:
            assert json.loads(payload)["state"] == str(shown)


def test_normal_raises_nothing_and_every_device_stays_online() -> None:
    run = played("normal", DURATION_S["normal"])
    assert run.transitions == []
    expected = sum(int(DURATION_S["normal"] / d.poll_interval) for d in site().devices)
    assert run.polls >= expected and run.failed_polls == 0


@pytest.mark.skipif(
    not os.environ.get("HAZARDGW_LONG_SCENARIOS"), reason="set HAZARDGW_LONG_SCENARIOS=1"
)
def test_normal_raises_nothing_for_an_hour() -> None:
    assert played("normal", 3600.0).transitions == []

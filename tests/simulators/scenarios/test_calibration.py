"""Scenario `calibration`: 2.0 %vol test gas during maintenance is not an over-limit alarm.

Played on simulated time by the golden harness (the gateway's reader, point table and alarm
service; the operator's maintenance commands go through the service's command entry). The same
2.0 %vol without maintenance raises the power-off alarm, so the absence of an alarm here is the
maintenance at work, not a quiet signal.
"""

from __future__ import annotations

import json

from rules import State
from simulators.scenarios import (
    CALIBRATION_END_AT,
    CALIBRATION_GAS_FROM,
    CALIBRATION_GAS_UNTIL,
    CALIBRATION_MAINTENANCE_AT,
)
from tests.simulators.scenarios.harness import EPOCH, run_scenario
from tests.simulators.scenarios.test_golden import DURATION_S, played, site

DEVICE = "face1-gas"
FACE = f"{DEVICE}/ch4/ch4_face"


def test_calibration_gas_shows_out_of_service_and_raises_nothing() -> None:
    run = played("calibration", DURATION_S["calibration"])
    assert [r["ok"] for r in run.replies] == [True, True]
    assert run.raised() == []
    face = [t for t in run.transitions if t.id == FACE]
    assert [(t.from_state, t.to_state) for t in face] == [
        (State.NORMAL, State.OUT_OF_SERVICE),
        (State.OUT_OF_SERVICE, State.NORMAL),
    ]
    went, came_back = (t.ts - EPOCH for t in face)
    assert CALIBRATION_GAS_FROM < went < CALIBRATION_GAS_FROM + 30
    assert CALIBRATION_GAS_UNTIL < came_back < CALIBRATION_END_AT
    events = [
        json.loads(m.payload) for m in run.messages if m.topic.endswith("/events/maintenance")
    ]
    assert [(e["state"], e["user"], e["device"]) for e in events] == [
        ("start", "calibrator", DEVICE),
        ("end", "calibrator", DEVICE),
    ]
    assert events[0]["ts"] == round((EPOCH + CALIBRATION_MAINTENANCE_AT) * 1000)
    assert events[1]["reason"] == "calibrated"
    # and no power-off demanded in the detector's area: its interlock never went on
    interlock = [
        json.loads(m.payload) for m in run.messages if m.topic.endswith("/interlock/face-1")
    ]
    assert interlock and not any(doc["power_off"] for doc in interlock)


def test_the_daily_report_shows_the_maintenance_and_no_over_limit() -> None:
    run = played("calibration", DURATION_S["calibration"])
    assert run.daily is not None
    stats = run.daily.stats
    row = {(s.device, s.point): i for i, s in enumerate(run.daily.sensors)}
    face = row[DEVICE, "ch4"]
    window = CALIBRATION_END_AT - CALIBRATION_MAINTENANCE_AT
    assert abs(stats["maintenance_s"][face] - window) <= 2.0
    assert stats["over_count"][face] == 0 and stats["power_off_count"][face] == 0
    assert stats["max"][face] < 1.0  # the 2.0 %vol test gas is not a reading of the air
    others = [i for (dev, _), i in row.items() if dev != DEVICE]
    assert not stats["maintenance_s"][others].any()


def test_the_same_gas_without_maintenance_raises_the_power_off_alarm() -> None:
    """Control: the scenario's gas alone (no operator) must raise H then HH on the face."""
    run = run_scenario(site(), "calibration", seed=1, duration_s=300.0, operator=False)
    levels = [(r.id, r.level) for r in run.raised()]
    assert (FACE, "H") in levels and (FACE, "HH") in levels
    interlock = [
        json.loads(m.payload) for m in run.messages if m.topic.endswith("/interlock/face-1")
    ]
    assert any(doc["power_off"] and FACE in doc["causes"] for doc in interlock)

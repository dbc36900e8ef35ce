"""Property tests: the vectorized engine and the scalar reference agree on every transition.

Random point tables, random value series (steps, jumps, NaN, bad and stale quality, devices going
offline), random time steps (including large jumps and a step backwards) and random operator
commands drive both implementations; every tick's transitions, every command's result or error,
the flood events and the final retained state must be identical.

Values lie on a grid of quarters and times on a grid of half seconds, so every least-squares sum
is exact in floating point whatever the summation order; both implementations then divide the
same numbers and agree to the bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules import (
    AlarmCommandError,
    PointRef,
    RuleEngine,
    RulePack,
    RulesConfigError,
    load_packs,
    parse_pack,
)
from rules._exposure import ShiftExposure
from tests.rules.exposure_reference import ShiftRecord
from tests.rules.harness import PACKS, PROFILE_POINTS, device_points, normalized
from tests.rules.reference import ScalarEngine

ALL_PACKS = load_packs(sorted(PACKS.glob("*.yaml")))
#: Gas-detector positions of the packs that bind by position (coal face, tank farm, …).
POSITIONS = tuple(code for p in ALL_PACKS for code in p.positions)

#: (low, high, step) of the values drawn for each point name.
GRIDS: dict[str, tuple[float, float, float]] = {
    "ch4": (0.0, 4.0, 0.25),
    "co": (0.0, 48.0, 1.0),
    "o2": (18.0, 25.0, 0.25),
    "h2s": (0.0, 20.0, 0.25),
    "lel": (0.0, 70.0, 0.5),
    "temperature": (18.0, 56.0, 0.5),
    "air_temperature": (18.0, 38.0, 0.5),
    "co2": (0.0, 2.0, 0.05),
    "h2": (0.0, 1.0, 0.05),
    "status": (0.0, 8.0, 1.0),
    "fault": (0.0, 1.0, 1.0),
    "feed_on": (0.0, 1.0, 1.0),
    "relay_cut": (0.0, 1.0, 1.0),
    "low_switch": (0.0, 1.0, 1.0),
    "level": (0.0, 20.0, 0.25),
    "level_pct": (0.0, 100.0, 0.25),
    "pressure": (-1.0, 7.0, 0.25),
    "inflow": (0.0, 2.0, 1.0),
    "outflow": (0.0, 2.0, 1.0),
    "high_switch": (0.0, 1.0, 1.0),
    "floor": (-2.0, 30.0, 1.0),
    "direction": (0.0, 2.0, 1.0),
    "running": (0.0, 1.0, 1.0),
    "door_open": (0.0, 1.0, 1.0),
    "door_closed": (0.0, 1.0, 1.0),
    "leveling": (0.0, 1.0, 1.0),
    "occupied": (0.0, 1.0, 1.0),
    "speed": (0.0, 3.0, 0.25),
    "rated_speed": (1.0, 2.5, 0.5),
    "fault_code": (0.0, 3.0, 1.0),
    "safety_circuit": (0.0, 1.0, 1.0),
    "load_t": (0.0, 12.0, 0.25),
    "rated_load_t": (4.0, 10.0, 1.0),
    "moment_pct": (60.0, 120.0, 0.5),
    "radius_m": (2.0, 60.0, 0.5),
    "height_m": (0.0, 80.0, 0.5),
    "slew_deg": (0.0, 359.5, 0.5),
    "wind_ms": (0.0, 16.0, 0.25),
    "beaufort": (0.0, 9.0, 1.0),
    "tilt_x_deg": (-1.5, 1.5, 0.125),
    "tilt_y_deg": (-1.5, 1.5, 0.125),
    "alarm_bits": (0.0, 255.0, 1.0),
    "sensor_fault": (0.0, 1.0, 1.0),
}
GENERIC_GRID = (-12.0, 12.0, 0.5)
TIME_STEPS = (0.0, 0.5, 1.0, 1.0, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0, 31.0, 61.0, 300.0, 601.0, 3600.0)
SHELVE_MINUTES: tuple[Any, ...] = (0.5, 1, 5, 30, 1440, 0, -1, 1441, math.nan, True, "5")
MAINTENANCE_MINUTES: tuple[Any, ...] = (0.05, 0.5, 2, 30, 480, 0, -1, 481, math.nan, True, "5")
#: Reasons for out_of_service / return_to_service (blank or missing: refused out of service).
REASONS: tuple[Any, ...] = ("detector removed for repair", "sensor replaced", "", "  ", None)
VERBS: Final = (
    "ack",
    "ack",
    "shelve",
    "unshelve",
    "out_of_service",
    "return_to_service",
    "maintenance",
    "maintenance_end",
)


def grid_value(point: str) -> st.SearchStrategy[float]:
    lo, hi, step = GRIDS.get(point, GENERIC_GRID)
    return st.integers(0, round((hi - lo) / step)).map(lambda k: lo + k * step)


@dataclass(frozen=True)
class Change:
    point: int
    kind: str  # value | delta | nan | bad | stale
    amount: float = 0.0


@dataclass(frozen=True)
class Tick:
    dt: float
    changes: tuple[Change, ...]
    offline_flips: tuple[int, ...]


@dataclass(frozen=True)
class Command:
    # ack | shelve | unshelve | out_of_service | return_to_service | maintenance |
    # maintenance_end (alarm: then a device index)
    verb: str
    alarm: int  # index into the alarm ids (or the non-NORMAL ones); -1 = an id no alarm has
    minutes: Any = None
    among_active: bool = True
    reason: Any = None


@st.composite
def changes_for(draw: st.DrawFn, points: list[PointRef]) -> tuple[Change, ...]:
    picked = draw(st.lists(st.integers(0, len(points) - 1), max_size=min(8, len(points))))
    out = []
    for i in picked:
        kind = draw(
            st.sampled_from(("value", "value", "delta", "delta", "delta", "nan", "bad", "stale"))
        )
        amount = 0.0
        if kind == "value":
            amount = draw(grid_value(points[i].point))
        elif kind == "delta":
            step = GRIDS.get(points[i].point, GENERIC_GRID)[2]
            amount = step * draw(st.integers(-3, 4))
        out.append(Change(i, kind, amount))
    return tuple(out)


@st.composite
def steps_for(draw: st.DrawFn, points: list[PointRef], n_devices: int) -> list[Tick | Command]:
    steps: list[Tick | Command] = []
    # start with every point read once, so trends and conditions have data
    first = tuple(Change(i, "value", draw(grid_value(p.point))) for i, p in enumerate(points))
    steps.append(Tick(0.0, first, ()))
    for _ in range(draw(st.integers(1, 60))):
        if draw(st.integers(0, 5)) == 0:
            verb = draw(st.sampled_from(VERBS))
            alarm = draw(st.integers(-1, 400))
            minutes = None
            if verb == "shelve":
                minutes = draw(st.sampled_from(SHELVE_MINUTES))
            elif verb == "maintenance":
                minutes = draw(st.sampled_from(MAINTENANCE_MINUTES))
            reason = draw(st.sampled_from(REASONS))
            steps.append(Command(verb, alarm, minutes, draw(st.integers(0, 3)) > 0, reason))
        else:
            dt = draw(st.sampled_from(TIME_STEPS))
            if draw(st.integers(0, 40)) == 0:
                dt = -draw(st.sampled_from((0.5, 5.0, 60.0)))  # the clock is stepped back
            flips = tuple(
                draw(st.lists(st.integers(0, n_devices - 1), max_size=2))
                if draw(st.integers(0, 6)) == 0
                else ()
            )
            steps.append(Tick(dt, draw(changes_for(points)), flips))
    return steps


def run_both(engine: RuleEngine, steps: list[Tick | Command], n_points: int) -> None:
    ref = ScalarEngine(engine.plan, engine.shifts)
    values = np.full(n_points, np.nan)
    quality = np.zeros(n_points, dtype=np.uint8)
    sample_ts = np.full(n_points, np.nan)
    online = np.ones(engine.n_devices, dtype=np.bool_)
    now = 1_700_000_000.0
    ids = engine.alarm_ids
    for step in steps:
        if isinstance(step, Command):
            active = [a.id for a in engine.active_alarms()]
            pool = active if step.among_active and active else ids
            alarm_id = pool[step.alarm % len(pool)] if step.alarm >= 0 and pool else "nope/x/y"
            results = []
            devices = sorted({b.device for b in engine.plan.bindings})
            device = devices[step.alarm % len(devices)] if step.alarm >= 0 else "nope"
            for impl in (engine, ref):
                try:
                    if step.verb == "ack":
                        got = impl.ack(alarm_id, "op", now)
                    elif step.verb == "shelve":
                        got = impl.shelve(alarm_id, "op", step.minutes, now)
                    elif step.verb == "unshelve":
                        got = impl.unshelve(alarm_id, "op", now, "back on watch")
                    elif step.verb == "out_of_service":
                        got = impl.out_of_service(alarm_id, "op", step.reason, now)
                    elif step.verb == "return_to_service":
                        got = impl.return_to_service(alarm_id, "op", now, step.reason)
                    elif step.verb == "maintenance":
                        got = impl.start_maintenance(device, "op", step.minutes, "cal", now)
                    else:
                        got = impl.end_maintenance(device, "op", "done", now)
                    results.append(("ok", normalized(got)))
                except AlarmCommandError as exc:
                    results.append(("error", type(exc).__name__))
            assert results[0] == results[1], (step, alarm_id)
            continue
        now += step.dt
        for ch in step.changes:
            i = ch.point
            if ch.kind == "bad":
                quality[i] = 1
                continue
            if ch.kind == "stale":
                quality[i] = 2
                continue
            if ch.kind == "nan":
                values[i] = np.nan
            elif ch.kind == "delta":
                values[i] = (0.0 if np.isnan(values[i]) else values[i]) + ch.amount
            else:
                values[i] = ch.amount
            quality[i] = 0
            sample_ts[i] = now
        for d in step.offline_flips:
            online[d] = not online[d]
        got = engine.tick(now, values, quality, sample_ts, online)
        want = ref.tick(now, values.tolist(), quality.tolist(), sample_ts.tolist(), online.tolist())
        assert normalized(got) == normalized(want), f"tick at {now}"
        demanded = {a.area: a.power_off for a in engine.interlocks(now)}
        assert demanded == {a: ref.area_demanded(a) for a in engine.areas}, f"tick at {now}"
    assert normalized(engine.take_flood_events()) == normalized(ref.flood_events)
    assert normalized(engine.take_maintenance_events()) == normalized(ref.maintenance_events)
    assert normalized(engine.active_alarms()) == normalized(ref.active_alarms())
    shifts = [shift_records(s) for s in engine.take_shift_exposures()]
    assert [normalized(s) for s in shifts] == [normalized(s) for s in ref.exposure.closed]


def shift_records(shift: ShiftExposure) -> list[ShiftRecord]:
    """The engine's columnar shift record as the reference's per-channel records."""
    return [
        ShiftRecord(
            f"{shift.devices[c]}/{shift.points[c]}/{shift.rules[c]}",
            shift.start,
            shift.end,
            float(shift.twa[c]),
            float(shift.stel_max[c]),
            float(shift.peak[c]),
            int(shift.excursions[c]),
            float(shift.measured_s[c]),
        )
        for c in range(len(shift.devices))
    ]


@st.composite
def pack_site(draw: st.DrawFn) -> tuple[list[PointRef], list[RulePack]]:
    packs = ALL_PACKS
    points: list[PointRef] = []
    for d in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(tuple(PROFILE_POINTS)))
        tags: dict[str, str] = {}
        if kind == "gas":
            tags["position"] = draw(st.sampled_from(POSITIONS))
            tags["area"] = draw(st.sampled_from(("face-1", "face-2")))
            if draw(st.booleans()):
                tags["location"] = draw(st.sampled_from(("face", "chamber")))
        only = None
        if draw(st.integers(0, 3)) == 0:  # a device whose profile lacks some points
            names = [n for n, _ in PROFILE_POINTS[kind]]
            only = draw(st.sets(st.sampled_from(names), min_size=1))
        points.extend(device_points(f"dev{d}", d, kind, tags, only))
    return points, packs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_packs_engine_matches_reference(data: st.DataObject) -> None:
    points, packs = data.draw(pack_site())
    engine = RuleEngine(points, packs)
    steps = data.draw(steps_for(points, engine.n_devices))
    run_both(engine, steps, len(points))


# -- random rules ----------------------------------------------------------------------------

GENERIC_POINTS = tuple(f"p{i}" for i in range(5))
DELAYS = (0.0, 0.0, 0.5, 1.0, 2.5)


def g(k: int) -> float:
    return k * 0.5


@st.composite
def threshold_rule(draw: st.DrawFn, rid: str) -> dict[str, Any]:
    names = draw(st.sets(st.sampled_from(("LL", "L", "H", "HH")), min_size=1))
    marks = sorted(draw(st.lists(st.integers(-20, 20), min_size=4, max_size=4, unique=True)))
    levels: dict[str, Any] = {}
    for name, mark in zip(("LL", "L", "H", "HH"), marks, strict=True):
        if name in names:
            level: dict[str, Any] = {"limit": g(mark), "priority": draw(st.integers(1, 4))}
            level["source"] = "test"
            if draw(st.booleans()):
                back = g(draw(st.integers(0, 4)))
                level["reset"] = (
                    level["limit"] - back if name in ("H", "HH") else level["limit"] + back
                )
            levels[name] = level
    return {
        "id": rid,
        "type": "threshold",
        "title": rid,
        "kind": "x",
        "point": draw(st.sampled_from(GENERIC_POINTS)),
        **(
            {"magnitude_with": draw(st.sampled_from(GENERIC_POINTS))}
            if draw(st.integers(0, 3)) == 0
            else {}
        ),
        "deadband": g(draw(st.integers(0, 3))),
        "on_delay_s": draw(st.sampled_from(DELAYS)),
        "off_delay_s": draw(st.sampled_from(DELAYS)),
        "levels": levels,
    }


@st.composite
def trend_rule(draw: st.DrawFn, rid: str) -> dict[str, Any]:
    max_samples = draw(st.integers(2, 8))
    rule: dict[str, Any] = {
        "id": rid,
        "type": "rate_of_change",
        "title": rid,
        "kind": "x",
        "point": draw(st.sampled_from(GENERIC_POINTS)),
        "window_s": draw(st.sampled_from((2.0, 5.0, 10.0, 60.0, 600.0))),
        "min_samples": draw(st.integers(2, max_samples)),
        "max_samples": max_samples,
        "priority": 3,
        "source": "test",
        "on_delay_s": draw(st.sampled_from(DELAYS)),
        "off_delay_s": draw(st.sampled_from(DELAYS)),
    }
    if draw(st.integers(0, 3)) == 0:
        rule["conditions"] = draw(st.lists(predicate(), min_size=1, max_size=2))
    if draw(st.booleans()):
        rule["rise_per_min"] = draw(st.sampled_from((0.5, 6.0, 30.0, 60.0)))
    if draw(st.booleans()):
        rule["fall_per_min"] = draw(st.sampled_from((0.5, 6.0, 30.0, 60.0)))
    if draw(st.booleans()) or ("rise_per_min" not in rule and "fall_per_min" not in rule):
        rule["forecast"] = {
            "limit": g(draw(st.integers(-20, 20))),
            "direction": draw(st.sampled_from(("rising", "falling"))),
            "within_s": draw(st.sampled_from((1.0, 5.0, 60.0))),
        }
    return rule


@st.composite
def predicate(draw: st.DrawFn) -> dict[str, Any]:
    point = draw(st.sampled_from(GENERIC_POINTS))
    op = draw(
        st.sampled_from(
            ("eq", "ne", "gt", "ge", "lt", "le", "bit_set", "bit_clear", "in", "not_in")
        )
    )
    if op in ("bit_set", "bit_clear"):
        return {"point": point, "op": op, "bit": draw(st.integers(0, 4))}
    if op in ("in", "not_in"):
        values = draw(st.lists(st.integers(-6, 6).map(g), min_size=1, max_size=4))
        return {"point": point, "op": op, "values": values}
    magnitude = {"abs": True} if draw(st.integers(0, 3)) == 0 else {}
    if draw(st.integers(0, 3)) == 0:
        ref = draw(st.sampled_from(GENERIC_POINTS))
        return {
            "point": point,
            "op": op,
            "ref": ref,
            "factor": draw(st.sampled_from((0.5, 1.0, 2.0))),
            **magnitude,
        }
    return {"point": point, "op": op, "value": g(draw(st.integers(-8, 8))), **magnitude}


@st.composite
def condition_rule(draw: st.DrawFn, rid: str) -> dict[str, Any]:
    base = {"id": rid, "title": rid, "kind": "x", "level": "COND", "priority": 2, "source": "test"}
    base["off_delay_s"] = draw(st.sampled_from(DELAYS))
    if draw(st.booleans()):
        return {
            **base,
            "type": "discrete",
            "when": draw(predicate()),
            "on_delay_s": draw(st.sampled_from(DELAYS)),
        }
    return {
        **base,
        "type": "duration",
        "all": draw(st.lists(predicate(), min_size=1, max_size=3)),
        **(
            {"any": draw(st.lists(predicate(), min_size=1, max_size=3))}
            if draw(st.booleans())
            else {}
        ),
        "for_s": draw(st.sampled_from((0.0, 1.0, 3.0))),
    }


@st.composite
def random_pack(draw: st.DrawFn) -> RulePack:
    rules: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 8))):
        rid = f"r{i}"
        kind = draw(st.sampled_from(("threshold", "threshold", "trend", "stale", "condition")))
        if kind == "threshold":
            rules.append(draw(threshold_rule(rid)))
        elif kind == "trend":
            rules.append(draw(trend_rule(rid)))
        elif kind == "stale":
            rules.append(
                {
                    "id": rid,
                    "type": "stale",
                    "title": rid,
                    "kind": "x",
                    "point": draw(st.sampled_from((*GENERIC_POINTS, "*"))),
                    "max_age_s": draw(st.sampled_from((0.5, 1.0, 3.0, 10.0))),
                    "priority": 3,
                    "source": "test",
                }
            )
        else:
            rules.append(draw(condition_rule(rid)))
    if draw(st.booleans()):
        rules.append(
            {
                "id": "link",
                "type": "comm",
                "title": "link",
                "kind": "x",
                "priority": 2,
                "source": "test",
                "on_delay_s": draw(st.sampled_from(DELAYS)),
            }
        )
    try:
        return parse_pack({"pack": "random", "title": "random", "rules": rules}, "random.yaml")
    except RulesConfigError:
        assume(False)
        raise


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_random_rules_engine_matches_reference(data: st.DataObject) -> None:
    pack = data.draw(random_pack())
    n_devices = data.draw(st.integers(1, 3))
    points = [
        PointRef(f"x{d}", d, name, "x", {}, "u")
        for d in range(n_devices)
        for name in GENERIC_POINTS
    ]
    engine = RuleEngine(points, [pack])
    assume(engine.alarm_ids)
    steps = data.draw(steps_for(points, n_devices))
    run_both(engine, steps, len(points))


@pytest.mark.parametrize(
    "pack",
    [p for p in ALL_PACKS if p.pack != "occupational_exposure"],  # see test_exposure.py
    ids=lambda p: p.pack,
)
def test_every_pack_binds_to_its_profile(pack: RulePack) -> None:
    """Each rule of the shipped packs binds to at least one device of a fitting profile."""
    points: list[PointRef] = []
    index = 0
    for kind in PROFILE_POINTS:
        for position in pack.positions or (None,):
            for location in ("face", "chamber"):
                tags = {"location": location, "area": "face-1"}
                tags |= {"position": position} if position else {}
                points.extend(device_points(f"d{index}", index, kind, tags))
                index += 1
    engine = RuleEngine(points, [pack])
    bound = {b.rule_id for b in engine.plan.bindings}
    assert bound == {r.id for r in pack.rules}

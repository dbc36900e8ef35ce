"""Elevator pack: motion on |speed|, trapped inside or outside the landing zone, door faults."""

from __future__ import annotations

import pytest

from rules import State, load_packs
from tests.rules.harness import PACKS, Site, device_points

ELEVATOR = load_packs([PACKS / "elevator.yaml"])

#: Parked at floor 3 in the landing zone, doors open, nobody inside, power on.
IDLE = {
    "floor": 3,
    "direction": 0,
    "running": 0,
    "door_open": 1,
    "door_closed": 0,
    "leveling": 1,
    "occupied": 0,
    "speed": 0.0,
    "rated_speed": 1.75,
    "fault_code": 0,
    "safety_circuit": 1,
    "alarm_button": 0,
    "car_call": 0,
    "mains_power": 1,
    "inspection": 0,
    "door_opening": 0,
    "door_closing": 0,
    "overtravel_up": 0,
    "overtravel_down": 0,
}
#: Travelling between floors with the doors closed and locked.
TRAVEL = {"running": 1, "door_open": 0, "door_closed": 1, "leveling": 0}


def elevator() -> Site:
    site = Site(device_points("lift-a", 0, "elevator"), ELEVATOR)
    site.set("lift-a", **IDLE)
    assert site.tick() == []
    return site


def raised(out: list, rule: str) -> list[tuple[str, State]]:  # type: ignore[type-arg]
    return [(t.level, t.to_state) for t in out if t.rule == rule]


def test_trapped_between_floors_after_thirty_seconds() -> None:
    site = elevator()
    site.set("lift-a", floor=7, leveling=0, door_open=0, door_closed=1, occupied=1)
    assert site.tick() == []
    out = site.run(29)
    assert [t.level for t in out] == ["STOPPED_OUT_ZONE"]  # after its own 10 s
    (t,) = site.run(1)
    assert (t.id, t.level, t.priority) == ("lift-a/floor/elevator_trapped", "TRAPPED", 1)
    assert t.value == 7 and "near floor 7" in t.message
    site.set("lift-a", door_open=1, door_closed=0)  # rescued: the doors open
    assert raised(site.run(1), "elevator_trapped") == [("TRAPPED", State.RTN_UNACK)]


@pytest.mark.parametrize("who", ["occupied", "car_call", "alarm_button"])
def test_trapped_at_a_landing_whose_doors_will_not_open(who: str) -> None:
    site = elevator()
    # arrives at floor 3, inside the landing zone; the operator is told to open; nothing opens
    site.set("lift-a", door_open=0, door_closed=1, door_opening=1, **{who: 1})
    site.tick()
    out = site.run(30)
    assert raised(out, "elevator_door_wont_open") == [("DOOR_WONT_OPEN", State.UNACK_ACTIVE)]
    assert raised(out, "elevator_trapped") == [("TRAPPED", State.UNACK_ACTIVE)]
    assert raised(out, "elevator_stopped_outside_zone") == []
    first = {t.rule: t.ts for t in out}
    assert first["elevator_trapped"] - first["elevator_door_wont_open"] == 20


def test_an_empty_car_parked_with_its_doors_closed_is_not_trapped() -> None:
    site = elevator()
    site.set("lift-a", door_open=0, door_closed=1)
    assert site.run(600) == []


def test_a_technician_on_inspection_is_not_a_trapped_passenger() -> None:
    site = elevator()
    site.set("lift-a", door_open=0, door_closed=1, occupied=1, inspection=1, leveling=0)
    assert raised(site.run(120), "elevator_trapped") == []


@pytest.mark.parametrize("speed", [2.02, -2.02, -2.5])
def test_overspeed_in_either_direction(speed: float) -> None:
    site = elevator()
    site.set("lift-a", **TRAVEL, direction=1 if speed > 0 else 2, speed=speed)
    out = site.tick(1)
    assert [(t.rule, t.level, t.priority) for t in out] == [("elevator_overspeed", "OVERSPEED", 1)]
    assert out[0].value == speed


@pytest.mark.parametrize("speed", [2.0, -2.0, 1.75, -1.75])
def test_rated_speed_and_up_to_115_percent_is_not_overspeed(speed: float) -> None:
    site = elevator()
    site.set("lift-a", **TRAVEL, speed=speed)
    assert site.tick(1) == []


def test_moving_with_the_door_open_outside_the_zone_in_either_direction() -> None:
    for speed in (0.6, -0.6):
        site = elevator()
        site.set("lift-a", running=1, leveling=0, door_open=1, door_closed=0, speed=speed)
        assert site.tick() == []  # 1 s debounce
        (t,) = site.tick(1)
        assert (t.rule, t.level, t.value) == (
            "elevator_moving_door_open",
            "MOVING_DOOR_OPEN",
            speed,
        )


def test_a_fast_car_with_its_door_open_alarms_even_while_crossing_landing_zones() -> None:
    """At 2 m/s past 3 m floors the car is outside a landing zone for well under a second at a
    time: the outside-the-zone rule restarts at every floor. Faster than levelling speed
    (0.8 m/s, GB/T 7588.1 §5.12.1.4) with the door not closed is an alarm in any zone."""
    site = elevator()
    site.set("lift-a", running=1, door_open=1, door_closed=0, speed=-2.0, leveling=1)
    out = []
    for i in range(8):  # 0.25 s steps, zone flag alternating every half second
        site.set("lift-a", leveling=(i // 2) % 2)
        out += site.tick(0.25)
    assert raised(out, "elevator_moving_door_open") == []
    assert raised(out, "elevator_door_open_fast") == [("MOVING_DOOR_OPEN_FAST", State.UNACK_ACTIVE)]


def test_pre_opening_and_relevelling_inside_the_unlocking_zone_raise_nothing() -> None:
    site = elevator()
    site.set("lift-a", running=1, direction=2, leveling=1, door_open=0, door_closed=0, speed=-0.3)
    assert site.run(5) == []  # doors opening while the car levels in (GB/T 7588.1 §5.12.1.4)
    site.set("lift-a", door_open=1, speed=0.08)  # re-levelling with the doors open
    assert site.run(5) == []


def test_direction_arrow_lit_on_a_parked_car_is_not_motion() -> None:
    site = elevator()
    site.set("lift-a", direction=1, leveling=0, door_open=1, door_closed=0, speed=0.0)
    assert raised(site.run(5), "elevator_moving_door_open") == []


def test_alarm_button_power_loss_and_overshoot() -> None:
    site = elevator()
    site.set("lift-a", alarm_button=1, mains_power=0)
    assert site.tick() == []
    assert [(t.rule, t.level) for t in site.tick(1)] == [("elevator_alarm_button", "ALARM_BUTTON")]
    assert [(t.rule, t.level) for t in site.tick(1)] == [("elevator_power_loss", "POWER_LOSS")]
    site.set("lift-a", overtravel_up=1)
    assert [(t.rule, t.priority) for t in site.tick(1)] == [("elevator_overshoot_top", 1)]
    site.set("lift-a", overtravel_up=0, overtravel_down=1)
    got = {(t.rule, t.to_state) for t in site.tick(1)}
    assert got == {
        ("elevator_overshoot_top", State.RTN_UNACK),
        ("elevator_overshoot_bottom", State.UNACK_ACTIVE),
    }


def test_door_will_not_close() -> None:
    site = elevator()
    site.set("lift-a", door_open=0, door_closed=0, door_closing=1)
    site.tick()
    assert raised(site.run(14), "elevator_door_wont_close") == []
    assert raised(site.run(1), "elevator_door_wont_close") == [
        ("DOOR_WONT_CLOSE", State.UNACK_ACTIVE)
    ]

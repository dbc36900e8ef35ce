"""Elevator controller model (GB/T 24476 elevator IoT signals).

Each car runs a cycle: parked with doors closed, called to a random floor, accelerates to its
rated speed and decelerates onto the floor, opens its doors, dwells while passengers board or
leave, closes them, and parks again. The landing-zone (leveling) flag is set whenever the car is
within ``zone`` metres of a floor level, so it also blinks while passing floors. Each departure
counts a trip.

A trap (scenario ``elevator-trapped``) arms at ``trap_at``: the next journey stops between floors,
well outside the landing zone, with the doors closed, a passenger inside and the safety circuit
open, for ``trap_for`` seconds; then the car is released, creeps to the nearest floor and opens.

Parameters (per device): ``floors`` (count), ``base_floor`` (number of the lowest floor),
``floor_height`` m, ``rated_speed`` m/s, ``accel`` m/s², ``door_time`` s, ``dwell`` s,
``idle_mean`` s, ``zone`` m (half-width of the landing zone), ``p_occupied`` (chance a car
carries someone after a stop), ``trap_at`` s (inf: never), ``trap_for`` s, ``trips0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from simulators.signals import F64, Bools, SignalModel

__all__ = ["FAULT_CODES", "ElevatorModel"]

#: Industry event codes reported in ``fault_code`` (0: none).
FAULT_CODES: Mapping[str, int] = {
    "none": 0,
    "overspeed": 1,
    "door-open-while-running": 2,
    "moving-with-door-open": 3,
    "door-wont-close": 4,
    "trapped-passenger": 5,
    "stopped-outside-landing-zone": 6,
    "trapped-outside-landing-zone": 7,
    "overshoot-top": 8,
    "overshoot-bottom": 9,
    "power-loss": 10,
    "safety-circuit": 11,
}

# car states
PARKED, OPENING, OPEN, CLOSING, MOVING, TRAPPED = range(6)
_CREEP = 0.1  # m/s: the slowest the drive runs while levelling in


class ElevatorModel(SignalModel):
    """Position, motion, doors, landing zone, occupancy and trips of a fleet of elevator cars."""

    kind = "elevator"
    dt = 0.1
    uniforms = 3
    defaults: ClassVar[Mapping[str, float]] = {
        "floors": 12.0,
        "base_floor": 1.0,
        "floor_height": 3.0,
        "rated_speed": 1.75,
        "accel": 0.9,
        "door_time": 2.5,
        "dwell": 5.0,
        "idle_mean": 15.0,
        "zone": 0.1,
        "p_occupied": 0.6,
        "trap_at": math.inf,
        "trap_for": 600.0,
        "trips0": 0.0,
    }

    def randomize(self, i: int, rng: np.random.Generator) -> None:
        p = self.params
        p["floors"][i] = float(rng.integers(6, 31))
        p["rated_speed"][i] = float(rng.choice([1.0, 1.5, 1.75, 2.5]))
        p["floor_height"][i] = float(rng.choice([2.8, 3.0, 3.2]))
        p["trips0"][i] = float(rng.integers(1_000, 400_000))

    def start(self) -> None:
        p = self.params
        self.pos = np.zeros(self.n)
        self.vel = np.zeros(self.n)
        self.target = np.zeros(self.n)
        self.state = np.full(self.n, PARKED, dtype=np.int64)
        self.timer = np.full(self.n, 2.0)
        self.occupied = np.zeros(self.n, dtype=np.bool_)
        self.trips = p["trips0"].copy()
        self.trapped_done = np.zeros(self.n, dtype=np.bool_)

    def _depart(self, mask: Bools, target: F64) -> None:
        self.target = np.where(mask, target, self.target)
        self.state = np.where(mask, MOVING, self.state)
        self.trips = self.trips + mask

    def update(self, t: float, dt: float, z: F64, u: F64) -> None:
        p = self.params
        fh = p["floor_height"]
        top = (p["floors"] - 1) * fh
        self.timer = self.timer - dt
        due = self.timer <= 0
        armed = (t >= p["trap_at"]) & ~self.trapped_done

        # parked -> called to another floor (an armed trap forces a long journey)
        here = np.rint(self.pos / fh)
        pick = np.floor(u[:, 0] * (p["floors"] - 1))
        pick = np.where(pick >= here, pick + 1, pick)
        far = np.where(here < (p["floors"] - 1) / 2, p["floors"] - 1, 0.0)
        parked = self.state == PARKED
        go = parked & (due | armed)
        self.occupied = np.where(parked & armed, True, self.occupied)
        self._depart(go, np.where(armed, far, pick) * fh)

        # moving: trapezoidal profile onto the target floor
        moving = self.state == MOVING
        dist = self.target - self.pos
        speed = np.minimum(
            np.minimum(np.abs(self.vel) + p["accel"] * dt, p["rated_speed"]),
            np.maximum(np.sqrt(2 * p["accel"] * np.abs(dist)), _CREEP),
        )
        stride = speed * dt
        arrive = moving & (np.abs(dist) <= stride)
        self.pos = np.where(
            moving, np.where(arrive, self.target, self.pos + np.sign(dist) * stride), self.pos
        )
        self.pos = np.clip(self.pos, 0.0, top)
        self.vel = np.where(moving & ~arrive, np.sign(dist) * speed, 0.0)
        off_level = np.abs(self.pos - np.rint(self.pos / fh) * fh) > 0.4 * fh
        trap = moving & ~arrive & armed & off_level
        self.state = np.where(arrive, OPENING, self.state)
        self.timer = np.where(arrive, p["door_time"], self.timer)

        # doors
        door_due = due & ~arrive
        opened = (self.state == OPENING) & door_due
        self.occupied = np.where(opened, u[:, 1] < p["p_occupied"], self.occupied)
        closing = (self.state == OPEN) & door_due
        closed = (self.state == CLOSING) & door_due
        self.state = np.where(opened, OPEN, np.where(closing, CLOSING, self.state))
        self.state = np.where(closed, PARKED, self.state)
        idle = np.maximum(-p["idle_mean"] * np.log(np.maximum(u[:, 2], 1e-9)), 1.0)
        self.timer = np.where(
            opened,
            p["dwell"],
            np.where(closing, p["door_time"], np.where(closed, idle, self.timer)),
        )

        # trapped between floors, then released to the nearest floor
        self.state = np.where(trap, TRAPPED, self.state)
        self.vel = np.where(trap, 0.0, self.vel)
        self.occupied = np.where(trap, True, self.occupied)
        self.timer = np.where(trap, p["trap_for"], self.timer)
        self.trapped_done = self.trapped_done | trap
        release = (self.state == TRAPPED) & (self.timer <= 0) & ~trap
        self.target = np.where(release, np.rint(self.pos / fh) * fh, self.target)
        self.state = np.where(release, MOVING, self.state)

    def outputs(self) -> Mapping[str, F64 | Bools]:
        p = self.params
        fh = p["floor_height"]
        state = self.state
        trapped = state == TRAPPED
        level_error = np.abs(self.pos - np.rint(self.pos / fh) * fh)
        return {
            "floor": p["base_floor"] + np.rint(self.pos / fh),
            "direction": np.where(self.vel > 0, 1.0, np.where(self.vel < 0, 2.0, 0.0)),
            "running": (state == MOVING) & (self.vel != 0),
            "door_open": state == OPEN,
            "door_closed": (state == PARKED) | (state == MOVING) | trapped,
            "leveling": level_error <= p["zone"],
            "occupied": self.occupied,
            "safety_circuit": ~trapped,
            "speed": self.vel,
            "rated_speed": p["rated_speed"],
            "fault_code": np.where(trapped, float(FAULT_CODES["trapped-outside-landing-zone"]), 0),
            "trips": self.trips,
            "position_m": self.pos,
        }

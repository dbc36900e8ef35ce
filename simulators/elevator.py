"""Elevator controller model (GB/T 24476 elevator IoT signals).

Each car runs a cycle: parked with doors closed, called to a random floor, accelerates to its
rated speed and decelerates onto the floor, opens its doors, dwells while passengers board or
leave, closes them, and parks again. The landing-zone (leveling) flag is set whenever the car is
within ``zone`` metres of a floor level, so it also blinks while passing floors. Each departure
counts a trip.

A trap (scenario ``elevator-trapped``) arms at ``trap_at``: the next journey stops between floors,
well outside the landing zone, with the doors closed, a passenger inside and the safety circuit
open, for ``trap_for`` seconds; then the car is released, creeps to the nearest floor and opens.

A passenger left inside when the doors close registers a car call, and the car leaves within a
second. Faults a scenario arms (each once, at the first occasion at or after its time; inf: never):

- ``overspeed_at``: the next two journeys run end to end at ``overspeed_factor`` × rated speed
  (one up, one down: a slipping brake or a drive fault the governor must catch);
- ``landing_trap_at``: at the next arrival the doors will not open (operator commanded, doors
  stay shut) with a passenger inside, who presses the alarm button ``button_after`` s later;
  the doors open after ``trap_for`` s;
- ``door_stuck_at``: the next door closing sticks half-way for ``stuck_for`` s;
- ``power_loss_at``: mains power fails for ``power_for`` s; the car stops where it is;
- ``overshoot_at``: the next journey runs to a terminal landing (``overshoot_end`` +1 top, -1
  bottom, 0 the far one) and overtravels it by 0.4 m onto the final limit switch (safety
  circuit open) for ``overshoot_for`` s, then levels back in;
- ``door_open_move_at``: the next departure leaves with the doors open (unintended car movement).

Parameters (per device): ``floors`` (count), ``base_floor`` (number of the lowest floor),
``floor_height`` m, ``rated_speed`` m/s, ``accel`` m/s², ``door_time`` s, ``dwell`` s,
``idle_mean`` s, ``zone`` m (half-width of the landing zone), ``p_occupied`` (chance a car
carries someone after a stop), ``trap_at`` s (inf: never), ``trap_for`` s, ``trips0``, and the
fault times and durations above.
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
PARKED, OPENING, OPEN, CLOSING, MOVING, TRAPPED, JAMMED, STUCK, OVERRUN = range(9)
_CREEP = 0.1  # m/s: the slowest the drive runs while levelling in
_OVERTRAVEL = 0.4  # m beyond a terminal landing where an overshooting car hits the final limit


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
        "overspeed_at": math.inf,
        "overspeed_factor": 1.25,
        "landing_trap_at": math.inf,
        "button_after": 20.0,
        "door_stuck_at": math.inf,
        "stuck_for": 60.0,
        "power_loss_at": math.inf,
        "power_for": 60.0,
        "overshoot_at": math.inf,
        "overshoot_for": 20.0,
        "overshoot_end": 0.0,
        "door_open_move_at": math.inf,
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
        self.overspeed_left = np.zeros(self.n)
        self.jammed_since = np.full(self.n, math.inf)
        self.overshooting = np.zeros(self.n, dtype=np.bool_)
        self.door_left_open = np.zeros(self.n, dtype=np.bool_)
        self.power_off = np.zeros(self.n, dtype=np.bool_)
        self._t = 0.0
        self._done = {
            name: np.zeros(self.n, dtype=np.bool_)
            for name in ("overspeed", "landing_trap", "door_stuck", "overshoot", "door_open_move")
        }

    def _arm(self, name: str, t: float, occasion: Bools) -> Bools:
        """Devices whose fault ``name`` is due and meets its occasion now (then it is spent)."""
        fire = occasion & (t >= self.params[f"{name}_at"]) & ~self._done[name]
        self._done[name] |= fire
        return fire

    def _depart(self, mask: Bools, target: F64) -> None:
        self.target = np.where(mask, target, self.target)
        self.state = np.where(mask, MOVING, self.state)
        self.trips = self.trips + mask

    def update(self, t: float, dt: float, z: F64, u: F64) -> None:
        p = self.params
        self._t = t
        # a power failure freezes every car where it stands until the power is back
        self.power_off = (t >= p["power_loss_at"]) & (t < p["power_loss_at"] + p["power_for"])
        frozen = self.power_off
        before = (self.pos, self.target, self.state, self.timer, self.occupied, self.trips)
        self._step(t, dt, u)
        pos, target, state, timer, occupied, trips = before
        self.pos = np.where(frozen, pos, self.pos)
        self.target = np.where(frozen, target, self.target)
        self.state = np.where(frozen, state, self.state)
        self.timer = np.where(frozen, timer, self.timer)
        self.occupied = np.where(frozen, occupied, self.occupied)
        self.trips = np.where(frozen, trips, self.trips)
        self.vel = np.where(frozen, 0.0, self.vel)

    def _step(self, t: float, dt: float, u: F64) -> None:
        p = self.params
        fh = p["floor_height"]
        top = (p["floors"] - 1) * fh
        self.timer = self.timer - dt
        due = self.timer <= 0
        armed = (t >= p["trap_at"]) & ~self.trapped_done

        # parked -> called to another floor (an armed trap, an overspeed or an overshoot forces
        # a journey to the far end of the shaft)
        here = np.rint(self.pos / fh)
        pick = np.floor(u[:, 0] * (p["floors"] - 1))
        pick = np.where(pick >= here, pick + 1, pick)
        far = np.where(here < (p["floors"] - 1) / 2, p["floors"] - 1, 0.0)
        parked = self.state == PARKED
        go = parked & (due | armed)
        self.overspeed_left = np.where(self._arm("overspeed", t, go), 2.0, self.overspeed_left)
        overshoot = self._arm("overshoot", t, go & (self.overspeed_left == 0))
        self.overshooting |= overshoot
        self.door_left_open |= self._arm("door_open_move", t, go & ~overshoot)
        self.occupied = np.where(parked & armed, True, self.occupied)
        to_far = armed | (self.overspeed_left > 0) | overshoot
        end = p["overshoot_end"]
        terminal = np.where(end > 0, p["floors"] - 1, np.where(end < 0, 0.0, far))
        target = np.where(overshoot, terminal, np.where(to_far, far, pick)) * fh
        beyond = np.where(terminal > 0, _OVERTRAVEL, -_OVERTRAVEL)
        self._depart(go, np.where(overshoot, target + beyond, target))

        # moving: trapezoidal profile onto the target floor
        moving = self.state == MOVING
        dist = self.target - self.pos
        cap = p["rated_speed"] * np.where(self.overspeed_left > 0, p["overspeed_factor"], 1.0)
        speed = np.minimum(
            np.minimum(np.abs(self.vel) + p["accel"] * dt, cap),
            np.maximum(np.sqrt(2 * p["accel"] * np.abs(dist)), _CREEP),
        )
        stride = speed * dt
        arrive = moving & (np.abs(dist) <= stride)
        self.pos = np.where(
            moving, np.where(arrive, self.target, self.pos + np.sign(dist) * stride), self.pos
        )
        self.pos = np.clip(self.pos, -_OVERTRAVEL, top + _OVERTRAVEL)
        self.vel = np.where(moving & ~arrive, np.sign(dist) * speed, 0.0)
        off_level = np.abs(self.pos - np.rint(self.pos / fh) * fh) > 0.4 * fh
        trap = moving & ~arrive & armed & off_level
        self.overspeed_left = np.where(
            arrive, np.maximum(self.overspeed_left - 1, 0), self.overspeed_left
        )
        self.door_left_open &= ~arrive
        overrun = arrive & self.overshooting
        self.overshooting &= ~arrive
        jam = self._arm("landing_trap", t, arrive & ~overrun)
        self.state = np.where(
            arrive, np.where(overrun, OVERRUN, np.where(jam, JAMMED, OPENING)), self.state
        )
        self.timer = np.where(
            arrive,
            np.where(overrun, p["overshoot_for"], np.where(jam, p["trap_for"], p["door_time"])),
            self.timer,
        )
        self.occupied |= jam
        self.jammed_since = np.where(jam, t, self.jammed_since)

        # doors (a jammed door finally opens; a stuck door finally closes)
        door_due = due & ~arrive
        unjam = (self.state == JAMMED) & door_due
        self.state = np.where(unjam, OPENING, self.state)
        self.jammed_since = np.where(unjam, math.inf, self.jammed_since)
        unstick = (self.state == STUCK) & door_due
        self.state = np.where(unstick, CLOSING, self.state)
        self.timer = np.where(unjam | unstick, p["door_time"], self.timer)
        door_due &= ~(unjam | unstick)
        opened = (self.state == OPENING) & door_due
        self.occupied = np.where(opened, u[:, 1] < p["p_occupied"], self.occupied)
        closing = (self.state == OPEN) & door_due
        stuck = self._arm("door_stuck", t, closing)
        self.occupied &= ~stuck  # the passengers step out past the stuck door
        closed = (self.state == CLOSING) & door_due
        self.state = np.where(
            opened, OPEN, np.where(closing, np.where(stuck, STUCK, CLOSING), self.state)
        )
        self.state = np.where(closed, PARKED, self.state)
        # someone left inside chooses a floor: the car leaves within a second
        idle = np.where(
            self.occupied, 1.0, np.maximum(-p["idle_mean"] * np.log(np.maximum(u[:, 2], 1e-9)), 1.0)
        )
        self.timer = np.where(
            opened,
            p["dwell"],
            np.where(
                closing,
                np.where(stuck, p["stuck_for"], p["door_time"]),
                np.where(closed, idle, self.timer),
            ),
        )

        # an overtravelled car levels back into the terminal landing
        back = (self.state == OVERRUN) & due & ~arrive
        self.target = np.where(back, np.clip(np.rint(self.pos / fh) * fh, 0.0, top), self.target)
        self.state = np.where(back, MOVING, self.state)

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
        top = (p["floors"] - 1) * fh
        state = self.state
        trapped = state == TRAPPED
        overrun = state == OVERRUN
        moving = state == MOVING
        doors_shut = (state == PARKED) | moving | trapped | (state == JAMMED) | overrun
        left_open = moving & self.door_left_open
        level_error = np.abs(self.pos - np.rint(self.pos / fh) * fh)
        code = np.where(trapped, float(FAULT_CODES["trapped-outside-landing-zone"]), 0.0)
        code = np.where(overrun & (self.pos > top), float(FAULT_CODES["overshoot-top"]), code)
        code = np.where(overrun & (self.pos < 0), float(FAULT_CODES["overshoot-bottom"]), code)
        code = np.where(self.power_off, float(FAULT_CODES["power-loss"]), code)
        return {
            "floor": p["base_floor"] + np.clip(np.rint(self.pos / fh), 0, p["floors"] - 1),
            "direction": np.where(self.vel > 0, 1.0, np.where(self.vel < 0, 2.0, 0.0)),
            "running": moving & (self.vel != 0),
            "door_open": (state == OPEN) | left_open,
            "door_closed": doors_shut & ~left_open,
            "leveling": level_error <= p["zone"],
            "occupied": self.occupied,
            "safety_circuit": ~(trapped | overrun),
            "alarm_button": self._t - self.jammed_since >= p["button_after"],
            "car_call": self.occupied & ((state == PARKED) | moving),
            "mains_power": ~self.power_off,
            "inspection": np.zeros(self.n, dtype=np.bool_),
            "door_opening": (state == OPENING) | (state == JAMMED),
            "door_closing": (state == CLOSING) | (state == STUCK),
            "overtravel_up": overrun & (self.pos > top),
            "overtravel_down": overrun & (self.pos < 0),
            "speed": self.vel,
            "rated_speed": p["rated_speed"],
            "fault_code": code,
            "trips": self.trips,
            "position_m": self.pos,
        }

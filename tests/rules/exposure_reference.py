"""Scalar reference of the exposure rules: one channel at a time, buckets in dictionaries.

Written from the rules as docs/rules.md states them, not from the engine's arrays: each channel
keeps its dose per bucket index (1-min and 5-min buckets) and sums the buckets inside the window
afresh on every tick. Only the constants and the shift calendar are shared with the engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rules._binding import Binding
from rules._exposure import (
    EXCURSION_CEILING_FACTOR,
    EXCURSION_FACTOR,
    EXCURSION_GAP_S,
    EXCURSION_MAX_S,
    EXCURSIONS_PER_SHIFT,
    MAX_HOLD_S,
    STEL_BUCKET_S,
    STEL_S,
    STEL_SLOTS,
    TWA_BUCKET_S,
    TWA_S,
    TWA_SLOTS,
    Check,
    ExposureSpec,
    ShiftSchedule,
)


@dataclass
class ShiftRecord:
    """One channel's exposure over one closed shift."""

    key: str
    start: float
    end: float
    twa: float
    stel_max: float
    peak: float
    excursions: int
    measured_s: float


@dataclass
class Ring:
    """Dose per bucket index; ``current`` is the newest bucket seen (time never moves it back)."""

    width: float
    slots: int
    dose: dict[int, float] = field(default_factory=dict)
    current: int | None = None

    def move_to(self, now: float) -> None:
        k = math.floor(now / self.width)
        if self.current is None or k > self.current:
            self.current = k
        oldest = self.current - self.slots + 1
        for old in [b for b in self.dose if b < oldest]:
            del self.dose[old]

    def add(self, conc: float, now: float, dt: float) -> None:
        """The reading ``conc`` over ``(now - dt, now]``, split at the current bucket's start."""
        assert self.current is not None
        before = min(max(self.current * self.width - (now - dt), 0.0), dt)
        if before > 0.0:
            self.dose[self.current - 1] = self.dose.get(self.current - 1, 0.0) + conc * before
        self.dose[self.current] = self.dose.get(self.current, 0.0) + conc * (dt - before)

    def window(self, now: float) -> float:
        """Dose in the window ending at ``now``: all buckets kept, less the part of the oldest
        one that has already left the window."""
        assert self.current is not None
        total = 0.0
        for b in range(self.current - self.slots + 1, self.current + 1):
            total += self.dose.get(b, 0.0)
        elapsed = min(max((now - self.current * self.width) / self.width, 0.0), 1.0)
        return total - self.dose.get(self.current - self.slots + 1, 0.0) * elapsed


@dataclass
class Channel:
    """One exposure rule on one point."""

    key: str
    spec: ExposureSpec
    stel_ring: Ring = field(default_factory=lambda: Ring(STEL_BUCKET_S, STEL_SLOTS))
    twa_ring: Ring = field(default_factory=lambda: Ring(TWA_BUCKET_S, TWA_SLOTS))
    shift_dose: float = 0.0
    measured: float = 0.0
    stel_max: float = math.nan
    peak: float = math.nan
    excursions: int = 0
    in_excursion: bool = False
    excursion_start: float = 0.0
    last_excursion_end: float = -math.inf
    excursion_breaks_rule: bool = False
    # this tick
    good: bool = False
    reading: float = math.nan
    twa: float = 0.0
    stel: float = 0.0
    projected: float = 0.0
    eta: float = math.nan
    hit: dict[int, bool] = field(default_factory=dict)


class ScalarExposure:
    """Every exposure channel of a binding plan, ticked one by one."""

    def __init__(self, bindings: Sequence[Binding], shifts: ShiftSchedule | None = None) -> None:
        self.shifts = shifts or ShiftSchedule()
        self.channels: dict[tuple[str, int], Channel] = {}
        self.device_of: dict[tuple[str, int], int] = {}
        for b in bindings:
            spec = b.spec
            if isinstance(spec, ExposureSpec):
                key = (spec.rule_id, spec.point_index)
                if key not in self.channels:
                    self.channels[key] = Channel(f"{b.device}/{b.point}/{spec.rule_id}", spec)
                    self.device_of[key] = b.device_index
        self.last_now: float | None = None
        self.shift: tuple[float, float] | None = None
        self.closed: list[list[ShiftRecord]] = []

    def channel(self, spec: ExposureSpec) -> Channel:
        return self.channels[(spec.rule_id, spec.point_index)]

    def tick(
        self,
        now: float,
        values: Sequence[float],
        quality: Sequence[int],
        maintenance: Sequence[bool] = (),
    ) -> None:
        """``maintenance`` per device: a device in maintenance (calibration) adds no dose."""
        if not self.channels:
            return
        if self.last_now is None:
            dt = 0.0
            self.last_now = now
        else:
            dt = min(max(now - self.last_now, 0.0), MAX_HOLD_S)
            self.last_now = max(self.last_now, now)
        closing = self.shift is not None and now >= self.shift[1]
        for key, ch in self.channels.items():
            self.read(ch, values, quality)
            if maintenance and maintenance[self.device_of[key]]:
                ch.good = False
        in_old_shift = 0.0
        if self.shift is None:
            self.shift = self.shifts.bounds(now)
        elif closing:
            in_old_shift = min(max(self.shift[1] - (now - dt), 0.0), dt)
            for ch in self.channels.values():
                if ch.good:
                    ch.shift_dose += max(ch.reading, 0.0) * in_old_shift
                    ch.measured += in_old_shift
            self.close_shift(now)
        for ch in self.channels.values():
            self.tick_channel(ch, now, dt, dt - in_old_shift)

    @staticmethod
    def read(ch: Channel, values: Sequence[float], quality: Sequence[int]) -> None:
        v = values[ch.spec.point_index]
        ch.reading = v
        ch.good = quality[ch.spec.point_index] == 0 and not math.isnan(v)

    def close_shift(self, now: float) -> None:
        assert self.shift is not None
        start, end = self.shift
        self.closed.append(
            [
                ShiftRecord(
                    ch.key,
                    start,
                    end,
                    ch.shift_dose / TWA_S,
                    ch.stel_max,
                    ch.peak,
                    ch.excursions,
                    ch.measured,
                )
                for ch in self.channels.values()
            ]
        )
        self.shift = self.shifts.bounds(now)
        for ch in self.channels.values():
            ch.shift_dose = 0.0
            ch.measured = 0.0
            ch.stel_max = math.nan
            ch.peak = math.nan
            ch.excursions = 1 if ch.in_excursion else 0

    def tick_channel(self, ch: Channel, now: float, dt: float, in_shift: float) -> None:
        assert self.shift is not None
        spec = ch.spec
        v, good = ch.reading, ch.good
        ch.stel_ring.move_to(now)
        ch.twa_ring.move_to(now)
        conc = max(v, 0.0) if good else 0.0
        ch.stel_ring.add(conc, now, dt)
        ch.twa_ring.add(conc, now, dt)
        ch.shift_dose += conc * in_shift
        if good:
            ch.measured += in_shift
        ch.stel = ch.stel_ring.window(now) / STEL_S
        ch.twa = max(ch.twa_ring.window(now), ch.shift_dose) / TWA_S
        remaining = max(self.shift[1] - now, 0.0)
        ch.projected = (ch.shift_dose + ch.stel * remaining) / TWA_S
        if not math.isnan(spec.pc_twa):  # a ceiling (MAC) substance has no 15-min figure
            ch.stel_max = ch.stel if math.isnan(ch.stel_max) else max(ch.stel_max, ch.stel)
        if good:
            ch.peak = v if math.isnan(ch.peak) else max(ch.peak, v)
        # excursions above 3 × PC-TWA, for substances with the excursion limits (no PC-STEL)
        if good and not math.isnan(spec.pc_twa) and math.isnan(spec.pc_stel):
            above = v >= EXCURSION_FACTOR * spec.pc_twa
            if above and not ch.in_excursion:
                ch.in_excursion = True
                ch.excursion_start = now
                ch.excursions += 1
                too_many = ch.excursions > EXCURSIONS_PER_SHIFT
                too_soon = now - ch.last_excursion_end < EXCURSION_GAP_S
                ch.excursion_breaks_rule = too_many or too_soon
            elif not above and ch.in_excursion:
                ch.in_excursion = False
                ch.last_excursion_end = now
        need = spec.pc_twa * TWA_S - ch.shift_dose
        ch.eta = need / ch.stel if ch.stel > 0 and need > 0 else math.nan
        twa_hit = ch.twa >= spec.pc_twa
        too_long = ch.in_excursion and now - ch.excursion_start >= EXCURSION_MAX_S
        ch.hit = {
            Check.TWA: twa_hit,
            Check.TWA_FORECAST: ch.projected >= spec.pc_twa and not twa_hit,
            Check.STEL: ch.stel >= spec.pc_stel,
            Check.EXCURSION: (good and v >= EXCURSION_CEILING_FACTOR * spec.pc_twa)
            or (ch.in_excursion and ch.excursion_breaks_rule)
            or too_long,
            Check.MAC: v >= spec.mac,
        }

    def row(self, spec: ExposureSpec) -> tuple[bool | None, float, float]:
        """(hit or None to hold the level, shown value, forecast seconds) of one alarm row."""
        ch = self.channel(spec)
        check = Check(spec.check)
        shown = {
            Check.TWA: ch.twa,
            Check.TWA_FORECAST: ch.projected,
            Check.STEL: ch.stel,
            Check.EXCURSION: ch.reading,
            Check.MAC: ch.reading,
        }[check]
        eta = ch.eta if check == Check.TWA_FORECAST else math.nan
        if check in (Check.EXCURSION, Check.MAC) and not ch.good:
            return None, shown, eta
        return ch.hit[check], shown, eta

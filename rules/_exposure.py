"""Occupational exposure (GBZ 2.1-2019): rolling 8-h TWA, 15-min STEL, MAC, excursions, shifts.

An ``exposure`` rule bound to a point is one *channel*. It makes one alarm row per check that
applies to its substance (rule id ``{rule}_{check}``):

=================  =====================================================  ==================
check (level)      raised when                                            value shown
=================  =====================================================  ==================
``TWA``            8-h TWA ≥ PC-TWA                                       the 8-h TWA
``TWA_FORECAST``   the shift's TWA will reach PC-TWA before the shift     shift TWA projected
                   ends at the last 15 min's mean (and TWA not yet)       to the shift's end
``STEL``           15-min TWA ≥ PC-STEL                                   the 15-min TWA
``EXCURSION``      (PC-TWA and no PC-STEL) reading ≥ 5 × PC-TWA; or an    the reading
                   excursion (reading ≥ 3 × PC-TWA) lasting 15 min, the
                   5th of a shift, or starting < 1 h after the last ended
``MAC``            reading ≥ MAC                                          the reading
=================  =====================================================  ==================

How the dose is measured (the scalar reference in the tests states the same, per channel):

* each tick, a channel whose point is good adds ``max(reading, 0) × dt``, where ``dt`` is the
  time since the previous tick, at most :data:`MAX_HOLD_S` (a longer gap counts as unmeasured):
  the reading stands for the interval ``(now - dt, now]``. The part of that interval before a
  bucket boundary (or the end of a shift) is counted in the earlier bucket (or shift);
* the STEL ring holds 1-min buckets, the TWA ring 5-min buckets, each one bucket longer than
  its window, the current (partial) bucket included. The window sum is the sum of the ring less
  the share of the oldest bucket that has already left the window (its dose is taken as spread
  evenly over its bucket): the 15-min TWA is that sum / 900 s over exactly the last 15 min, the
  8-h TWA that sum / 28 800 s over the last 8 h;
* the shift's dose is summed from the shift's start; its TWA is dose / 8 h whatever the shift's
  length (GBZ 2.1-2019: the 8-h TWA of a longer working day is its total dose over 8 h). The
  ``TWA`` check uses the larger of the rolling and the shift figure.

Everything per channel is an array; a tick is a fixed sequence of numpy operations (running sums
over ring buffers), plus a Python loop over at most 97 buckets when buckets are due to be
cleared (once a minute) and a shift close (a few times a day). State survives a restart through
:meth:`ExposureBlock.snapshot` / :meth:`ExposureBlock.restore` (see :func:`save_state`).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from fieldmodel.quality import GOOD

from ._arrays import ACTIVE, F64, I8, U8, BoolArray, IdxArray

if TYPE_CHECKING:
    from ._binding import Binding

__all__ = [
    "CHECK_LEVELS",
    "CHECK_SUFFIXES",
    "DEFAULT_SHIFT_STARTS",
    "EXCURSIONS_PER_SHIFT",
    "EXCURSION_CEILING_FACTOR",
    "EXCURSION_FACTOR",
    "EXCURSION_GAP_S",
    "EXCURSION_MAX_S",
    "MAX_HOLD_S",
    "MOLAR_VOLUME_20C",
    "STEL_BUCKET_S",
    "STEL_S",
    "STEL_SLOTS",
    "TWA_BUCKET_S",
    "TWA_S",
    "TWA_SLOTS",
    "Check",
    "ExposureBlock",
    "ExposureSpec",
    "ShiftExposure",
    "ShiftSchedule",
    "elapsed_share",
    "limit_in_unit",
    "load_state",
    "mg_m3_to_ppm",
    "save_state",
]

#: Molar volume of an ideal gas at 20 °C and 101.3 kPa, L/mol: ppm = mg/m³ × 24.04 / M (GBZ 159
#: reference conditions, as GBZ 2.1-2019 states its limits).
MOLAR_VOLUME_20C: Final = 24.04
#: Units a point may have for an exposure rule: ppm (converted) or mg/m³ (as the standard).
PPM_UNITS: Final = frozenset({"ppm"})
MG_UNITS: Final = frozenset({"mg/m3", "mg/m³"})

TWA_S: Final = 8 * 3600.0
STEL_S: Final = 15 * 60.0
STEL_BUCKET_S: Final = 60.0
STEL_SLOTS: Final = 16  # 15 whole minutes + the current one
TWA_BUCKET_S: Final = 300.0
TWA_SLOTS: Final = 97  # 96 whole 5-min buckets (8 h) + the current one
#: Longest time one reading stands for; a longer gap between ticks counts as unmeasured.
MAX_HOLD_S: Final = 60.0
#: Excursion limits for a substance with a PC-TWA and no PC-STEL (GBZ 2.1-2019, 峰接触浓度):
#: above 3 × PC-TWA at most 15 min at a time, at most 4 times a shift, ≥ 1 h apart, and never
#: above 5 × PC-TWA.
EXCURSION_FACTOR: Final = 3.0
EXCURSION_CEILING_FACTOR: Final = 5.0
EXCURSION_MAX_S: Final = 15 * 60.0
EXCURSIONS_PER_SHIFT: Final = 4
EXCURSION_GAP_S: Final = 3600.0
#: Three 8-hour shifts from midnight, local time, when the site names none.
DEFAULT_SHIFT_STARTS: Final = ("00:00", "08:00", "16:00")
#: Version of the state file layout (with the ring geometry, checked on restore).
STATE_FORMAT: Final = 1


class Check(IntEnum):
    """The checks of an exposure channel; each is one alarm row."""

    TWA = 0
    TWA_FORECAST = 1
    STEL = 2
    EXCURSION = 3
    MAC = 4


CHECK_LEVELS: Final = tuple(c.name for c in Check)
CHECK_SUFFIXES: Final = tuple(c.name.lower() for c in Check)


#: The finest step a converted ppm limit is rounded down to.
PPM_STEP: Final = 0.01


def _floor_to_step(exact: Fraction, step: float) -> float:
    """``exact`` rounded *down* onto the grid of ``step`` (> 0), never above ``exact``."""
    grid = Fraction(str(step))
    value = float(math.floor(exact / grid) * grid)
    while Fraction(value) > exact:  # the nearest double of a decimal may sit a hair above it
        value = math.nextafter(value, 0.0)
    return value


def mg_m3_to_ppm(mg_m3: float, molar_mass: float, step: float = PPM_STEP) -> float:
    """A limit in mg/m³ as ppm at 20 °C, rounded *down* to ``step`` ppm (never above the limit):
    0.01 ppm, or a reading's coarser resolution."""
    exact = Fraction(mg_m3) * Fraction(str(MOLAR_VOLUME_20C)) / Fraction(molar_mass)
    return _floor_to_step(exact, max(step, PPM_STEP))


def limit_in_unit(
    mg_m3: float, molar_mass: float, unit: str, resolution: float = 0.0
) -> float | None:
    """A limit in mg/m³ in the point's ``unit`` (ppm or mg/m³), rounded down onto the reading's
    ``resolution`` (0: continuous) so the first reading at or above it is never above the
    standard's limit; None for any other unit."""
    if unit in PPM_UNITS:
        return mg_m3_to_ppm(mg_m3, molar_mass, resolution)
    if unit in MG_UNITS:
        return _floor_to_step(Fraction(mg_m3), resolution) if resolution > 0 else float(mg_m3)
    return None


@dataclass(frozen=True, slots=True)
class ExposureSpec:
    """One alarm row of an exposure channel. Limits are in the point's unit (NaN: none)."""

    point_index: int
    #: The pack rule's id (a channel is one rule on one point).
    rule_id: str
    substance: str
    check: int
    pc_twa: float
    pc_stel: float
    mac: float

    def limit(self) -> float:
        """The limit this row compares with."""
        if self.check in (Check.TWA, Check.TWA_FORECAST):
            return self.pc_twa
        if self.check == Check.STEL:
            return self.pc_stel
        if self.check == Check.EXCURSION:
            return EXCURSION_FACTOR * self.pc_twa
        return self.mac


def exposure_checks(pc_twa: float | None, pc_stel: float | None, mac: float | None) -> list[Check]:
    """The checks a substance with these limits gets."""
    checks: list[Check] = []
    if pc_twa is not None:
        checks += [Check.TWA, Check.TWA_FORECAST]
        checks.append(Check.STEL if pc_stel is not None else Check.EXCURSION)
    if mac is not None:
        checks.append(Check.MAC)
    return checks


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class ShiftSchedule:
    """Shift start times (local ``HH:MM``, every day) in an IANA time zone.

    Raises ValueError naming the bad start time or zone.
    """

    starts: tuple[str, ...] = DEFAULT_SHIFT_STARTS
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if not self.starts:
            raise ValueError("at least one shift start time (HH:MM)")
        for text in self.starts:
            if not isinstance(text, str) or not _HHMM.match(text):
                raise ValueError(f"shift start {text!r}: a local time HH:MM (00:00 to 23:59)")
        if len(set(self.starts)) != len(self.starts):
            raise ValueError(f"shift starts {list(self.starts)}: each time once")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time zone {self.timezone!r}: an IANA time zone name such as Asia/Shanghai"
            ) from None

    def bounds(self, now: float) -> tuple[float, float]:
        """Start and end (epoch seconds) of the shift that contains ``now``."""
        tz = ZoneInfo(self.timezone)
        day = datetime.fromtimestamp(now, tz).date()
        times: list[float] = []
        for offset in (-1, 0, 1):
            d = day + timedelta(days=offset)
            for text in self.starts:
                hh, mm = int(text[:2]), int(text[3:])
                times.append(datetime(d.year, d.month, d.day, hh, mm, tzinfo=tz).timestamp())
        times.sort()
        start = max(t for t in times if t <= now)
        end = min(t for t in times if t > now)
        return start, end


@dataclass(frozen=True, slots=True)
class ShiftExposure:
    """Exposure of every channel over one closed shift (arrays in channel order).

    ``twa`` is the shift's dose / 8 h, ``stel_max`` the highest 15-min TWA seen, ``peak`` the
    highest reading (NaN: none), ``excursions`` the excursions above 3 × PC-TWA begun in the
    shift, ``measured_s`` the seconds with good readings. Limits are in each point's unit.
    """

    start: float
    end: float
    devices: tuple[str, ...]
    points: tuple[str, ...]
    rules: tuple[str, ...]
    substances: tuple[str, ...]
    pc_twa: F64
    pc_stel: F64
    mac: F64
    twa: F64
    stel_max: F64
    peak: F64
    excursions: npt.NDArray[np.int64]
    measured_s: F64


class ExposureBlock:
    """Exposure rows; channels (rule × point) with ring buffers of dose per bucket."""

    def __init__(self, bindings: Sequence[Binding], shifts: ShiftSchedule | None = None) -> None:
        self.size = len(bindings)
        self.shifts = shifts or ShiftSchedule()
        keys: dict[tuple[str, int], int] = {}
        specs: list[ExposureSpec] = []
        first: list[Binding] = []
        row_channel: list[int] = []
        row_check: list[int] = []
        for b in bindings:
            spec = b.spec
            assert isinstance(spec, ExposureSpec)
            key = (spec.rule_id, spec.point_index)
            if key not in keys:
                keys[key] = len(keys)
                first.append(b)
                specs.append(spec)
            row_channel.append(keys[key])
            row_check.append(spec.check)
        n = self.n_channels = len(keys)
        self.devices = tuple(b.device for b in first)
        self.points = tuple(b.point for b in first)
        self.rules = tuple(s.rule_id for s in specs)
        self.substances = tuple(s.substance for s in specs)
        #: Channel keys ``device/point/rule`` (what the state file is keyed by).
        self.keys = tuple(
            f"{b.device}/{b.point}/{s.rule_id}" for b, s in zip(first, specs, strict=True)
        )
        self.point_index: IdxArray = np.array([s.point_index for s in specs], dtype=np.intp)
        self.device_index: IdxArray = np.array([b.device_index for b in first], dtype=np.intp)
        self._twa = np.array([s.pc_twa for s in specs], dtype=np.float64)
        self._stel = np.array([s.pc_stel for s in specs], dtype=np.float64)
        self._mac = np.array([s.mac for s in specs], dtype=np.float64)
        row_channel_arr = np.array(row_channel, dtype=np.intp)
        row_check_arr = np.array(row_check, dtype=np.intp)
        #: Per check present: its rows and their channels, as slices where contiguous (binding
        #: orders rows by check, then point, so they usually are).
        self._groups: list[tuple[Check, slice | IdxArray, slice | IdxArray]] = []
        for check in Check:
            rows = np.flatnonzero(row_check_arr == check)
            if rows.size:
                chans = row_channel_arr[rows]
                self._groups.append((check, _as_slice(rows), _as_slice(chans)))
        self._excursion_limit = EXCURSION_FACTOR * self._twa
        self._ceiling = EXCURSION_CEILING_FACTOR * self._twa
        self._twa_dose_limit = self._twa * TWA_S
        # time
        self._last_now: float | None = None
        self._stel_k = -1
        self._twa_k = -1
        self._shift: tuple[float, float] | None = None
        # dose
        # dose rings: only channels with a PC-TWA need them; rows by check put those first
        n_twa = self._n_twa = int(np.isfinite(self._twa).sum())
        assert np.isfinite(self._twa[:n_twa]).all(), "channels with a PC-TWA come first"
        self._stel_ring: F64 = np.zeros((STEL_SLOTS, n_twa))
        self._twa_ring: F64 = np.zeros((TWA_SLOTS, n_twa))
        self._sum_stel: F64 = np.zeros(n_twa)
        self._sum_twa: F64 = np.zeros(n_twa)
        # the shift
        self._shift_dose: F64 = np.zeros(n)
        self._measured: F64 = np.zeros(n)
        self._stel_max: F64 = np.full(n, np.nan)
        self._peak: F64 = np.full(n, np.nan)
        self._excursions = np.zeros(n, dtype=np.int64)
        # excursions
        self._exc_active: BoolArray = np.zeros(n, dtype=np.bool_)
        self._exc_start: F64 = np.zeros(n)
        self._exc_last_end: F64 = np.full(n, -np.inf)
        self._exc_violation: BoolArray = np.zeros(n, dtype=np.bool_)
        self._closed: list[ShiftExposure] = []
        #: Channels with the excursion limits (substances with a PC-TWA and no PC-STEL).
        self._exc: slice | IdxArray | None = next(
            (ch for check, _, ch in self._groups if check == Check.EXCURSION), None
        )
        #: Seconds until the shift TWA reaches PC-TWA, per row (forecast rows; NaN elsewhere).
        self.forecast: F64 = np.full(self.size, np.nan)

    # -- time ------------------------------------------------------------------------------
    def _clear_buckets(self, now: float) -> None:
        self._stel_k = _advance(self._stel_ring, self._sum_stel, self._stel_k, now, STEL_BUCKET_S)
        self._twa_k = _advance(self._twa_ring, self._sum_twa, self._twa_k, now, TWA_BUCKET_S)

    def _close_shift(self, now: float, dt: float, conc: F64, good: BoolArray) -> float:
        """Close the shift when ``now`` has reached its end. The part of this tick's interval
        ``(now - dt, now]`` before the end still counts in the closing shift; returns its
        length (0 when no shift closes)."""
        if self._shift is None:
            self._shift = self.shifts.bounds(now)
            return 0.0
        start, end = self._shift
        if now < end:
            return 0.0
        before = min(max(end - (now - dt), 0.0), dt)
        self._shift_dose += conc * before
        self._measured += np.where(good, before, 0.0)
        self._closed.append(
            ShiftExposure(
                start=start,
                end=end,
                devices=self.devices,
                points=self.points,
                rules=self.rules,
                substances=self.substances,
                pc_twa=self._twa,
                pc_stel=self._stel,
                mac=self._mac,
                twa=self._shift_dose / TWA_S,
                stel_max=self._stel_max.copy(),
                peak=self._peak.copy(),
                excursions=self._excursions.copy(),
                measured_s=self._measured.copy(),
            )
        )
        self._shift = self.shifts.bounds(now)
        self._shift_dose = np.zeros(self.n_channels)
        self._measured.fill(0.0)
        self._stel_max.fill(np.nan)
        self._peak.fill(np.nan)
        self._excursions = self._exc_active.astype(np.int64)  # one in progress counts again
        return before

    def take_closed_shifts(self) -> list[ShiftExposure]:
        """Shifts closed since the last call (oldest first)."""
        out, self._closed = self._closed, []
        return out

    # -- the tick --------------------------------------------------------------------------
    def evaluate(
        self,
        now: float,
        values: F64,
        quality: U8,
        maintenance: BoolArray,
        *,
        eff: I8,
        raw: I8,
        value_out: F64,
    ) -> None:
        """Accumulate this tick's dose and write each row's raw level and value. A point is
        read when its quality is good and its device (``maintenance``, per device) is not in
        maintenance: calibration gas is not exposure."""
        if self.size == 0:
            return
        last = self._last_now
        dt = 0.0 if last is None else min(max(now - last, 0.0), MAX_HOLD_S)
        self._last_now = now if last is None else max(last, now)
        v = values[self.point_index]
        good = (quality[self.point_index] == GOOD) & ~np.isnan(v)
        if maintenance.any():
            good &= ~maintenance[self.device_index]
        conc = np.fmax(v, 0.0)  # NaN and below zero count as zero
        conc *= good
        in_old_shift = self._close_shift(now, dt, conc, good)
        self._clear_buckets(now)
        n_twa = self._n_twa
        ring_conc = conc[:n_twa]
        _add_dose(
            self._stel_ring,
            self._sum_stel,
            ring_conc,
            k=self._stel_k,
            width=STEL_BUCKET_S,
            now=now,
            dt=dt,
        )
        _add_dose(
            self._twa_ring,
            self._sum_twa,
            ring_conc,
            k=self._twa_k,
            width=TWA_BUCKET_S,
            now=now,
            dt=dt,
        )
        in_shift = dt - in_old_shift
        if in_shift > 0.0:
            self._shift_dose += conc * in_shift
            np.add(self._measured, in_shift, out=self._measured, where=good)
        assert self._shift is not None

        stel = _window_sum(self._stel_ring, self._sum_stel, self._stel_k, now, STEL_BUCKET_S)
        stel /= STEL_S
        rolling = _window_sum(self._twa_ring, self._sum_twa, self._twa_k, now, TWA_BUCKET_S)
        twa = np.maximum(rolling, self._shift_dose[:n_twa]) / TWA_S
        remaining = max(self._shift[1] - now, 0.0)
        stel_max = self._stel_max[:n_twa]
        np.fmax(stel_max, stel, out=stel_max)
        np.fmax(self._peak, v, out=self._peak, where=good)

        if self._exc is not None:
            self._track_excursions(now, self._exc, v, good)

        for check, rows, ch in self._groups:
            shown: F64
            if check == Check.TWA:
                hit, shown = twa[ch] >= self._twa[ch], twa[ch]
            elif check == Check.TWA_FORECAST:
                shown = (self._shift_dose[ch] + stel[ch] * remaining) / TWA_S
                hit = (shown >= self._twa[ch]) & (twa[ch] < self._twa[ch])
                need = self._twa_dose_limit[ch] - self._shift_dose[ch]
                rate = stel[ch]
                with np.errstate(divide="ignore", invalid="ignore"):
                    self.forecast[rows] = np.where((rate > 0) & (need > 0), need / rate, np.nan)
            elif check == Check.STEL:
                hit, shown = stel[ch] >= self._stel[ch], stel[ch]
            elif check == Check.EXCURSION:
                shown = v[ch]
                long = now - self._exc_start[ch] >= EXCURSION_MAX_S
                hit = (shown >= self._ceiling[ch]) | (
                    self._exc_active[ch] & (self._exc_violation[ch] | long)
                )
            else:
                hit, shown = v[ch] >= self._mac[ch], v[ch]
            level = hit.view(np.int8) * ACTIVE
            if check in (Check.EXCURSION, Check.MAC):  # a reading that is not good holds
                level = np.where(good[ch], level, eff[rows])
            raw[rows] = level
            value_out[rows] = shown

    def _track_excursions(
        self, now: float, ex: slice | IdxArray, values: F64, readable: BoolArray
    ) -> None:
        """Start and end excursions above 3 × PC-TWA of the channels ``ex``; an excursion that
        starts as the 5th of the shift or within 1 h of the last one's end breaks the rule."""
        good = readable[ex]
        active = self._exc_active[ex]
        above = good & (values[ex] >= self._excursion_limit[ex])
        start = above & ~active
        end = good & ~above & active
        if start.any():
            count = self._excursions[ex] + start
            too_soon = now - self._exc_last_end[ex] < EXCURSION_GAP_S
            violation = (count > EXCURSIONS_PER_SHIFT) | too_soon
            self._excursions[ex] = count
            self._exc_violation[ex] = np.where(start, violation, self._exc_violation[ex])
            self._exc_start[ex] = np.where(start, now, self._exc_start[ex])
            active = active | start
        if end.any():
            active = active & ~end
            self._exc_last_end[ex] = np.where(end, now, self._exc_last_end[ex])
        self._exc_active[ex] = active

    # -- persistence -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, np.ndarray]:
        """The state as named arrays (copies), keyed by channel for :meth:`restore`."""
        shift = self._shift or (math.nan, math.nan)
        return {
            "format": np.array(
                [STATE_FORMAT, STEL_SLOTS, TWA_SLOTS, STEL_BUCKET_S, TWA_BUCKET_S], dtype=np.float64
            ),
            "clock": np.array(
                [
                    math.nan if self._last_now is None else self._last_now,
                    self._stel_k,
                    self._twa_k,
                    *shift,
                ],
                dtype=np.float64,
            ),
            "keys": np.array(self.keys, dtype=np.str_),
            "stel_ring": self._stel_ring.copy(),
            "twa_ring": self._twa_ring.copy(),
            "sum_stel": self._sum_stel.copy(),
            "sum_twa": self._sum_twa.copy(),
            "shift_dose": self._shift_dose.copy(),
            "measured": self._measured.copy(),
            "stel_max": self._stel_max.copy(),
            "peak": self._peak.copy(),
            "excursions": self._excursions.copy(),
            "exc_active": self._exc_active.copy(),
            "exc_start": self._exc_start.copy(),
            "exc_last_end": self._exc_last_end.copy(),
            "exc_violation": self._exc_violation.copy(),
        }

    def restore(self, state: Mapping[str, np.ndarray]) -> int:
        """Take back a :meth:`snapshot` (before the first tick). Channels are matched by key;
        channels the state does not have start empty, the state's others are ignored. Returns
        the number of channels restored. Raises ValueError when the state does not fit."""
        try:
            fmt = [float(x) for x in state["format"]]
            if fmt != [STATE_FORMAT, STEL_SLOTS, TWA_SLOTS, STEL_BUCKET_S, TWA_BUCKET_S]:
                raise ValueError(f"state layout {fmt} is not this version's")
            clock = [float(x) for x in state["clock"]]
            saved_keys = [str(k) for k in state["keys"]]
            where = {k: i for i, k in enumerate(saved_keys)}
            pairs = [(c, where[k]) for c, k in enumerate(self.keys) if k in where]
            dst = np.array([c for c, _ in pairs], dtype=np.intp)
            src = np.array([s for _, s in pairs], dtype=np.intp)
            m = len(saved_keys)
            arrays = {
                name: np.asarray(state[name])
                for name in (
                    "stel_ring",
                    "twa_ring",
                    "sum_stel",
                    "sum_twa",
                    "shift_dose",
                    "measured",
                    "stel_max",
                    "peak",
                    "excursions",
                    "exc_active",
                    "exc_start",
                    "exc_last_end",
                    "exc_violation",
                )
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an exposure state: {exc}") from None
        m_twa = arrays["sum_twa"].shape[0] if arrays["sum_twa"].ndim == 1 else -1
        rings = {"stel_ring": STEL_SLOTS, "twa_ring": TWA_SLOTS, "sum_stel": 0, "sum_twa": 0}
        if not 0 <= m_twa <= m:
            raise ValueError("exposure state: ring sums do not match its keys")
        for name, arr in arrays.items():
            slots = rings.get(name)
            want = (m,) if slots is None else (m_twa,) if slots == 0 else (slots, m_twa)
            if arr.shape != want:
                raise ValueError(f"exposure state: {name} has shape {arr.shape}, not {want}")
        if not (math.isnan(clock[0]) or math.isfinite(clock[0])) or len(clock) != 5:
            raise ValueError("exposure state: bad clock")
        m_twa = arrays["sum_twa"].shape[0]  # the saved channels with rings (a prefix)
        ring = (dst < self._n_twa) & (src < m_twa)
        rdst, rsrc = dst[ring], src[ring]
        self._stel_ring[:, rdst] = arrays["stel_ring"][:, rsrc]
        self._twa_ring[:, rdst] = arrays["twa_ring"][:, rsrc]
        self._sum_stel[rdst] = arrays["sum_stel"][rsrc]
        self._sum_twa[rdst] = arrays["sum_twa"][rsrc]
        for name in ("shift_dose", "measured", "stel_max", "peak"):
            getattr(self, f"_{name}")[dst] = arrays[name][src]
        self._excursions[dst] = arrays["excursions"][src]
        self._exc_active[dst] = arrays["exc_active"][src]
        self._exc_start[dst] = arrays["exc_start"][src]
        self._exc_last_end[dst] = arrays["exc_last_end"][src]
        self._exc_violation[dst] = arrays["exc_violation"][src]
        self._last_now = None if math.isnan(clock[0]) else clock[0]
        self._stel_k = int(clock[1])
        self._twa_k = int(clock[2])
        self._shift = None if math.isnan(clock[3]) else (clock[3], clock[4])
        return len(pairs)


def elapsed_share(k: int, now: float, width: float) -> float:
    """How much of bucket ``k`` has elapsed at ``now`` (0 to 1): the share of the ring's oldest
    bucket that has left the window."""
    return min(max((now - k * width) / width, 0.0), 1.0)


def _as_slice(index: IdxArray) -> slice | IdxArray:
    """``index`` as a slice when it is a contiguous ascending run (a view, not a gather)."""
    first = int(index[0])
    if np.array_equal(index, np.arange(first, first + index.size)):
        return slice(first, first + index.size)
    return index


def _window_sum(ring: F64, sums: F64, k: int, now: float, width: float) -> F64:
    """The dose inside the window ending at ``now``: every bucket of the ring, less the share of
    the oldest one that has left the window (its dose taken as spread evenly over its bucket)."""
    oldest: F64 = ring[(k + 1) % ring.shape[0]]
    inside: F64 = sums - oldest * elapsed_share(k, now, width)
    return inside


def _add_dose(
    ring: F64, sums: F64, conc: F64, *, k: int, width: float, now: float, dt: float
) -> None:
    """Add ``conc × dt`` for the interval ``(now - dt, now]``: the part before the start of the
    current bucket ``k`` goes to bucket ``k - 1`` (``dt`` is never longer than a bucket)."""
    before = min(max(k * width - (now - dt), 0.0), dt)
    if before > 0.0:
        early = conc * before
        ring[(k - 1) % ring.shape[0]] += early
        sums += early
    late = conc * (dt - before)
    ring[k % ring.shape[0]] += late
    sums += late


def _advance(ring: F64, sums: F64, last: int, now: float, width: float) -> int:
    """Move a ring to the bucket of ``now``: buckets that left the window are subtracted from
    the running sums and zeroed. Time never moves a ring back. Returns the current bucket."""
    k = math.floor(now / width)
    if k <= last:
        return last
    slots = ring.shape[0]
    if last < 0 or k - last >= slots:
        ring.fill(0.0)
        sums.fill(0.0)
    else:
        for j in range(last + 1, k + 1):
            row = ring[j % slots]
            np.subtract(sums, row, out=sums)
            row.fill(0.0)
    return k


def save_state(path: Path | str, state: Mapping[str, np.ndarray]) -> None:
    """Write a snapshot atomically: a temporary file in the same directory, flushed to disk,
    then renamed over ``path`` (a crash leaves the old file or the new one, never half)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **state)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: Path | str) -> dict[str, np.ndarray]:
    """Read a snapshot written by :func:`save_state`. Raises OSError when unreadable,
    ValueError when the file is not one."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not an exposure state file ({exc})") from None
    except (ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not an exposure state file ({exc})") from None

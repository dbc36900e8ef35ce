"""The point table: every point of every device as columnar numpy arrays.

Row ``i`` is one point; a device's points are contiguous (``DeviceRows.rows``), so a poll writes
one slice and the rules engine reads whole columns without a Python loop over points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fieldmodel.model import Device
from fieldmodel.quality import BAD, GOOD, MAINTENANCE, QUALITY_NAMES, STALE
from fieldmodel.registers import is_integer_point

__all__ = ["BAD", "GOOD", "MAINTENANCE", "QUALITY_NAMES", "STALE", "DeviceRows", "PointTable"]

STALE_INTERVALS = 3.0


@dataclass(frozen=True, slots=True)
class DeviceRows:
    index: int
    device: Device
    rows: slice
    names: tuple[str, ...]
    integer: npt.NDArray[np.bool_]  # points published as integers (bool, unscaled ints)


class PointTable:
    """Latest value, quality and sample time of every point."""

    def __init__(self, devices: Sequence[Device]) -> None:
        self.devices: list[DeviceRows] = []
        start = 0
        intervals: list[float] = []
        for i, dev in enumerate(devices):
            n = len(dev.points)
            integer = np.array([is_integer_point(p) for p in dev.points], dtype=bool)
            self.devices.append(
                DeviceRows(
                    i, dev, slice(start, start + n), tuple(p.name for p in dev.points), integer
                )
            )
            intervals.extend([dev.poll_interval] * n)
            start += n
        self.size = start
        self.values = np.full(start, np.nan, dtype=np.float64)
        self.quality = np.full(start, BAD, dtype=np.uint8)
        self.sample_ts = np.zeros(start, dtype=np.float64)
        self.stale_after = np.array(intervals, dtype=np.float64) * STALE_INTERVALS
        self.device_online = np.zeros(len(devices), dtype=bool)

    def update(
        self,
        device_index: int,
        values: npt.NDArray[np.float64],
        good: npt.NDArray[np.bool_],
        ts: float,
    ) -> None:
        """Store one poll's result for a device (a bad point's value is NaN, from the decoder)."""
        rows = self.devices[device_index].rows
        self.values[rows] = values
        self.quality[rows] = np.where(good, GOOD, BAD)
        self.sample_ts[rows] = ts

    def mark_bad(self, device_index: int, ts: float) -> None:
        rows = self.devices[device_index].rows
        self.values[rows] = np.nan
        self.quality[rows] = BAD
        self.sample_ts[rows] = ts

    def refresh_stale(self, now: float) -> None:
        """Mark good points with no sample for three poll intervals as stale."""
        old = (now - self.sample_ts) > self.stale_after
        self.quality[old & (self.quality == GOOD)] = STALE

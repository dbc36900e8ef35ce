"""Data availability rules: stale / no-data per point, communication failure per device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fieldmodel.quality import STALE

from ._arrays import ACTIVE, F64, I8, U8, BoolArray, IdxArray
from ._binding import Binding, StaleSpec

__all__ = ["CommBlock", "StaleBlock"]


class StaleBlock:
    """Stale rows: active when the gateway marks the point stale, or when its latest sample is
    older than ``max_age_s``. Before the first sample, age counts from the engine's first tick."""

    def __init__(self, bindings: Sequence[Binding]) -> None:
        specs: list[StaleSpec] = []
        for binding in bindings:
            assert isinstance(binding.spec, StaleSpec)
            specs.append(binding.spec)
        self.size = len(specs)
        self.point_index: IdxArray = np.array([s.point_index for s in specs], dtype=np.intp)
        self._max_age = np.array([s.max_age_s for s in specs], dtype=np.float64)

    def evaluate(
        self, now: float, start: float, quality: U8, sample_ts: F64, *, raw: I8, value_out: F64
    ) -> None:
        if self.size == 0:
            return
        p = self.point_index
        age = now - np.fmax(sample_ts[p], start)
        stale = (quality[p] == STALE) | (age > self._max_age)
        np.copyto(raw, np.where(stale, ACTIVE, np.int8(0)))
        np.copyto(value_out, age)


class CommBlock:
    """Communication-failure rows, one per device that a comm rule binds to: active while the
    device's ``device_online`` flag is false."""

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self.size = len(bindings)
        self.device_index: IdxArray = np.array([b.device_index for b in bindings], dtype=np.intp)

    def evaluate(self, online: BoolArray, *, raw: I8, value_out: F64) -> None:
        if self.size == 0:
            return
        up = online[self.device_index]
        np.copyto(raw, np.where(up, np.int8(0), ACTIVE))
        np.copyto(value_out, up.astype(np.float64))

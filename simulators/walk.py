"""Generic model: a bounded random walk per point, for profiles of any other kind.

Each numeric point walks in raw register units between 0 and 1000 (so any register type holds
it; the engineering value is ``raw * scale + offset``), starting at a random place, moving about
1 % of the span per step and reflecting at the bounds. Bool points hold their state and flip now
and then (on average every ``1 / flip`` steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fieldmodel.model import Point
from simulators._noise import WALK, device_rng
from simulators.signals import F64, Bools, SignalModel

__all__ = ["RandomWalkModel"]

_SPAN = 1000.0
_STEP = 10.0
_FLIP = 0.01


class RandomWalkModel(SignalModel):
    """Bounded random walks for the points of devices no physical model covers."""

    kind = ""
    dt = 1.0

    def __init__(self, device_ids: Sequence[str], seed: int, points: Sequence[Point]) -> None:
        self.points = tuple(points)
        self.normals = self.uniforms = len(self.points)
        super().__init__(device_ids, seed)
        self._bool = np.array([p.type == "bool" for p in self.points], dtype=np.bool_)
        self._scale = np.array([p.scale for p in self.points])
        self._offset = np.array([p.offset for p in self.points])
        self.raw = np.zeros((self.n, len(self.points)))
        for i, device_id in enumerate(self.device_ids):
            rng = device_rng(seed, device_id, WALK)
            self.raw[i] = rng.uniform(0.2 * _SPAN, 0.8 * _SPAN, len(self.points))
        self.raw[:, self._bool] = self.raw[:, self._bool] > _SPAN / 2

    def update(self, t: float, dt: float, z: F64, u: F64) -> None:
        walked = self.raw + _STEP * np.sqrt(dt) * z
        walked = np.abs(walked)  # reflect at 0
        walked = _SPAN - np.abs(_SPAN - walked)  # and at the top
        flipped = np.where(u < _FLIP, 1.0 - self.raw, self.raw)
        self.raw = np.where(self._bool, flipped, walked)

    def outputs(self) -> Mapping[str, F64 | Bools]:
        values = np.where(self._bool, self.raw, self.raw * self._scale + self._offset)
        return {p.name: values[:, i] for i, p in enumerate(self.points)}

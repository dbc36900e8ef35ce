"""Deterministic randomness: one numpy Generator per device, seeded from (seed, device id, use).

A device's values depend only on the site seed, its own id and the simulated time, never on
which other devices share the process (so ``--shard i/n`` serves the same signals as one process
serving everything). Draws are taken per device in chunks of many model steps and handed to the
vectorized models one step at a time.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["FAULTS", "NOISE", "PARAMS", "WALK", "NoiseSource", "device_rng"]

F64 = npt.NDArray[np.float64]

#: Stream tags: what a device's generator is used for.
PARAMS: Final = 0
NOISE: Final = 1
FAULTS: Final = 2
WALK: Final = 3

_CHUNK: Final = 64


def device_rng(seed: int, device_id: str, use: int) -> np.random.Generator:
    """The Generator for one use (``PARAMS``, ``NOISE``, ...) of one device."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, zlib.crc32(device_id.encode()), use])


class NoiseSource:
    """Per-step standard normals and uniforms for a fleet of devices, drawn per device."""

    def __init__(
        self, seed: int, device_ids: Sequence[str], normals: int, uniforms: int, use: int = NOISE
    ) -> None:
        self._rngs = [device_rng(seed, d, use) for d in device_ids]
        self._n = len(device_ids)
        self._normals = normals
        self._uniforms = uniforms
        self._z = np.zeros((self._n, _CHUNK, normals))
        self._u = np.zeros((self._n, _CHUNK, uniforms))
        self._next = _CHUNK

    def _refill(self) -> None:
        for i, rng in enumerate(self._rngs):
            if self._normals:
                rng.standard_normal(out=self._z[i])
            if self._uniforms:
                rng.random(out=self._u[i])
        self._next = 0

    def draw(self) -> tuple[F64, F64]:
        """Normals ``(devices, normals)`` and uniforms ``(devices, uniforms)`` for one step."""
        if self._next == _CHUNK:
            self._refill()
        k = self._next
        self._next += 1
        return self._z[:, k, :], self._u[:, k, :]

"""Signal models: the physics behind a fleet of simulated devices of one kind.

A model holds the state of every device of its kind as numpy arrays (one row per device) and
advances them all together in fixed steps of ``dt`` seconds of simulated time, so a device's
values depend only on the seed, its id and the time, never on how often it is read.

A model has:

- ``params``: per-device parameters (arrays), defaults from :attr:`SignalModel.defaults`,
  randomized per device by :meth:`SignalModel.randomize`, then adjusted by the scenario
  (``ctx.model(device_id).set(leak_start=20.0)``) before :meth:`SignalModel.start`;
  parameters read by :meth:`SignalModel.update` may change at any time;
- :meth:`SignalModel.update`: one step, given standard normals and uniforms per device;
- :meth:`SignalModel.outputs`: engineering values keyed by point name (profile point names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from simulators._noise import PARAMS, device_rng

__all__ = ["F64", "Bools", "SignalModel", "ou_step"]

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def ou_step(state: F64, z: F64, dt: float, tau: float, sigma: float | F64) -> F64:
    """One exact step of an Ornstein-Uhlenbeck process (mean 0, stationary std ``sigma``)."""
    a = np.exp(-dt / tau)
    return np.asarray(a * state + np.sqrt(1.0 - a * a) * sigma * z, dtype=np.float64)


class SignalModel:
    """Base of the vectorized signal models (one instance per fleet of devices of one kind)."""

    #: Profile ``kind`` this model serves.
    kind: ClassVar[str] = ""
    #: Fixed model step in seconds of simulated time.
    dt: ClassVar[float] = 1.0
    #: Standard normals and uniforms each device needs per step.
    normals: int = 0
    uniforms: int = 0
    #: Per-device parameters and their defaults (documented in each model's docstring).
    defaults: ClassVar[Mapping[str, float]] = {}

    def __init__(self, device_ids: Sequence[str], seed: int) -> None:
        self.device_ids = tuple(device_ids)
        self.n = len(self.device_ids)
        self.params: dict[str, F64] = {
            name: np.full(self.n, value, dtype=np.float64) for name, value in self.defaults.items()
        }
        for i, device_id in enumerate(self.device_ids):
            self.randomize(i, device_rng(seed, device_id, PARAMS))

    def randomize(self, i: int, rng: np.random.Generator) -> None:
        """Draw device ``i``'s own parameters (geometry, baselines) from its generator."""

    def start(self) -> None:
        """Set the initial state from the parameters (called once, after the scenario setup)."""

    def update(self, t: float, dt: float, z: F64, u: F64) -> None:
        """Advance every device by ``dt`` to time ``t`` (normals ``z``, uniforms ``u``)."""
        raise NotImplementedError

    def outputs(self) -> Mapping[str, F64 | Bools]:
        """Current engineering values by point name, one array entry per device."""
        raise NotImplementedError

"""A fleet: the devices that share one point list, stepped and encoded together.

The fleet owns the signal model of its kind (plus a random walk for points the model does not
produce), steps them in fixed increments of simulated time, overlays the injected value faults
(frozen points, spikes), and keeps the encoded register image of every device, re-encoded at most
once per model step. Reading a device's registers is then a row copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fieldmodel.model import Device
from fieldmodel.registers import BIT_KINDS
from simulators._layout import RegisterLayout
from simulators._noise import FAULTS, NOISE, WALK, NoiseSource, device_rng
from simulators.faults import DeviceFaults, Spikes
from simulators.signals import F64, SignalModel
from simulators.walk import RandomWalkModel

__all__ = ["Fleet"]


class Fleet:
    """Devices of one point list: model state, value faults and register images."""

    def __init__(
        self, devices: Sequence[Device], model: type[SignalModel] | None, seed: int
    ) -> None:
        self.devices = tuple(devices)
        self.ids = tuple(d.id for d in self.devices)
        self.row = {device_id: i for i, device_id in enumerate(self.ids)}
        self.layout = RegisterLayout(self.devices[0].points)
        self.n = len(self.devices)
        self._seed = seed
        self.model: SignalModel | None = model(self.ids, seed) if model is not None else None
        self.dt = self.model.dt if self.model is not None else RandomWalkModel.dt
        self.steps = 0
        self.version = 0
        self._parts: list[tuple[SignalModel, NoiseSource, list[tuple[int, str]]]] = []
        self._image: dict[str, np.ndarray] = {}
        self._packed: dict[str, np.ndarray] = {}
        self._dirty = True
        self._frozen = np.zeros((self.n, len(self.layout.points)), dtype=np.bool_)
        self._frozen_values = np.zeros((self.n, len(self.layout.points)))
        self._spikes = np.zeros((self.n, len(self.layout.points)))
        self._spike_rngs: dict[int, np.random.Generator] = {}
        self._spike_faults: dict[int, dict[str, Spikes]] = {}
        self._held: dict[int, dict[str, dict[int, int]]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Set initial state from the (scenario-adjusted) parameters."""
        names = self.layout.names
        covered: set[str] = set()
        if self.model is not None:
            self.model.start()
            outputs = self.model.outputs()
            cols = [(i, n) for i, n in enumerate(names) if n in outputs]
            covered = {n for _, n in cols}
            noise = NoiseSource(
                self._seed, self.ids, self.model.normals, self.model.uniforms, NOISE
            )
            self._parts.append((self.model, noise, cols))
        rest = [p for p in self.layout.points if p.name not in covered]
        if rest:
            walk = RandomWalkModel(self.ids, self._seed, rest)
            noise = NoiseSource(self._seed, self.ids, walk.normals, walk.uniforms, WALK)
            self._parts.append((walk, noise, [(self.layout.index[p.name], p.name) for p in rest]))

    def advance(self, t: float) -> bool:
        """Step every device up to simulated time ``t``; True when anything moved."""
        target = math.floor(t / self.dt + 1e-9)
        if target <= self.steps:
            return False
        while self.steps < target:
            self.steps += 1
            now = self.steps * self.dt
            for model, noise, _ in self._parts:
                z, u = noise.draw()
                model.update(now, self.dt, z, u)
            if self._spike_rngs:
                self._draw_spikes()
        self._dirty = True
        return True

    # ------------------------------------------------------------------ values

    def values(self) -> F64:
        """Engineering values ``(devices, points)`` with frozen points and spikes applied."""
        out = np.zeros((self.n, len(self.layout.points)))
        for model, _, cols in self._parts:
            outputs = model.outputs()
            for i, name in cols:
                out[:, i] = outputs[name]
        out += self._spikes
        return np.where(self._frozen, self._frozen_values, out)

    def image(self) -> Mapping[str, np.ndarray]:
        """Register images by kind, re-encoded when the values changed since the last call."""
        if self._dirty:
            image = self.layout.encode(self.values())
            for row, kinds in self._held.items():
                for kind, words in kinds.items():
                    for address, value in words.items():
                        image[kind][row, address] = value
            self._image = image
            self._packed = {
                k: RegisterLayout.pack_bits(image[k].astype(np.bool_)) for k in BIT_KINDS
            }
            self.version += 1
            self._dirty = False
        return self._image

    def words(self, row: int, kind: str) -> list[int]:
        """One device's image of ``kind`` as pymodbus keeps it (bit kinds packed, bit 0 first)."""
        image = self.image()
        source = self._packed[kind] if kind in BIT_KINDS else image[kind]
        words: list[int] = source[row].tolist()
        return words

    def hold(
        self, row: int, kind: str, address: int, values: Sequence[int] | Sequence[bool]
    ) -> None:
        """Keep values a client wrote (they override the model until :meth:`release`)."""
        held = self._held.setdefault(row, {}).setdefault(kind, {})
        for offset, value in enumerate(values):
            held[address + offset] = int(value)
        self._dirty = True

    # ------------------------------------------------------------------ faults

    def apply_faults(self, row: int, faults: DeviceFaults) -> None:
        """Bring the value overlay of device ``row`` in line with its active faults."""
        index = self.layout.index
        current = self.values()[row]
        wanted = np.zeros(len(self.layout.points), dtype=np.bool_)
        for point in faults.frozen:
            if point is None:
                wanted[:] = True
            else:
                wanted[index[point]] = True
        newly = wanted & ~self._frozen[row]
        self._frozen_values[row, newly] = current[newly]
        self._frozen[row] = wanted
        if faults.spikes:
            self._spike_rngs.setdefault(row, device_rng(self._seed, self.ids[row], FAULTS))
            self._spike_faults[row] = dict(faults.spikes)
        else:
            self._spike_rngs.pop(row, None)
            self._spike_faults.pop(row, None)
            self._spikes[row] = 0.0
        self._dirty = True

    def release(self, row: int) -> None:
        """Forget values clients wrote to device ``row``; the model drives them again."""
        if self._held.pop(row, None) is not None:
            self._dirty = True

    def _draw_spikes(self) -> None:
        index = self.layout.index
        for row, rng in self._spike_rngs.items():
            self._spikes[row] = 0.0
            for point, spike in self._spike_faults.get(row, {}).items():
                if rng.random() < spike.probability:
                    self._spikes[row, index[point]] = spike.magnitude * rng.choice((-1.0, 1.0))

"""Occupational exposure in the gateway: per-shift rows to the database, state across restarts.

The rules engine keeps the dose of every ``exposure`` rule (see ``rules/_exposure.py``); this
module takes what it produces out of it:

* each shift the engine closes becomes ``exposure`` lines (one per point with readings in the
  shift) handed to ``write`` — the gateway's time-series sink, so they travel through the
  durable outbox like alarms and are never dropped at its bound;
* the state is saved every ``exposure.save_interval`` seconds and at shutdown to
  ``exposure.state_file`` (written to a temporary file, flushed, then renamed over the old one)
  and restored at start, so a restart loses at most the doses of the interval and the downtime.

A state file that cannot be read is renamed to ``{name}.bad`` and logged at ERROR; exposure then
starts from zero rather than the gateway refusing to run its alarms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from gateway.config import ExposureConfig, state_directory
from gateway.sinks.lineprotocol import exposure_lines
from rules import RuleEngine, RulesConfigError, ShiftExposure, save_exposure_state

__all__ = ["ExposureKeeper"]

log = logging.getLogger(__name__)

#: Seconds between looks for closed shifts.
DRAIN_INTERVAL_S = 1.0


class ExposureKeeper:
    """Drains closed shifts from ``engine`` into ``write`` and keeps its state on disk."""

    def __init__(
        self,
        engine: RuleEngine,
        config: ExposureConfig,
        site_id: str,
        write: Callable[[list[str]], None] | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.config = config
        self.site_id = site_id
        self.write = write
        self.clock = clock
        # parse_site resolves it; a config built by hand falls back to the state directory
        self.path = (
            Path(config.state_file)
            if config.state_file is not None
            else state_directory() / f"exposure-{site_id}.npz"
        )
        self._last_save = clock()

    def restore(self) -> int:
        """Load the saved state (before the engine's first tick); returns channels restored."""
        try:
            restored = self.engine.load_exposure(self.path)
        except RulesConfigError as exc:
            aside = self.path.with_name(self.path.name + ".bad")
            log.error("exposure state %s unusable (%s); moved to %s", self.path, exc, aside)
            try:
                self.path.replace(aside)
            except OSError as move:
                log.error("could not move %s aside: %s", self.path, move)
            return 0
        if restored:
            log.info("exposure state restored from %s: %d points", self.path, restored)
        return restored

    def drain(self) -> list[ShiftExposure]:
        """Write the rows of every shift closed since the last call."""
        shifts = self.engine.take_shift_exposures()
        for shift in shifts:
            lines = exposure_lines(self.site_id, shift)
            log.info("shift %.0f-%.0f closed: %d exposure rows", shift.start, shift.end, len(lines))
            if self.write is not None and lines:
                self.write(lines)
        return shifts

    def save(self) -> None:
        """Save the state now (errors are logged: a full disk must not stop the alarms)."""
        self._last_save = self.clock()
        try:
            self.engine.save_exposure(self.path)
        except OSError as exc:
            log.error("could not save the exposure state to %s: %s", self.path, exc)

    async def save_in_thread(self) -> None:
        """Copy the state on the event loop (between ticks), write it in a worker thread: a
        large site's file (about 1 MB per 1,000 points) never stalls polling and alarms."""
        self._last_save = self.clock()
        if not self.engine.exposure_points:
            return
        state = self.engine.exposure_snapshot()
        try:
            await asyncio.to_thread(save_exposure_state, self.path, state)
        except OSError as exc:
            log.error("could not save the exposure state to %s: %s", self.path, exc)

    async def run(self) -> None:
        """Drain shifts every second and save every ``save_interval``; save once more when
        cancelled (the gateway stopping)."""
        try:
            while True:
                await asyncio.sleep(DRAIN_INTERVAL_S)
                self.drain()
                if self.clock() - self._last_save >= self.config.save_interval:
                    await self.save_in_thread()
        finally:
            self.drain()
            self.save()

"""Alarm flood detection after EEMUA 191."""

from __future__ import annotations

from collections import deque
from typing import Final

from ._model import FloodEvent

__all__ = ["FLOOD_END_BELOW", "FLOOD_START_ABOVE", "FLOOD_WINDOW_S", "FloodDetector"]

FLOOD_WINDOW_S: Final = 600.0
FLOOD_START_ABOVE: Final = 10
FLOOD_END_BELOW: Final = 5


class FloodDetector:
    """Counts alarm activations in a sliding window (``ts > now - window_s``).

    A flood starts when the count exceeds ``start_above`` and ends when it drops below
    ``end_below``; each change is reported once as a :class:`FloodEvent`. Detection only
    announces: every alarm is still delivered.
    """

    def __init__(
        self,
        window_s: float = FLOOD_WINDOW_S,
        start_above: int = FLOOD_START_ABOVE,
        end_below: int = FLOOD_END_BELOW,
    ) -> None:
        self.window_s = window_s
        self.start_above = start_above
        self.end_below = end_below
        self.active = False
        self._events: deque[tuple[float, int]] = deque()
        self._count = 0

    @property
    def count(self) -> int:
        """Activations currently inside the window."""
        return self._count

    def record(self, now: float, activations: int) -> FloodEvent | None:
        """Add this tick's activations and return a flood start/end event, if any."""
        if activations:
            self._events.append((now, activations))
            self._count += activations
        horizon = now - self.window_s
        while self._events and self._events[0][0] <= horizon:
            self._count -= self._events.popleft()[1]
        if not self.active and self._count > self.start_above:
            self.active = True
            return self._event(now, started=True)
        if self.active and self._count < self.end_below:
            self.active = False
            return self._event(now, started=False)
        return None

    def _event(self, now: float, *, started: bool) -> FloodEvent:
        return FloodEvent(
            started=started,
            ts=now,
            count=self._count,
            window_s=self.window_s,
            start_above=self.start_above,
            end_below=self.end_below,
        )

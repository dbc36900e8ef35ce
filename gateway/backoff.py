"""The one capped, jittered exponential backoff of the gateway.

After the ``attempt``-th failure in a row (counted from 0) a retry waits ``initial * 2**attempt``
seconds, capped at ``maximum``, then jittered to between half and all of that, so that many
clients that lost the same broker, database or serial line do not come back in step.

Used by the Modbus poller (a device that stops answering), the MQTT publisher (reconnect and
broker failover), the database sink (a failed write), the console's broker link and the city
platform's ingest workers. Tests pass their own ``random`` (a callable returning a float in
``[0, 1)``) to get known delays.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["JITTER_FLOOR", "Backoff", "jitter"]

#: The jittered delay is between this fraction of the capped delay and all of it.
JITTER_FLOOR = 0.5

#: Beyond this many doublings every practical delay is at its cap; keeps ``2**attempt`` from
#: overflowing a float after a device has been away for hours.
_MAX_DOUBLINGS = 64


def jitter(seconds: float, random: Callable[[], float] = _random.random) -> float:
    """``seconds`` scaled by a random factor in ``[JITTER_FLOOR, 1)``."""
    return seconds * (JITTER_FLOOR + (1.0 - JITTER_FLOOR) * random())


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays for retries: ``initial`` seconds after the first failure, doubling per further
    failure, capped at ``maximum``; :meth:`delay` adds the jitter, :meth:`ceiling` does not."""

    initial: float
    maximum: float
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"backoff initial delay must be > 0 s, got {self.initial!r}")
        if not self.maximum > 0:
            raise ValueError(f"backoff maximum delay must be > 0 s, got {self.maximum!r}")

    def ceiling(self, attempt: int) -> float:
        """The delay after failure number ``attempt`` (0 = the first) before jitter."""
        return min(self.maximum, self.initial * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS))

    def delay(self, attempt: int) -> float:
        """The jittered delay after failure number ``attempt``: between half the ceiling and
        all of it."""
        return jitter(self.ceiling(attempt), self.random)

"""Quality codes of point values and their names (one table for the point table, the rules
engine, MQTT and the database encoder).

The point table holds GOOD, BAD and STALE. MAINTENANCE is what the good points of a device in
maintenance (calibration, 标校) are published as, on MQTT and as the ``quality`` tag of their
database lines, while the rules engine still sees them as read.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BAD", "GOOD", "MAINTENANCE", "QUALITY_NAMES", "STALE"]

GOOD: Final = 0
BAD: Final = 1
STALE: Final = 2
MAINTENANCE: Final = 3
#: Name of each quality code, indexed by code.
QUALITY_NAMES: Final = ("good", "bad", "stale", "maintenance")

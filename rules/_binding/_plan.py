"""The binding plan: one :class:`Binding` per alarm, each with the spec of its rule type.

Plain data. The vectorized engine compiles it into arrays; the scalar reference implementation in
the tests walks it row by row. Rows are ordered in blocks (:class:`BlockKind`), threshold rows by
point index so the hot gather reads memory in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rules._exposure import ExposureSpec
from rules._model import LEVEL_NAMES, Level

__all__ = [
    "AREA_TAG",
    "COMM_POINT",
    "Binding",
    "BindingPlan",
    "BlockKind",
    "BoundPredicate",
    "CommSpec",
    "ConditionSpec",
    "FeedSpec",
    "LoosenedLimit",
    "MissingPoints",
    "Spec",
    "StaleSpec",
    "ThresholdSpec",
    "TrendSpec",
]

#: Pseudo point name of device-level (communication) alarms: ``{device}/_device/{rule}``.
COMM_POINT = "_device"
#: The device tag that groups devices into power-off areas (``P/interlock/{area}``).
AREA_TAG = "area"


class BlockKind:
    """Row blocks, in row order (each one engine block evaluates)."""

    THRESHOLD = 0
    TREND = 1
    STALE = 2
    CONDITION = 3
    COMM = 4
    EXPOSURE = 5
    FEED = 6
    ALL = (THRESHOLD, TREND, STALE, CONDITION, COMM, EXPOSURE, FEED)


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    point_index: int
    #: ``{Level code: (limit, reset)}`` for the configured levels.
    levels: Mapping[int, tuple[float, float]]
    #: A second point: the rule compares the magnitude √(a² + b²) (two tilt axes), or -1.
    magnitude_index: int = -1


@dataclass(frozen=True, slots=True)
class BoundPredicate:
    point_index: int
    op: str
    value: float
    ref_index: int
    factor: float
    bit: int
    values: tuple[float, ...]
    #: Compare ``|value|``.
    magnitude: bool = False
    #: One of the row's alternatives (at least one must hold) rather than a test all must pass.
    alternative: bool = False


@dataclass(frozen=True, slots=True)
class TrendSpec:
    point_index: int
    window_s: float
    min_samples: int
    max_samples: int
    rise_per_min: float | None
    fall_per_min: float | None
    forecast_limit: float | None
    #: +1 rising, -1 falling, 0 no forecast.
    forecast_direction: int
    forecast_within_s: float
    #: Tests (points of the same device) that must all hold for the alarm to be raised.
    conditions: tuple[BoundPredicate, ...] = ()


@dataclass(frozen=True, slots=True)
class StaleSpec:
    point_index: int
    max_age_s: float


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    predicates: tuple[BoundPredicate, ...]
    report_index: int


@dataclass(frozen=True, slots=True)
class CommSpec:
    pass


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed (馈电) point checked against its area's power-off demand."""

    point_index: int


Spec = ThresholdSpec | TrendSpec | StaleSpec | ConditionSpec | CommSpec | ExposureSpec | FeedSpec


@dataclass(frozen=True, slots=True)
class LoosenedLimit:
    """A per-device limit looser than its pack's table, allowed by the device's
    ``limits_reason`` (logged at start and shown in the gateway status)."""

    device: str
    rule: str
    level: str
    key: str
    table: float
    value: float
    reason: str


@dataclass(frozen=True, slots=True)
class MissingPoints:
    """A rule that selects a device (by kind, tags and position) but does not bind there,
    because the device lacks points the rule needs: an alarm that does not exist on that device
    (logged at start and shown in the gateway status and ``hazardgw check``)."""

    device: str
    rule: str
    #: The points the rule needs that the device does not have, in the rule's order.
    points: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Binding:
    """One alarm: a rule bound to a point (or to a device, for communication rules)."""

    alarm_id: str
    device: str
    device_index: int
    point: str
    rule_id: str
    rule_type: str
    block: int
    title: str
    unit: str
    message: str | None
    level_name: str
    on_delay_s: float
    off_delay_s: float
    #: Priority and limit by level code (index 0..5, see :class:`rules.Level`).
    priorities: tuple[int, ...]
    limits: tuple[float, ...]
    suppressible: bool
    spec: Spec
    #: Level code from which this alarm demands power-off of its area (0: never; 4 HH, 3 H,
    #: 5 ACTIVE for lockout rules).
    power_off_code: int = 0
    #: The device's ``area`` tag (power-off demands and feed checks are per area).
    area: str | None = None
    #: Never suppressed by communication loss (power-off alarms, the methane table, every alarm
    #: with a priority-1 level).
    never_hidden: bool = False

    @property
    def checks_feed(self) -> bool:
        """A feed (馈电) check: its point must read "off" within ``on_delay_s`` of a power-off."""
        return self.block == BlockKind.FEED

    @property
    def pack_rule_id(self) -> str:
        """Id of the pack rule this alarm comes from (an exposure rule makes one per check)."""
        return self.spec.rule_id if isinstance(self.spec, ExposureSpec) else self.rule_id

    def level_label(self, code: int) -> str:
        """Display name of a level code for this alarm."""
        if code == Level.ACTIVE:
            return self.level_name
        return LEVEL_NAMES[code]


@dataclass(frozen=True, slots=True)
class BindingPlan:
    """All alarms of one engine, in row order."""

    bindings: tuple[Binding, ...]
    n_points: int
    n_devices: int
    #: ``(device, point)`` pairs no rule binds to (for the gateway to log once).
    unbound_points: tuple[tuple[str, str], ...]
    #: Per-device limits looser than the table, each with the device's reason.
    loosened: tuple[LoosenedLimit, ...] = ()
    #: Rules that select a device lacking points they need, so their alarm does not exist there.
    missing_points: tuple[MissingPoints, ...] = ()

    def block_slice(self, block: int) -> slice:
        start = next((i for i, b in enumerate(self.bindings) if b.block >= block), None)
        if start is None:
            return slice(len(self.bindings), len(self.bindings))
        stop = next((i for i, b in enumerate(self.bindings) if b.block > block), len(self.bindings))
        return slice(start, max(start, stop))

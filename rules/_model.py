"""Value types shared by the engine, the reference implementation and the MQTT mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final

__all__ = [
    "LEVEL_NAMES",
    "AlarmState",
    "AlarmTransition",
    "FloodEvent",
    "Level",
    "MaintenanceEvent",
    "PointRef",
    "State",
]


@dataclass(frozen=True, slots=True)
class PointRef:
    """One row of the gateway's point table, as the rules engine sees it.

    ``device_index`` is the device's row in the ``device_online`` array passed to ``tick``; the
    position of a ``PointRef`` in the list given to the engine is its row in the value arrays.
    """

    device: str
    device_index: int
    point: str
    kind: str
    tags: Mapping[str, str] = field(default_factory=dict)
    unit: str = ""
    #: The reading's step (a scaled integer's scale; 0 for a continuous float): a limit
    #: converted from another unit is rounded down onto it (exposure limits).
    resolution: float = 0.0


class State(StrEnum):
    """Alarm lifecycle states after ISA-18.2.

    ``OUT_OF_SERVICE`` is how an alarm of a device in maintenance (calibration, 标校) shows while
    it is active or unacknowledged: it counts neither as over-limit nor as a power-off demand.
    """

    NORMAL = "NORMAL"
    UNACK_ACTIVE = "UNACK_ACTIVE"
    ACK_ACTIVE = "ACK_ACTIVE"
    RTN_UNACK = "RTN_UNACK"
    SHELVED = "SHELVED"
    SUPPRESSED = "SUPPRESSED"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"

    @property
    def code(self) -> int:
        """Integer code (0 NORMAL … 6 OUT_OF_SERVICE), e.g. for the InfluxDB ``alarm.state``."""
        return STATE_CODES[self]


#: Integer codes of the states, as stored in the engine's arrays and written to InfluxDB.
STATE_CODES: Final = {s: i for i, s in enumerate(State)}
STATES_BY_CODE: Final = tuple(State)


class Level(IntEnum):
    """Internal level codes. ``ACTIVE`` is the single level of non-threshold rules; its display
    name comes from the rule (``ROC``, ``STALE``, ``COMM``, ``TRAPPED`` …)."""

    NONE = 0
    L = 1
    LL = 2
    H = 3
    HH = 4
    ACTIVE = 5


LEVEL_NAMES: Final = ("", "L", "LL", "H", "HH")
#: Severity within a side (L and H are 1, LL and HH are 2) and the side each level sits on.
LEVEL_SEVERITY: Final = (0, 1, 2, 1, 2, 1)
LEVEL_SIDE: Final = (0, 1, 1, 2, 2, 3)


def is_raise(old: int, new: int) -> bool:
    """True when going from level ``old`` to ``new`` is an activation or an escalation.

    An activation or escalation needs a fresh acknowledgement and uses the on-delay; anything
    else (clearing, de-escalation) uses the off-delay and keeps the acknowledgement.
    """
    if new == Level.NONE:
        return False
    return LEVEL_SIDE[new] != LEVEL_SIDE[old] or LEVEL_SEVERITY[new] > LEVEL_SEVERITY[old]


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """One change of an alarm's displayed state (or of its level while active).

    ``value`` is what the rule compared: the point value for thresholds and conditions, the slope
    per minute for rate-of-change rules, the sample age in seconds for stale rules, 1.0/0.0 for the
    device's online flag for communication rules. ``limit`` is the limit of ``level`` (NaN where a
    rule has no numeric limit). ``power_off`` is set for alarms whose rule can demand power-off
    (true from the power-off level until the value is below its reset); ``stale`` is true while the
    device is offline (the alarm keeps its level and its last value). ``forecast_s`` is the forecast
    seconds until the trend reaches its forecast limit (rate-of-change rules with a forecast), else
    ``None``. ``user`` is set for transitions caused by an operator command, ``reason`` when that
    command gave one (out of service, return to service, unshelve).
    """

    id: str
    device: str
    point: str
    rule: str
    level: str
    priority: int
    from_state: State
    to_state: State
    value: float
    limit: float
    message: str
    ts: float
    forecast_s: float | None = None
    user: str | None = None
    #: For alarms whose rule can demand power-off: whether it does now (``None`` otherwise).
    power_off: bool | None = None
    #: The device is offline: ``value`` is the last one compared, not a fresh reading.
    stale: bool = False
    #: Why the operator's command was given (``None``: not a command, or no reason given).
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmState:
    """The current state of one alarm that is not NORMAL (what the retained MQTT topic holds)."""

    id: str
    device: str
    point: str
    rule: str
    state: State
    level: str
    priority: int
    value: float
    limit: float
    message: str
    ts: float
    forecast_s: float | None = None
    shelved_until: float | None = None
    power_off: bool | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class FloodEvent:
    """Start or end of an alarm flood (EEMUA 191): more than ``start_above`` activations within
    ``window_s`` starts a flood; fewer than ``end_below`` ends it. No alarm is ever dropped."""

    started: bool
    ts: float
    count: int
    window_s: float
    start_above: int
    end_below: int

    @property
    def message(self) -> str:
        if self.started:
            return (
                f"alarm flood: {self.count} activations in {self.window_s / 60:g} min "
                f"(more than {self.start_above})"
            )
        return (
            f"alarm flood ended: {self.count} activations in {self.window_s / 60:g} min "
            f"(fewer than {self.end_below})"
        )


@dataclass(frozen=True, slots=True)
class MaintenanceEvent:
    """Start or end of a device's maintenance (calibration, 标校).

    ``user`` and ``reason`` are the operator's (for an end by the timer: the user who started it
    and ``reason`` saying it expired, with ``expired`` True). ``until`` is when a started
    maintenance ends by itself; ``started_at`` when the maintenance began.
    """

    started: bool
    device: str
    user: str
    reason: str
    ts: float
    started_at: float
    until: float
    expired: bool = False

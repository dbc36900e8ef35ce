"""hazard-gateway rules engine: vectorized alarm rules over the gateway's point table.

Load rule packs, bind them to the point table and tick::

    packs = load_packs([Path("rules/packs/coal_mine.yaml")])
    engine = RuleEngine(points, packs, overrides={"face1-gas": {"ch4_face": {"HH": 1.4}}})
    transitions = engine.tick(now, values, quality, sample_ts, device_online)

See ``docs/rules.md`` for rule kinds, the pack format, binding, overrides and the alarm lifecycle.
"""

from ._binding import (
    AREA_TAG,
    COMM_POINT,
    Binding,
    BindingPlan,
    LoosenedLimit,
    MissingPoints,
    bind,
)
from ._daily import DAILY_FIELDS, DailyAccumulator, DailyStats, SensorRef, day_bounds
from ._engine import MAX_MAINTENANCE_MINUTES, MAX_SHELVE_MINUTES, RuleEngine
from ._errors import (
    AlarmCommandError,
    InvalidCommand,
    RulesConfigError,
    RulesError,
    UnknownAlarm,
    UnknownDevice,
)
from ._exposure import (
    DEFAULT_SHIFT_STARTS,
    MOLAR_VOLUME_20C,
    ShiftExposure,
    ShiftSchedule,
    mg_m3_to_ppm,
)
from ._exposure import save_state as save_exposure_state
from ._flood import FLOOD_END_BELOW, FLOOD_START_ABOVE, FLOOD_WINDOW_S
from ._interlock import FEED_STATES, AreaInterlock, PowerLossEvent
from ._model import (
    AlarmState,
    AlarmTransition,
    FloodEvent,
    Level,
    MaintenanceEvent,
    PointRef,
    State,
)
from ._pack import RulePack, load_packs, parse_pack
from ._trend import least_squares_slope

__all__ = [
    "AREA_TAG",
    "COMM_POINT",
    "DAILY_FIELDS",
    "DEFAULT_SHIFT_STARTS",
    "FEED_STATES",
    "FLOOD_END_BELOW",
    "FLOOD_START_ABOVE",
    "FLOOD_WINDOW_S",
    "MAX_MAINTENANCE_MINUTES",
    "MAX_SHELVE_MINUTES",
    "MOLAR_VOLUME_20C",
    "AlarmCommandError",
    "AlarmState",
    "AlarmTransition",
    "AreaInterlock",
    "Binding",
    "BindingPlan",
    "DailyAccumulator",
    "DailyStats",
    "FloodEvent",
    "InvalidCommand",
    "Level",
    "LoosenedLimit",
    "MaintenanceEvent",
    "MissingPoints",
    "PointRef",
    "PowerLossEvent",
    "RuleEngine",
    "RulePack",
    "RulesConfigError",
    "RulesError",
    "SensorRef",
    "ShiftExposure",
    "ShiftSchedule",
    "State",
    "UnknownAlarm",
    "UnknownDevice",
    "bind",
    "day_bounds",
    "least_squares_slope",
    "load_packs",
    "mg_m3_to_ppm",
    "parse_pack",
    "save_exposure_state",
]

"""Binding: which rule applies to which point, with site overrides applied.

The result, a :class:`BindingPlan`, is plain data (one :class:`Binding` per alarm). The vectorized
engine compiles it into arrays; the scalar reference implementation in the tests walks it row by
row. Rows are ordered in blocks by rule type (threshold, rate of change, stale, condition, comm),
threshold rows by point index so the hot gather reads memory in order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import RulesConfigError
from ._exposure import (
    CHECK_LEVELS,
    CHECK_SUFFIXES,
    Check,
    ExposureSpec,
    exposure_checks,
    limit_in_unit,
)
from ._model import LEVEL_NAMES, Level, PointRef
from ._pack import (
    COMPARISONS,
    HIGH_LEVELS,
    POSITION_TAG,
    CommRule,
    ConditionRule,
    ExposureRule,
    FeedCheckRule,
    Predicate,
    RateOfChangeRule,
    RulePack,
    StaleRule,
    ThresholdRule,
    check_threshold_levels,
)

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
    "StaleSpec",
    "ThresholdSpec",
    "TrendSpec",
    "bind",
    "format_message",
]

#: Pseudo point name of device-level (communication) alarms: ``{device}/_device/{rule}``.
COMM_POINT = "_device"
#: The device tag that groups devices into power-off areas (``P/interlock/{area}``).
AREA_TAG = "area"

Overrides = Mapping[str, Mapping[str, Mapping[str, Any]]]


class BlockKind:
    """Row blocks, in row order."""

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

    def block_slice(self, block: int) -> slice:
        start = next((i for i, b in enumerate(self.bindings) if b.block >= block), None)
        if start is None:
            return slice(len(self.bindings), len(self.bindings))
        stop = next((i for i, b in enumerate(self.bindings) if b.block > block), len(self.bindings))
        return slice(start, max(start, stop))


def format_message(binding: Binding, level: str, value: float, limit: float) -> str:
    """Render an alarm's message from its template (or the default one of its rule type)."""
    template = binding.message or _DEFAULT_MESSAGES[binding.rule_type]
    return template.format(
        device=binding.device,
        point=binding.point,
        rule=binding.rule_id,
        level=level,
        value=_num(value),
        limit=_num(limit),
        unit=binding.unit,
        title=binding.title,
    )


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.6g}"


_DEFAULT_MESSAGES = {
    "threshold": "{title}: {device}/{point} {level} {value} {unit} (limit {limit} {unit})",
    "rate_of_change": "{title}: {device}/{point} changing {value} {unit}/min (limit {limit})",
    "stale": "{title}: {device}/{point} no fresh data for {value} s (limit {limit} s)",
    "discrete": "{title}: {device}/{point} {level} (value {value})",
    "duration": "{title}: {device}/{point} {level}",
    "comm": "{title}: {device} offline",
    "exposure": "{title}: {device}/{point} {level} {value} {unit} (limit {limit} {unit})",
    "feed_check": "{title}: {device}/{point} power still on in a power-off area",
}

#: Exposure substances by their last check: with a STEL, with the excursion limits, MAC only.
_EXPOSURE_CLASS = {Check.STEL: 0, Check.EXCURSION: 1, Check.MAC: 2}

_LEVEL_CODES = {"L": Level.L, "LL": Level.LL, "H": Level.H, "HH": Level.HH}


def _tag_in(tags: Mapping[str, str], key: str, wanted: Any) -> bool:
    allowed = wanted if isinstance(wanted, list) else [wanted]
    return tags.get(key) in allowed  # None in the list: the tag is absent


def _tags_match(rule: Any, tags: Mapping[str, str]) -> bool:
    """All of the rule's ``tags`` match and none of its ``exclude_tags`` does."""
    if not all(_tag_in(tags, key, wanted) for key, wanted in rule.tags.items()):
        return False
    return not any(_tag_in(tags, key, wanted) for key, wanted in rule.exclude_tags.items())


@dataclass
class _Device:
    name: str
    index: int
    kind: str
    tags: Mapping[str, str]
    points: dict[str, int]


def _devices(points: Sequence[PointRef]) -> dict[str, _Device]:
    devices: dict[str, _Device] = {}
    for i, ref in enumerate(points):
        dev = devices.get(ref.device)
        if dev is None:
            dev = devices[ref.device] = _Device(
                ref.device, ref.device_index, ref.kind, ref.tags, {}
            )
        elif dev.index != ref.device_index or dev.kind != ref.kind:
            raise RulesConfigError(
                "points",
                f"[{i}]",
                f"{ref.device}/{ref.point}",
                "all points of one device share its device_index and kind",
            )
        if ref.point in dev.points:
            raise RulesConfigError(
                "points", f"[{i}]", f"{ref.device}/{ref.point}", "point names unique per device"
            )
        dev.points[ref.point] = i
    return devices


def _override_value(path: str, value: Any, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RulesConfigError("overrides", path, value, allowed)
    return float(value)


def _looser(name: str, key: str, table: float, value: float) -> bool:
    """Whether ``value`` for ``key`` (limit or reset) of level ``name`` is looser than
    ``table``: a high level raised later or cleared earlier, a low level the other way round."""
    del key
    return value > table if name in HIGH_LEVELS else value < table


def _threshold_levels(
    rule: ThresholdRule,
    changes: Mapping[str, Any],
    path: str,
    *,
    device: str = "",
    table_rule: bool = False,
    reason: str | None = None,
    loosened: list[LoosenedLimit] | None = None,
) -> dict[str, tuple[float, float]]:
    levels = rule.resolved_levels()
    table = dict(levels)
    for name, change in changes.items():
        key_path = f"{path}.{name}"
        if name not in levels:
            raise RulesConfigError(
                "overrides",
                key_path,
                name,
                f"a level rule {rule.id!r} defines: {', '.join(levels) or 'none'}",
            )
        limit, reset = levels[name]
        spec = rule.levels[name]  # type: ignore[index]
        if isinstance(change, Mapping):
            unknown = set(change) - {"limit", "reset"}
            if unknown:
                raise RulesConfigError(
                    "overrides", f"{key_path}.{sorted(unknown)[0]}", change, "keys limit, reset"
                )
            new_limit = _override_value(
                f"{key_path}.limit", change.get("limit", limit), "a finite number"
            )
            new_reset = (
                _override_value(f"{key_path}.reset", change["reset"], "a finite number")
                if "reset" in change
                else None
            )
        else:
            new_limit = _override_value(key_path, change, "a finite number (the new limit)")
            new_reset = None
        if new_reset is None:
            if spec.reset is None:  # reset follows the rule's deadband
                band = rule.deadband
                new_reset = new_limit - band if name in HIGH_LEVELS else new_limit + band
            else:
                new_reset = reset
        levels[name] = (new_limit, new_reset)
        if table_rule:
            for i, key in ((0, "limit"), (1, "reset")):
                was, now = table[name][i], levels[name][i]
                if not _looser(name, key, was, now):
                    continue
                if not reason:
                    raise RulesConfigError(
                        "overrides",
                        f"{key_path}" + (".reset" if key == "reset" else ""),
                        now,
                        f"a {key} no looser than the table's {was:g} of rule {rule.id!r} "
                        f"({rule.levels[name].source}); a looser one needs "  # type: ignore[index]
                        f'`limits_reason: "<why>"` on device {device!r}',
                    )
                if loosened is not None:
                    loosened.append(LoosenedLimit(device, rule.id, name, key, was, now, reason))
    problem = check_threshold_levels(levels)
    if problem is not None:
        level, key, value, allowed = problem
        raise RulesConfigError(
            "overrides",
            f"{path}.{level}" + (".reset" if key == "reset" else ""),
            value,
            allowed + ' (override as {"limit": …, "reset": …} to move both)',
        )
    return levels


def _scalar_overrides(rule: Any, changes: Mapping[str, Any], path: str) -> dict[str, float]:
    allowed_keys: tuple[str, ...] = rule.overridable
    out: dict[str, float] = {}
    for key, change in changes.items():
        if key not in allowed_keys:
            raise RulesConfigError(
                "overrides",
                f"{path}.{key}",
                key,
                f"a key rule {rule.id!r} lets a site override: {', '.join(allowed_keys)}",
            )
        value = _override_value(f"{path}.{key}", change, "a finite number ≥ 0")
        if value < 0 or (value == 0 and key in ("rise_per_min", "fall_per_min", "window_s")):
            raise RulesConfigError("overrides", f"{path}.{key}", change, "a number > 0")
        out[key] = value
    return out


class _Binder:
    def __init__(
        self,
        points: Sequence[PointRef],
        packs: Sequence[RulePack],
        overrides: Overrides,
        n_devices: int | None,
        limits_reasons: Mapping[str, str],
    ) -> None:
        self.points = points
        self.devices = _devices(points)
        self.packs = packs
        self.rules = [(pack, rule) for pack in packs for rule in pack.rules if rule.enabled]
        self.rule_ids = {rule.id for pack in packs for rule in pack.rules}
        self.table_rules = frozenset().union(*(pack.table_rules() for pack in packs))
        self.limits_reasons = limits_reasons
        self.loosened: list[LoosenedLimit] = []
        self.overrides = overrides
        max_index = max((d.index for d in self.devices.values()), default=-1)
        self.n_devices = max_index + 1 if n_devices is None else n_devices
        if self.n_devices <= max_index:
            raise RulesConfigError(
                "n_devices", "", n_devices, f"more than the highest device_index {max_index}"
            )
        self.applied: set[tuple[str, str]] = set()
        self.by_kind: dict[str, list[_Device]] = {}
        for dev in self.devices.values():
            self.by_kind.setdefault(dev.kind, []).append(dev)
        # devices with a communication rule: their other alarms are suppressed while offline
        self.comm_devices = {
            dev.name
            for pack, rule in self.rules
            if isinstance(rule, CommRule)
            for dev in self._matching(pack, rule)
        }
        self._levels_cache: dict[str, dict[str, tuple[float, float]]] = {}

    def _matching(self, pack: RulePack, rule: Any) -> Iterable[_Device]:
        for kind in rule.kinds:
            for dev in self.by_kind.get(kind, ()):
                if pack.binds_position(dev.tags) and _tags_match(rule, dev.tags):
                    yield dev

    def check_positions(self) -> None:
        """A device of a kind that position-scoped packs bind must have one of their positions.

        Without this, a sensor with a missing or misspelt ``position`` would silently get no
        rules of those packs (or another pack's rules).
        """
        scoped: dict[str, list[RulePack]] = {}
        for pack in self.packs:
            if pack.positions:
                for kind in pack.kinds:
                    scoped.setdefault(kind, []).append(pack)
        for dev in self.devices.values():
            packs = scoped.get(dev.kind)
            if not packs or any(pack.binds_position(dev.tags) for pack in packs):
                continue
            allowed = "; ".join(f"{pack.pack}: {', '.join(pack.positions)}" for pack in packs)
            raise RulesConfigError(
                "devices",
                f"{dev.name}.tags.{POSITION_TAG}",
                dev.tags.get(POSITION_TAG),
                f"a position of the loaded packs for kind {dev.kind!r} ({allowed})",
            )

    def check_conflicts(self, rows: Sequence[Binding]) -> None:
        """Two rules of different packs making the same check on the same reading is an error:
        each reading would be judged twice, against two limits."""
        owner = {id(rule): pack for pack, rule in self.rules}
        by_id = {rule.id: rule for _, rule in self.rules}
        seen: dict[tuple[Any, ...], Binding] = {}
        for row in rows:
            pack = owner[id(by_id[row.pack_rule_id])]
            for key in _conflict_keys(row):
                first = seen.setdefault(key, row)
                if first is row:
                    continue
                first_pack = owner[id(by_id[first.pack_rule_id])]
                if first_pack is pack:
                    continue
                raise RulesConfigError(
                    "packs",
                    f"{row.device}/{row.point}",
                    f"{first.rule_id} ({first_pack.file or first_pack.pack}) and "
                    f"{row.rule_id} ({pack.file or pack.pack})",
                    f"one {row.rule_type} check per reading: both rules bind device "
                    f"{row.device!r}; give it a {POSITION_TAG!r} (or tags) that only one pack "
                    "selects, or disable one of the rules",
                )

    def changes(self, device: str, rule_id: str) -> Mapping[str, Any]:
        per_device = self.overrides.get(device) or {}
        change = per_device.get(rule_id)
        if change is None:
            return {}
        self.applied.add((device, rule_id))
        if not isinstance(change, Mapping):
            raise RulesConfigError(
                "overrides", f"{device}.{rule_id}", change, "a mapping of level/key to value"
            )
        return change

    def check_overrides(self) -> None:
        if not isinstance(self.overrides, Mapping):
            raise RulesConfigError("overrides", "", self.overrides, "a mapping device → rule → …")
        for device, per_device in self.overrides.items():
            if device not in self.devices:
                known = ", ".join(sorted(self.devices)[:8])
                raise RulesConfigError(
                    "overrides", device, device, f"a configured device id ({known}…)"
                )
            if not isinstance(per_device, Mapping):
                raise RulesConfigError("overrides", device, per_device, "a mapping rule id → …")
            for rule_id in per_device:
                if rule_id not in self.rule_ids:
                    raise RulesConfigError(
                        "overrides",
                        f"{device}.{rule_id}",
                        rule_id,
                        "a rule id of the loaded packs",
                    )
                if (device, rule_id) not in self.applied:
                    dev = self.devices[device]
                    raise RulesConfigError(
                        "overrides",
                        f"{device}.{rule_id}",
                        rule_id,
                        f"a rule that applies to device {device!r} (kind {dev.kind!r}, "
                        f"tags {dict(dev.tags)}); this one does not bind there",
                    )

    def bind(self) -> BindingPlan:
        per_block: dict[int, list[tuple[tuple[int, int], Binding]]] = {b: [] for b in BlockKind.ALL}
        self.check_positions()
        for order, (pack, rule) in enumerate(self.rules):
            for dev in self._matching(pack, rule):
                for sort_key, binding in self._bind_rule(rule, dev):
                    per_block[binding.block].append(((*sort_key, order), binding))  # type: ignore[arg-type]
        self.check_overrides()
        rows: list[Binding] = []
        for block in BlockKind.ALL:
            rows.extend(b for _, b in sorted(per_block[block], key=lambda kb: kb[0]))
        self.check_conflicts(rows)
        bound = {(b.device, b.point) for b in rows}
        unbound = tuple(
            (ref.device, ref.point) for ref in self.points if (ref.device, ref.point) not in bound
        )
        return BindingPlan(
            tuple(rows), len(self.points), self.n_devices, unbound, tuple(self.loosened)
        )

    def _bind_rule(self, rule: Any, dev: _Device) -> Iterable[tuple[tuple[int, ...], Binding]]:
        if isinstance(rule, CommRule):
            changes = _scalar_overrides(
                rule, self.changes(dev.name, rule.id), f"{dev.name}.{rule.id}"
            )
            yield (
                (dev.index,),
                self._binding(
                    rule,
                    dev,
                    COMM_POINT,
                    unit="",
                    block=BlockKind.COMM,
                    spec=CommSpec(),
                    level_name=rule.level,
                    single=(rule.priority, math.nan),
                    on_delay=changes.get("on_delay_s", rule.on_delay_s),
                    off_delay=rule.off_delay_s,
                    power_off_code=int(Level.ACTIVE) if rule.power_off else 0,
                ),
            )
            return
        if isinstance(rule, ConditionRule):
            yield from self._bind_condition(rule, dev)
            return
        if isinstance(rule, FeedCheckRule):
            yield from self._bind_feed(rule, dev)
            return
        names = rule.point_names
        if names == ("*",):
            names = tuple(dev.points)
        for name in names:
            index = dev.points.get(name)
            if index is None:
                continue
            unit = rule.unit if rule.unit is not None else self.points[index].unit
            path = f"{dev.name}.{rule.id}"
            if isinstance(rule, ThresholdRule):
                other = -1
                if rule.magnitude_with is not None:
                    if rule.magnitude_with not in dev.points:
                        continue
                    other = dev.points[rule.magnitude_with]
                level_changes = self.changes(dev.name, rule.id)
                if level_changes:
                    levels = _threshold_levels(
                        rule,
                        level_changes,
                        path,
                        device=dev.name,
                        table_rule=rule.id in self.table_rules,
                        reason=self.limits_reasons.get(dev.name),
                        loosened=self.loosened,
                    )
                else:
                    levels = self._levels_cache.get(rule.id) or self._levels_cache.setdefault(
                        rule.id, rule.resolved_levels()
                    )
                coded: dict[int, tuple[float, float]] = {
                    int(_LEVEL_CODES[n]): lv for n, lv in levels.items()
                }
                priorities = [0] * 6
                limits = [math.nan] * 6
                for n, code in _LEVEL_CODES.items():
                    if n in levels:
                        priorities[code] = rule.levels[n].priority  # type: ignore[index]
                        limits[code] = levels[n][0]
                least = min(coded, key=lambda c: (c % 2 == 0, c))  # L or H before LL / HH
                priorities[0] = priorities[least]
                po_level = rule.power_off_level
                po_code = int(_LEVEL_CODES[po_level]) if po_level is not None else 0
                yield (
                    (index,),
                    self._binding(
                        rule,
                        dev,
                        name,
                        unit=unit,
                        block=BlockKind.THRESHOLD,
                        spec=ThresholdSpec(index, coded, other),
                        level_name="",
                        priorities=tuple(priorities),
                        limits=tuple(limits),
                        on_delay=rule.on_delay_s,
                        off_delay=rule.off_delay_s,
                        power_off_code=po_code,
                        never_hidden=po_code != 0 or rule.id in self.table_rules,
                    ),
                )
            elif isinstance(rule, RateOfChangeRule):
                if not {n for c in rule.conditions for n in c.points_used} <= dev.points.keys():
                    continue
                changes = _scalar_overrides(rule, self.changes(dev.name, rule.id), path)
                rise = changes.get("rise_per_min", rule.rise_per_min)
                fall = changes.get("fall_per_min", rule.fall_per_min)
                fc = rule.forecast
                spec = TrendSpec(
                    index,
                    changes.get("window_s", rule.window_s),
                    rule.min_samples,
                    rule.max_samples,
                    rise,
                    fall,
                    fc.limit if fc else None,
                    (1 if fc.direction == "rising" else -1) if fc else 0,
                    fc.within_s if fc else 0.0,
                    tuple(_bind_predicate(c, dev.points) for c in rule.conditions),
                )
                if rise is not None:
                    limit = rise
                elif fall is not None:
                    limit = -fall
                else:
                    limit = fc.limit if fc else math.nan
                yield (
                    (index,),
                    self._binding(
                        rule,
                        dev,
                        name,
                        unit=unit,
                        block=BlockKind.TREND,
                        spec=spec,
                        level_name=rule.level,
                        single=(rule.priority, limit),
                        on_delay=rule.on_delay_s,
                        off_delay=rule.off_delay_s,
                    ),
                )
            elif isinstance(rule, ExposureRule):
                yield from self._bind_exposure(rule, dev, name, index, unit)
            elif isinstance(rule, StaleRule):
                changes = _scalar_overrides(rule, self.changes(dev.name, rule.id), path)
                max_age = changes.get("max_age_s", rule.max_age_s)
                yield (
                    (index,),
                    self._binding(
                        rule,
                        dev,
                        name,
                        unit=unit,
                        block=BlockKind.STALE,
                        spec=StaleSpec(index, max_age),
                        level_name=rule.level,
                        single=(rule.priority, max_age),
                        on_delay=rule.on_delay_s,
                        off_delay=rule.off_delay_s,
                    ),
                )

    def _bind_exposure(
        self, rule: ExposureRule, dev: _Device, name: str, index: int, unit: str
    ) -> Iterable[tuple[tuple[int, ...], Binding]]:
        _scalar_overrides(rule, self.changes(dev.name, rule.id), f"{dev.name}.{rule.id}")
        limits: dict[str, float] = {}
        for key in ("pc_twa", "pc_stel", "mac"):
            mg = getattr(rule, key)
            if mg is None:
                limits[key] = math.nan
                continue
            converted = limit_in_unit(mg, rule.molar_mass, unit)
            if converted is None:
                raise RulesConfigError(
                    "rules",
                    f"{rule.id} on {dev.name}/{name}",
                    unit,
                    "an exposure rule's point measures in ppm or mg/m3 (its limits are mg/m³, "
                    "converted to ppm at 20 °C)",
                )
            limits[key] = converted
        checks = exposure_checks(rule.pc_twa, rule.pc_stel, rule.mac)
        for check in checks:
            spec = ExposureSpec(index, rule.id, rule.substance, int(check), **limits)
            limit_reached = check != check.TWA_FORECAST
            yield (
                # rows by check, then substance class (STEL, excursion, MAC), then point: each
                # check's rows and channels are then contiguous (slices, no gathers per tick)
                (int(check), _EXPOSURE_CLASS[checks[-1]], index),
                self._binding(
                    rule,
                    dev,
                    name,
                    unit=unit,
                    block=BlockKind.EXPOSURE,
                    spec=spec,
                    level_name=CHECK_LEVELS[check],
                    single=(
                        rule.priority if limit_reached else rule.forecast_priority,
                        spec.limit(),
                    ),
                    on_delay=0.0,
                    off_delay=0.0,
                    rule_id=f"{rule.id}_{CHECK_SUFFIXES[check]}",
                ),
            )

    def _bind_condition(
        self, rule: ConditionRule, dev: _Device
    ) -> Iterable[tuple[tuple[int, ...], Binding]]:
        preds = rule.predicates()
        alternatives = rule.alternatives()
        needed = {name for p in (*preds, *alternatives) for name in p.points_used}
        report = rule.report_point or preds[0].point
        if not needed <= dev.points.keys() or report not in dev.points:
            return
        changes = _scalar_overrides(rule, self.changes(dev.name, rule.id), f"{dev.name}.{rule.id}")
        hold = changes.get("for_s", changes.get("on_delay_s", rule.hold_s()))
        bound = tuple(_bind_predicate(p, dev.points) for p in preds) + tuple(
            _bind_predicate(p, dev.points, alternative=True) for p in alternatives
        )
        report_index = dev.points[report]
        limit = math.nan
        for p in bound:
            if (
                p.point_index == report_index
                and p.op in COMPARISONS
                and p.ref_index < 0
                and not p.alternative
            ):
                limit = p.value
                break
        unit = rule.unit if rule.unit is not None else self.points[report_index].unit
        yield (
            (report_index,),
            self._binding(
                rule,
                dev,
                report,
                unit=unit,
                block=BlockKind.CONDITION,
                spec=ConditionSpec(bound, report_index),
                level_name=rule.level,
                single=(rule.priority, limit),
                on_delay=hold,
                off_delay=rule.off_delay_s,
                power_off_code=int(Level.ACTIVE) if rule.power_off else 0,
                never_hidden=rule.power_off,
            ),
        )

    def _bind_feed(
        self, rule: FeedCheckRule, dev: _Device
    ) -> Iterable[tuple[tuple[int, ...], Binding]]:
        """One feed check per feed point of a device with an ``area`` tag."""
        if dev.tags.get(AREA_TAG) is None:
            return
        changes = _scalar_overrides(rule, self.changes(dev.name, rule.id), f"{dev.name}.{rule.id}")
        for name in rule.point_names:
            index = dev.points.get(name)
            if index is None:
                continue
            yield (
                (index,),
                self._binding(
                    rule,
                    dev,
                    name,
                    unit=rule.unit if rule.unit is not None else self.points[index].unit,
                    block=BlockKind.FEED,
                    spec=FeedSpec(index),
                    level_name=rule.level,
                    single=(rule.priority, 1.0),
                    on_delay=changes.get("for_s", rule.for_s),
                    off_delay=rule.off_delay_s,
                    never_hidden=True,
                ),
            )

    def _binding(
        self,
        rule: Any,
        dev: _Device,
        point: str,
        *,
        unit: str,
        block: int,
        spec: Spec,
        level_name: str,
        on_delay: float,
        off_delay: float,
        single: tuple[int, float] | None = None,
        priorities: tuple[int, ...] = (),
        limits: tuple[float, ...] = (),
        rule_id: str | None = None,
        power_off_code: int = 0,
        never_hidden: bool = False,
    ) -> Binding:
        if power_off_code and dev.tags.get(AREA_TAG) is None:
            raise RulesConfigError(
                "site",
                f"devices[{dev.index}].tags.{AREA_TAG} (device {dev.name!r})",
                None,
                f"an {AREA_TAG} tag: rule {rule.id!r} demands power-off of the device's area",
            )
        if single is not None:
            priority, limit = single
            priorities = (priority, 0, 0, 0, 0, priority)
            limits = (math.nan, math.nan, math.nan, math.nan, math.nan, limit)
        rule_id = rule.id if rule_id is None else rule_id
        # A priority-1 alarm (a trapped lift, a crane past its cut-off, a tank at high-high, the
        # second %LEL level) is never hidden by communication loss either: an alarm whose device
        # went silent is an alarm whose danger is unknown, not one that has passed.
        never_hidden = never_hidden or bool(power_off_code) or 1 in priorities
        return Binding(
            alarm_id=f"{dev.name}/{point}/{rule_id}",
            device=dev.name,
            device_index=dev.index,
            point=point,
            rule_id=rule_id,
            rule_type=rule.type,
            block=block,
            title=rule.title,
            unit=unit,
            message=rule.message,
            level_name=level_name,
            on_delay_s=float(on_delay),
            off_delay_s=float(off_delay),
            priorities=priorities,
            limits=limits,
            suppressible=block != BlockKind.COMM
            and not never_hidden
            and dev.name in self.comm_devices,
            spec=spec,
            power_off_code=power_off_code,
            area=dev.tags.get(AREA_TAG),
            never_hidden=never_hidden,
        )


def _conflict_keys(row: Binding) -> tuple[tuple[Any, ...], ...]:
    """What a binding checks: two bindings sharing a key judge the same reading the same way."""
    spec = row.spec
    if isinstance(spec, CommSpec):
        return (("comm", row.device),)
    if isinstance(spec, TrendSpec):
        keys = []
        if spec.rise_per_min is not None or spec.forecast_direction > 0:
            keys.append(("rise", row.device, row.point))
        if spec.fall_per_min is not None or spec.forecast_direction < 0:
            keys.append(("fall", row.device, row.point))
        return tuple(keys)
    if isinstance(spec, ConditionSpec):
        return (("condition", row.device, spec.predicates),)
    return ((row.rule_type, row.device, row.point),)


def _bind_predicate(
    p: Predicate, points: Mapping[str, int], *, alternative: bool = False
) -> BoundPredicate:
    return BoundPredicate(
        point_index=points[p.point],
        op=p.op,
        value=math.nan if p.value is None else p.value,
        ref_index=points[p.ref] if p.ref is not None else -1,
        factor=p.factor,
        bit=-1 if p.bit is None else p.bit,
        values=tuple(p.values or ()),
        magnitude=p.abs,
        alternative=alternative,
    )


def bind(
    points: Sequence[PointRef],
    packs: Sequence[RulePack],
    overrides: Overrides | None = None,
    n_devices: int | None = None,
    limits_reasons: Mapping[str, str] | None = None,
) -> BindingPlan:
    """Bind every enabled rule of ``packs`` to the matching points, applying site overrides.

    Rules of a pack with ``positions`` bind only devices whose ``position`` tag is one of them.
    Raises :class:`RulesConfigError` for an override naming an unknown device, rule or level, one
    whose rule does not bind to that device, or one that breaks the level ordering; for a device
    whose ``position`` no position-scoped pack of its kind lists; for two rules of different
    packs that make the same check on the same reading (naming both); for a limit looser than a
    position-table rule's without a reason in ``limits_reasons`` (``{device: reason}``); and for
    a power-off rule on a device with no ``area`` tag.
    """
    return _Binder(points, packs, overrides or {}, n_devices, limits_reasons or {}).bind()

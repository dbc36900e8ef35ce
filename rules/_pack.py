"""Rule packs: the YAML schema, its validation and ``load_packs``.

A pack is a list of rules. Every rule binds to points by device profile ``kind``, point name and,
optionally, device tags; every limit names the standard (and clause) it comes from. The models
here are frozen; the engine compiles them into arrays once, at construction.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._errors import RulesConfigError
from .yamlfile import YamlFileError, load_yaml, read_text_file

__all__ = [
    "POSITION_TAG",
    "CommRule",
    "ConditionRule",
    "DiscreteRule",
    "DurationRule",
    "ExposureRule",
    "FeedCheckRule",
    "Forecast",
    "LevelName",
    "LevelSpec",
    "PackRule",
    "PositionTable",
    "Predicate",
    "RateOfChangeRule",
    "Rule",
    "RuleBase",
    "RulePack",
    "StaleRule",
    "ThresholdRule",
    "check_threshold_levels",
    "load_packs",
    "parse_pack",
    "rule_type_of",
]

RULE_ID = r"^[a-z][a-z0-9_]*$"
#: A threshold level of another rule of the same pack: ``tank_level.HH``.
LEVEL_REF = r"^[a-z][a-z0-9_]*\.(LL|L|H|HH)$"
LevelRef = Annotated[str, Field(pattern=LEVEL_REF)]
#: The device tag that places a device (sensor position); packs with ``positions`` bind by it.
POSITION_TAG = "position"
PositionCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)]
LEVEL_NAME = r"^[A-Z][A-Z0-9_]*$"
LevelName = Literal["LL", "L", "H", "HH"]
THRESHOLD_LEVELS: tuple[LevelName, ...] = ("LL", "L", "H", "HH")
HIGH_LEVELS: tuple[LevelName, ...] = ("H", "HH")
LOW_LEVELS: tuple[LevelName, ...] = ("L", "LL")
MESSAGE_FIELDS = frozenset({"device", "point", "rule", "level", "value", "limit", "unit", "title"})
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")

Priority = Annotated[int, Field(ge=1, le=4)]
Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    """Frozen model that names unknown keys together with the keys it allows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = set(cls.model_fields)
            for key in data:
                if key not in allowed:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key",
                        {"key": str(key), "allowed": ", ".join(sorted(allowed))},
                    )
        return data


class LevelSpec(_Model):
    """One level of a threshold rule: the limit, the reset (return) value, priority, source."""

    limit: FiniteFloat
    reset: FiniteFloat | None = None
    priority: Priority
    source: Annotated[str, Field(min_length=3)]
    action: str = ""
    #: Reaching this level demands power-off of the device's ``area`` (断电), held until the
    #: value is back below ``reset`` (复电). High levels only.
    power_off: bool = False
    #: The power-off range (断电范围) in words: what the area's power-off cuts.
    power_off_range: str = ""

    @model_validator(mode="after")
    def _range_with_power_off(self) -> LevelSpec:
        if self.power_off and len(self.power_off_range.strip()) < 3:
            raise ValueError("a power-off level names its power_off_range (断电范围)")
        if self.power_off_range and not self.power_off:
            raise ValueError("power_off_range belongs to a level with power_off: true")
        return self


class RuleBase(_Model):
    """What every rule has: id, title, the device kinds and tags it binds to, its message."""

    id: Annotated[str, Field(pattern=RULE_ID, max_length=64)]
    title: Annotated[str, Field(min_length=1)]
    kind: str | list[str]
    tags: dict[str, str | list[str | None] | None] = Field(default_factory=dict)
    exclude_tags: dict[str, str | list[str | None] | None] = Field(default_factory=dict)
    message: str | None = None
    unit: str | None = None
    enabled: bool = True
    #: A device the rule selects must have every point the rule needs: a device lacking one is
    #: a config error. Without it such a device is listed (``BindingPlan.missing_points``).
    required: bool = False

    #: Keys a site may override per device (``overrides: {device: {rule: {key: value}}}``).
    overridable: ClassVar[tuple[str, ...]] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,) if isinstance(self.kind, str) else tuple(self.kind)

    @field_validator("message")
    @classmethod
    def _message_fields(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"malformed template: {exc}") from exc
        unknown = names - MESSAGE_FIELDS
        if unknown:
            raise ValueError(
                f"unknown placeholder {sorted(unknown)[0]!r}; allowed: "
                + ", ".join(sorted(MESSAGE_FIELDS))
            )
        return value


class PointRule(RuleBase):
    point: str | None = None
    points: list[str] | None = None

    @model_validator(mode="after")
    def _one_point_key(self) -> PointRule:
        if (self.point is None) == (self.points is None):
            raise ValueError("give exactly one of 'point' (a name or '*') or 'points' (a list)")
        return self

    @property
    def point_names(self) -> tuple[str, ...]:
        """Point names this rule applies to; ``("*",)`` means every point of the device."""
        return (self.point,) if self.point is not None else tuple(self.points or ())


def check_threshold_levels(
    levels: Mapping[LevelName, tuple[float, float]],
) -> tuple[LevelName, str, float, str] | None:
    """Check the ordering of threshold levels given as ``{level: (limit, reset)}``.

    Returns ``(level, key, value, allowed)`` for the first problem, ``None`` when consistent.
    Requirements: high levels reset at or below their limit, low levels at or above; LL ≤ L < H ≤
    HH for limits and resets alike; and the two sides never overlap, even in their hysteresis bands.
    """
    pairs: tuple[tuple[LevelName, LevelName], ...] = (("LL", "L"), ("H", "HH"))
    for lower, upper in pairs:
        if lower in levels and upper in levels:
            for i, key in ((0, "limit"), (1, "reset")):
                if levels[upper][i] < levels[lower][i]:
                    return (
                        upper,
                        key,
                        levels[upper][i],
                        f"{upper} {key} must be ≥ {lower} {key} {levels[lower][i]:g}",
                    )
    for name, (limit, reset) in levels.items():
        if name in HIGH_LEVELS and reset > limit:
            return name, "reset", reset, f"a high level resets at or below its limit {limit:g}"
        if name in LOW_LEVELS and reset < limit:
            return name, "reset", reset, f"a low level resets at or above its limit {limit:g}"
    high = [levels[n] for n in HIGH_LEVELS if n in levels]
    low = [levels[n] for n in LOW_LEVELS if n in levels]
    if high and low:
        top_low_limit = max(lim for lim, _ in low)
        top_low_reset = max(rst for _, rst in low)
        low_high_limit = min(lim for lim, _ in high)
        low_high_reset = min(rst for _, rst in high)
        if not (top_low_reset < low_high_limit and top_low_limit < low_high_reset):
            return (
                "L" if "L" in levels else "LL",
                "limit",
                top_low_limit,
                "low levels (with their reset band) must stay below the high levels "
                f"(lowest high limit {low_high_limit:g}, reset {low_high_reset:g})",
            )
    return None


class ThresholdRule(PointRule):
    """Multi-level limit alarm (LL/L/H/HH) with deadband (reset values) and on/off delays."""

    type: Literal["threshold"]
    levels: dict[LevelName, LevelSpec]
    #: Compare the magnitude √(point² + magnitude_with²) of two points (the axes of a tilt
    #: sensor) instead of one value; the alarm sits on ``point``.
    magnitude_with: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] | None = None
    deadband: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0
    on_delay_s: Seconds = 0.0
    off_delay_s: Seconds = 0.0

    overridable: ClassVar[tuple[str, ...]] = THRESHOLD_LEVELS

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRule:
        if not self.levels:
            raise ValueError("a threshold rule needs at least one of LL, L, H, HH")
        if self.magnitude_with is not None and (self.point is None or self.point == "*"):
            raise ValueError("'magnitude_with' needs one named 'point' (the other axis)")
        problem = check_threshold_levels(self.resolved_levels())
        if problem is not None:
            level, key, value, allowed = problem
            raise ValueError(f"levels.{level}.{key} = {value:g}: {allowed}")
        for name in LOW_LEVELS:
            spec = self.levels.get(name)
            if spec is not None and spec.power_off:
                raise ValueError(f"levels.{name}.power_off: only high levels (H, HH) cut power")
        return self

    @property
    def power_off_level(self) -> LevelName | None:
        """The lowest high level that demands power-off (``None``: the rule never cuts)."""
        return next(
            (n for n in HIGH_LEVELS if n in self.levels and self.levels[n].power_off),
            None,
        )

    def resolved_levels(self) -> dict[LevelName, tuple[float, float]]:
        """``{level: (limit, reset)}`` with the default reset taken from ``deadband``."""
        out: dict[LevelName, tuple[float, float]] = {}
        for name in THRESHOLD_LEVELS:
            spec = self.levels.get(name)
            if spec is None:
                continue
            if spec.reset is not None:
                reset = spec.reset
            elif name in HIGH_LEVELS:
                reset = spec.limit - self.deadband
            else:
                reset = spec.limit + self.deadband
            out[name] = (spec.limit, reset)
        return out


class Predicate(_Model):
    """One test of one point: ``{point: running, op: eq, value: 0}``, ``{point: speed, op: gt,
    ref: rated_speed, factor: 1.15}``, ``{point: level_pct, op: ge, limit_of: tank_level.HH}``
    (the limit of that level of that threshold rule on the same device, after its overrides),
    ``{point: alarm_bits, op: bit_set, bit: 3}`` or ``{point: status, op: in, values: [3, 8]}``."""

    point: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "bit_set", "bit_clear", "in", "not_in"]
    value: FiniteFloat | None = None
    limit_of: LevelRef | None = None
    ref: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] | None = None
    factor: FiniteFloat = 1.0
    bit: Annotated[int, Field(ge=0, le=63)] | None = None
    values: list[FiniteFloat] | None = None
    #: Compare the magnitude ``|value|`` (a signed speed, say) instead of the value.
    abs: bool = False

    @model_validator(mode="after")
    def _operands(self) -> Predicate:
        if self.abs and self.op not in COMPARISONS:
            raise ValueError(f"'abs' applies to the comparisons {', '.join(COMPARISONS)} only")
        if self.op in COMPARISONS:
            given = [k for k in ("value", "ref", "limit_of") if getattr(self, k) is not None]
            if len(given) != 1:
                raise ValueError(
                    f"op {self.op!r} needs exactly one of 'value', 'ref' or 'limit_of'"
                )
            if self.bit is not None or self.values is not None:
                raise ValueError(f"op {self.op!r} takes 'value' or 'ref' (+ 'factor') only")
        elif self.limit_of is not None:
            raise ValueError(f"'limit_of' applies to the comparisons {', '.join(COMPARISONS)}")
        elif self.op in ("bit_set", "bit_clear"):
            if self.bit is None or self.value is not None or self.ref or self.values:
                raise ValueError(f"op {self.op!r} takes 'bit' (0..63) only")
        else:
            if not self.values or self.value is not None or self.ref or self.bit is not None:
                raise ValueError(f"op {self.op!r} takes a non-empty 'values' list only")
            if len(self.values) > 32:
                raise ValueError("at most 32 values")
        return self

    @property
    def points_used(self) -> tuple[str, ...]:
        return (self.point,) if self.ref is None else (self.point, self.ref)


class Forecast(_Model):
    """Time-to-limit forecast of a rate-of-change rule: alarm when the fitted trend reaches
    ``limit`` (or ``limit_of``, a level of a threshold rule of the pack on the same device, after
    its overrides: ``tank_level.HH``) within ``within_s`` seconds (0 = report the forecast only)."""

    limit: FiniteFloat | None = None
    limit_of: LevelRef | None = None
    direction: Literal["rising", "falling"]
    within_s: Seconds = 0.0

    @model_validator(mode="after")
    def _one_limit(self) -> Forecast:
        if (self.limit is None) == (self.limit_of is None):
            raise ValueError("give exactly one of 'limit' or 'limit_of' (e.g. tank_level.HH)")
        return self


class RateOfChangeRule(PointRule):
    """Least-squares slope over a time window, per minute, with an optional forecast."""

    type: Literal["rate_of_change"]
    window_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    min_samples: Annotated[int, Field(ge=2, le=4096)] = 3
    max_samples: Annotated[int, Field(ge=2, le=4096)] = 64
    rise_per_min: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    fall_per_min: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    forecast: Forecast | None = None
    #: Tests (points of the same device) that must all hold for the alarm to be raised, e.g.
    #: ``[{point: outflow, op: le, value: 0.5}]``: a falling level with no outflow is a leak.
    conditions: Annotated[list[Predicate], Field(max_length=16)] = Field(default_factory=list)
    level: Annotated[str, Field(pattern=LEVEL_NAME)] = "ROC"
    priority: Priority
    source: Annotated[str, Field(min_length=3)]
    on_delay_s: Seconds = 0.0
    off_delay_s: Seconds = 0.0

    overridable: ClassVar[tuple[str, ...]] = ("rise_per_min", "fall_per_min", "window_s")

    @model_validator(mode="after")
    def _has_condition(self) -> RateOfChangeRule:
        no_rate = self.rise_per_min is None and self.fall_per_min is None
        if no_rate and (self.forecast is None or self.forecast.within_s <= 0):
            raise ValueError("give rise_per_min, fall_per_min or a forecast with within_s > 0")
        if self.min_samples > self.max_samples:
            raise ValueError("min_samples must not exceed max_samples")
        return self


class StaleRule(PointRule):
    """No fresh sample for ``max_age_s`` seconds, or the gateway marked the point stale."""

    type: Literal["stale"]
    max_age_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    level: Annotated[str, Field(pattern=LEVEL_NAME)] = "STALE"
    priority: Priority
    source: Annotated[str, Field(min_length=3)]
    on_delay_s: Seconds = 0.0
    off_delay_s: Seconds = 0.0

    overridable: ClassVar[tuple[str, ...]] = ("max_age_s",)


class ConditionRule(RuleBase):
    """Common part of discrete and duration rules (a conjunction of predicates on one device)."""

    level: Annotated[str, Field(pattern=LEVEL_NAME)]
    priority: Priority
    source: Annotated[str, Field(min_length=3)]
    report_point: str | None = None
    off_delay_s: Seconds = 0.0
    #: While active, demands power-off of the device's ``area`` (e.g. fault lockout, 故障闭锁).
    power_off: bool = False

    def predicates(self) -> tuple[Predicate, ...]:
        """Tests that must all hold."""
        raise NotImplementedError

    def alternatives(self) -> tuple[Predicate, ...]:
        """Tests of which at least one must hold as well (none: no such clause)."""
        return ()

    def hold_s(self) -> float:
        raise NotImplementedError


class DiscreteRule(ConditionRule):
    """One predicate on one point: a bit set, a code equal to / in a set, a flag."""

    type: Literal["discrete"]
    when: Predicate
    on_delay_s: Seconds = 0.0

    overridable: ClassVar[tuple[str, ...]] = ("on_delay_s",)

    def predicates(self) -> tuple[Predicate, ...]:
        return (self.when,)

    def hold_s(self) -> float:
        return self.on_delay_s


class DurationRule(ConditionRule):
    """All predicates of ``all`` — and at least one of ``any``, when given — (points of one
    device) hold for ``for_s`` seconds."""

    type: Literal["duration"]
    all: Annotated[list[Predicate], Field(min_length=1, max_length=16)]
    any: Annotated[list[Predicate], Field(min_length=1, max_length=16)] | None = None
    for_s: Seconds

    overridable: ClassVar[tuple[str, ...]] = ("for_s",)

    def predicates(self) -> tuple[Predicate, ...]:
        return tuple(self.all)

    def alternatives(self) -> tuple[Predicate, ...]:
        return tuple(self.any or ())

    def hold_s(self) -> float:
        return self.for_s


class CommRule(RuleBase):
    """Communication failure: the device is offline (its ``device_online`` flag is false)."""

    type: Literal["comm"]
    level: Annotated[str, Field(pattern=LEVEL_NAME)] = "COMM"
    priority: Priority
    source: Annotated[str, Field(min_length=3)]
    on_delay_s: Seconds = 0.0
    off_delay_s: Seconds = 0.0
    #: While active, demands power-off of the device's ``area`` (fault lockout, 故障闭锁).
    power_off: bool = False

    overridable: ClassVar[tuple[str, ...]] = ("on_delay_s",)


class FeedCheckRule(PointRule):
    """Power-off verification (馈电): while power-off is demanded in the device's ``area``, its
    feed point (1 = power on) must read 0 within ``for_s`` seconds, whatever a relay reports."""

    type: Literal["feed_check"]
    level: Annotated[str, Field(pattern=LEVEL_NAME)] = "FEED_ABNORMAL"
    for_s: Seconds
    priority: Priority
    source: Annotated[str, Field(min_length=3)]
    off_delay_s: Seconds = 0.0

    overridable: ClassVar[tuple[str, ...]] = ("for_s",)


MgPerM3 = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class ExposureRule(PointRule):
    """Occupational exposure of one substance (GBZ 2.1-2019): rolling 8-h TWA, 15-min STEL,
    MAC (ceiling) and, for a substance with a PC-TWA but no PC-STEL, the excursion limits.

    Limits are in mg/m³ as the standard gives them; binding converts them to the unit of each
    point (``ppm`` at 20 °C via ``molar_mass``, or ``mg/m3``). The rows it makes and how each is
    evaluated are described in ``rules/_exposure.py`` and docs/rules.md.
    """

    type: Literal["exposure"]
    substance: Annotated[str, Field(min_length=1, max_length=64)]
    #: g/mol, for the ppm conversion.
    molar_mass: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    pc_twa: MgPerM3 | None = None
    pc_stel: MgPerM3 | None = None
    mac: MgPerM3 | None = None
    #: Priority of the limit alarms (TWA, STEL, MAC, excursion) and of the TWA forecast.
    priority: Priority
    forecast_priority: Priority = 3
    source: Annotated[str, Field(min_length=3)]

    overridable: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _limits(self) -> ExposureRule:
        if (self.pc_twa is None) == (self.mac is None):
            raise ValueError(
                "give either mac (a ceiling substance) or pc_twa (optionally with pc_stel), "
                "as the substance's row in GBZ 2.1-2019 table 1 has them"
            )
        if self.pc_stel is not None:
            if self.pc_twa is None:
                raise ValueError("pc_stel needs pc_twa")
            if self.pc_stel <= self.pc_twa:
                raise ValueError(f"pc_stel {self.pc_stel:g} must be above pc_twa {self.pc_twa:g}")
        return self


#: Every rule type of a pack. A new rule type is a model here and a binder in
#: ``rules/_binding/`` (see docs/rules.md, "Adding a rule type").
PackRule = (
    ThresholdRule
    | RateOfChangeRule
    | StaleRule
    | DiscreteRule
    | DurationRule
    | CommRule
    | ExposureRule
    | FeedCheckRule
)
Rule = Annotated[PackRule, Field(discriminator="type")]


def rule_type_of(model: type[RuleBase]) -> str:
    """The ``type:`` value that selects ``model`` in a pack (its ``type`` field's literal)."""
    field = model.model_fields.get("type")
    literal = get_args(field.annotation) if field is not None else ()
    if len(literal) != 1 or not isinstance(literal[0], str):
        raise TypeError(f"{model.__name__} has no `type: Literal[...]` field")
    return literal[0]


RULE_MODELS: tuple[type[RuleBase], ...] = get_args(PackRule)
RULE_TYPES: tuple[str, ...] = tuple(rule_type_of(model) for model in RULE_MODELS)


class PositionTable(_Model):
    """The threshold rules of ``point`` on ``kind`` form a table by position (e.g. the methane
    table of 《煤矿安全规程》 art. 498): every code of the pack's ``positions`` has exactly one
    such rule, selected by ``tags: {position: …}``, and none binds without a position."""

    kind: str
    point: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    source: Annotated[str, Field(min_length=3)]


def _in_table(table: PositionTable, rule: PackRule) -> bool:
    return (
        isinstance(rule, ThresholdRule)
        and table.kind in rule.kinds
        and table.point in rule.point_names
    )


def _check_table(table: PositionTable, positions: Sequence[str], rules: Sequence[PackRule]) -> None:
    if not positions:
        raise ValueError("position_table needs the pack's positions")
    covered: dict[str, str] = {}
    for rule in rules:
        if not _in_table(table, rule):
            continue
        if POSITION_TAG not in rule.tags or rule.exclude_tags:
            raise ValueError(
                f"rule {rule.id!r}: a {table.point} rule of the position table binds by "
                f"tags.{POSITION_TAG} (one or more positions); no fallback rule"
            )
        wanted = rule.tags[POSITION_TAG]
        for value in wanted if isinstance(wanted, list) else [wanted]:
            if value in covered:
                raise ValueError(
                    f"position {value!r} has two {table.point} rules: "
                    f"{covered[value]!r} and {rule.id!r}"
                )
            covered[str(value)] = rule.id
    missing = [v for v in positions if v not in covered]
    if missing:
        raise ValueError(f"position_table: no {table.point} rule for {', '.join(missing)}")


def level_refs(rule: PackRule) -> tuple[str, ...]:
    """The ``rule.LEVEL`` references of a rule's predicates and forecast."""
    refs: list[str | None] = []
    if isinstance(rule, RateOfChangeRule):
        refs += [c.limit_of for c in rule.conditions]
        refs.append(rule.forecast.limit_of if rule.forecast else None)
    elif isinstance(rule, ConditionRule):
        refs += [p.limit_of for p in (*rule.predicates(), *rule.alternatives())]
    return tuple(ref for ref in refs if ref is not None)


def _check_level_refs(rules: Sequence[PackRule]) -> None:
    """Each ``limit_of`` names a level of a threshold rule of the pack."""
    by_id = {rule.id: rule for rule in rules}
    for rule in rules:
        for ref in level_refs(rule):
            rule_id, level = ref.split(".")
            target = by_id.get(rule_id)
            if not isinstance(target, ThresholdRule) or level not in target.levels:
                raise ValueError(
                    f"rule {rule.id!r}: limit_of {ref!r} names no level of a threshold rule of "
                    "this pack"
                )


class RulePack(_Model):
    """A named set of rules loaded from one YAML file.

    ``positions`` (optional) is the pack's vocabulary of the device tag ``position`` (code →
    description with its source). A pack that has one binds only devices whose ``position`` is
    one of its codes, so packs for different places (a coal face, a tank farm) share a device
    kind without judging each other's devices. Rules narrow it further with ``tags: {position:
    …}``, which must name codes of the vocabulary.
    """

    pack: Annotated[str, Field(pattern=RULE_ID)]
    title: str
    description: str = ""
    sources: dict[str, str] = Field(default_factory=dict)
    positions: dict[PositionCode, Annotated[str, Field(min_length=3)]] = Field(default_factory=dict)
    position_table: PositionTable | None = None
    rules: list[Rule]
    file: str = ""

    @model_validator(mode="after")
    def _unique_ids(self) -> RulePack:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        if self.position_table is not None:
            _check_table(self.position_table, list(self.positions), self.rules)
        _check_level_refs(self.rules)
        return self

    def table_rules(self) -> frozenset[str]:
        """Ids of the rules of the pack's position table (e.g. the methane table): their limits
        may be loosened per device only with a reason, and comm loss never hides their alarms."""
        table = self.position_table
        if table is None:
            return frozenset()
        return frozenset(rule.id for rule in self.rules if _in_table(table, rule))

    @property
    def kinds(self) -> frozenset[str]:
        """Device kinds the pack's enabled rules bind to."""
        return frozenset(kind for rule in self.rules if rule.enabled for kind in rule.kinds)

    def binds_position(self, tags: Mapping[str, str]) -> bool:
        """True when a device with these tags is in the pack's scope (always, without positions)."""
        return not self.positions or tags.get(POSITION_TAG) in self.positions


def _key_path(loc: Sequence[int | str]) -> str:
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in RULE_TYPES:
            pass  # the discriminator tag pydantic inserts after a rule's index
        elif part in ("function-after", "function-before", "[key]"):
            pass
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out


def _config_error(source: str, exc: ValidationError) -> RulesConfigError:
    err = exc.errors(include_url=False)[0]
    path = _key_path(err["loc"])
    ctx = err.get("ctx") or {}
    if err["type"] == "unknown_key":
        key = str(ctx["key"])
        return RulesConfigError(
            source,
            f"{path}.{key}" if path else key,
            key,
            f"unknown key; allowed keys: {ctx['allowed']}",
        )
    message = str(err["msg"]).removeprefix("Value error, ")
    return RulesConfigError(source, path, err.get("input"), message)


def parse_pack(data: Any, source: str) -> RulePack:
    """Validate an already-parsed YAML document as a rule pack."""
    if not isinstance(data, Mapping):
        raise RulesConfigError(source, "", type(data).__name__, "a rule pack is a mapping")
    if not data.keys() & {"pack", "title", "rules"}:
        # not a rule pack at all (say /etc/shadow): never echo what the file holds
        raise RulesConfigError(
            source, "", "a mapping without pack:", "a rule pack has pack:, title: and rules:"
        )
    try:
        pack = RulePack.model_validate({**data, "file": source})
    except ValidationError as exc:
        raise _config_error(source, exc) from None
    _check_positions(pack, source)
    return pack


def _check_positions(pack: RulePack, source: str) -> None:
    """Rules of a pack with a position vocabulary select positions of that vocabulary only."""
    if not pack.positions:
        return
    for index, rule in enumerate(pack.rules):
        for key in ("tags", "exclude_tags"):
            wanted = getattr(rule, key).get(POSITION_TAG)
            for code in wanted if isinstance(wanted, list) else [wanted]:
                if code is not None and code not in pack.positions:
                    raise RulesConfigError(
                        source,
                        f"rules[{index}].{key}.{POSITION_TAG}",
                        code,
                        f"a code of the pack's positions: {', '.join(pack.positions)}",
                    )


#: Largest rule pack file read (bytes); the shipped packs are under 20 kB.
MAX_PACK_BYTES = 2**20


def load_packs(paths: Iterable[Path | str]) -> list[RulePack]:
    """Load and validate rule packs from YAML files.

    Raises :class:`RulesConfigError` naming the file, the key path, the value and what is allowed,
    also when two packs define the same rule id (overrides address rules by id).
    """
    packs: list[RulePack] = []
    owner: dict[str, str] = {}
    for raw_path in paths:
        path = Path(raw_path)
        source = str(path)
        try:
            data = load_yaml(read_text_file(path, "rule pack", MAX_PACK_BYTES), path)
        except YamlFileError as exc:
            raise RulesConfigError(source, exc.where, exc.problem, exc.allowed) from None
        pack = parse_pack(data, source)
        for index, rule in enumerate(pack.rules):
            if rule.id in owner:
                raise RulesConfigError(
                    source,
                    f"rules[{index}].id",
                    rule.id,
                    f"rule ids are unique across packs; already defined in {owner[rule.id]}",
                )
            owner[rule.id] = source
        packs.append(pack)
    return packs

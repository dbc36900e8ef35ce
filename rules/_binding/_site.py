"""What every rule binder reads and writes while one site is bound: the devices, the site's
overrides, the position-table rules, and the one constructor of :class:`Binding`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rules._errors import RulesConfigError
from rules._model import PointRef
from rules._pack import CommRule, Predicate, RuleBase, RulePack, ThresholdRule

from ._overrides import Changes, Overrides, threshold_levels
from ._plan import (
    AREA_TAG,
    Binding,
    BlockKind,
    BoundPredicate,
    LoosenedLimit,
    MissingPoints,
    Spec,
)

__all__ = ["BindSite", "BoundDevice", "bind_predicate", "devices_of"]

TagWanted = str | list[str | None] | None


@dataclass
class BoundDevice:
    """One device of the point table: its kind, tags and ``{point name: point index}``."""

    name: str
    index: int
    kind: str
    tags: Mapping[str, str]
    points: dict[str, int]


def devices_of(points: Sequence[PointRef]) -> dict[str, BoundDevice]:
    """The devices of the point table, by name (checking each device's points agree)."""
    devices: dict[str, BoundDevice] = {}
    for i, ref in enumerate(points):
        dev = devices.get(ref.device)
        if dev is None:
            dev = devices[ref.device] = BoundDevice(
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


def _tag_in(tags: Mapping[str, str], key: str, wanted: TagWanted) -> bool:
    allowed = wanted if isinstance(wanted, list) else [wanted]
    return tags.get(key) in allowed  # None in the list: the tag is absent


def tags_match(rule: RuleBase, tags: Mapping[str, str]) -> bool:
    """All of the rule's ``tags`` match and none of its ``exclude_tags`` does."""
    if not all(_tag_in(tags, key, wanted) for key, wanted in rule.tags.items()):
        return False
    return not any(_tag_in(tags, key, wanted) for key, wanted in rule.exclude_tags.items())


def bind_predicate(
    p: Predicate,
    points: Mapping[str, int],
    *,
    alternative: bool = False,
    value: float | None = None,
) -> BoundPredicate:
    """A predicate of a rule with its point names resolved to point indices (``value``: the
    resolved ``limit_of`` of the predicate)."""
    if value is None:
        value = p.value
    return BoundPredicate(
        point_index=points[p.point],
        op=p.op,
        value=math.nan if value is None else value,
        ref_index=points[p.ref] if p.ref is not None else -1,
        factor=p.factor,
        bit=-1 if p.bit is None else p.bit,
        values=tuple(p.values or ()),
        magnitude=p.abs,
        alternative=alternative,
    )


class BindSite:
    """The state of binding one site: devices by kind, overrides (and which were applied),
    position-table rules, per-device reasons for looser limits and the limits they loosened."""

    def __init__(
        self,
        points: Sequence[PointRef],
        packs: Sequence[RulePack],
        overrides: Overrides,
        n_devices: int | None,
        limits_reasons: Mapping[str, str],
    ) -> None:
        self.points = points
        self.devices = devices_of(points)
        self.packs = packs
        self.rules = [(pack, rule) for pack in packs for rule in pack.rules if rule.enabled]
        self.rule_by_id = {rule.id: rule for pack in packs for rule in pack.rules}
        self.rule_ids = set(self.rule_by_id)
        self.table_rules: frozenset[str] = frozenset().union(
            *(pack.table_rules() for pack in packs)
        )
        self.limits_reasons = limits_reasons
        self.loosened: list[LoosenedLimit] = []
        self.missing: list[MissingPoints] = []
        self.overrides = overrides
        max_index = max((d.index for d in self.devices.values()), default=-1)
        self.n_devices = max_index + 1 if n_devices is None else n_devices
        if self.n_devices <= max_index:
            raise RulesConfigError(
                "n_devices", "", n_devices, f"more than the highest device_index {max_index}"
            )
        self.applied: set[tuple[str, str]] = set()
        self.by_kind: dict[str, list[BoundDevice]] = {}
        for dev in self.devices.values():
            self.by_kind.setdefault(dev.kind, []).append(dev)
        # devices with a communication rule: their other alarms are suppressed while offline
        self.comm_devices = {
            dev.name
            for pack, rule in self.rules
            if isinstance(rule, CommRule)
            for dev in self.matching(pack, rule)
        }

    def matching(self, pack: RulePack, rule: RuleBase) -> Iterable[BoundDevice]:
        """Devices of the rule's kinds in the pack's positions whose tags the rule selects."""
        for kind in rule.kinds:
            for dev in self.by_kind.get(kind, ()):
                if pack.binds_position(dev.tags) and tags_match(rule, dev.tags):
                    yield dev

    def changes(self, device: str, rule_id: str) -> Changes:
        """The site's overrides of rule ``rule_id`` on ``device`` (marked as applied)."""
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

    def lacks(self, rule: RuleBase, dev: BoundDevice, needed: Iterable[str]) -> None:
        """Record that ``dev`` lacks the points of ``needed`` it does not have, so ``rule`` does
        not bind there; a ``required`` rule makes that a :class:`RulesConfigError`."""
        missing = tuple(dict.fromkeys(name for name in needed if name not in dev.points))
        if not missing:
            return
        if rule.required:
            raise RulesConfigError(
                "devices",
                f"{dev.name} (kind {dev.kind!r})",
                ", ".join(missing),
                f"the points rule {rule.id!r} needs: the pack marks it required, so a device it "
                "selects must have them (or exclude the device with tags)",
            )
        self.missing.append(MissingPoints(dev.name, rule.id, missing))

    def level_limit(self, ref: str, dev: BoundDevice) -> float:
        """The limit of ``ref`` (``rule.LEVEL``, a threshold rule checked at pack load) on
        ``dev``, with the device's overrides of that rule: one setpoint, one place."""
        rule_id, level = ref.split(".")
        rule = self.rule_by_id[rule_id]
        assert isinstance(rule, ThresholdRule)  # checked by the pack model
        levels = threshold_levels(
            rule,
            self.changes(dev.name, rule_id),
            f"{dev.name}.{rule_id}",
            device=dev.name,
            table_rule=rule_id in self.table_rules,
            reason=self.limits_reasons.get(dev.name),
        )
        return next(limit for name, (limit, _) in levels.items() if name == level)

    def predicate(
        self, p: Predicate, dev: BoundDevice, *, alternative: bool = False
    ) -> BoundPredicate:
        """``p`` bound to ``dev``'s points, a ``limit_of`` resolved for ``dev``."""
        value = self.level_limit(p.limit_of, dev) if p.limit_of is not None else None
        return bind_predicate(p, dev.points, alternative=alternative, value=value)

    def unit(self, rule: RuleBase, index: int) -> str:
        """The unit of an alarm on point ``index``: the rule's, else the point's."""
        return rule.unit if rule.unit is not None else self.points[index].unit

    def binding(
        self,
        rule: RuleBase,
        rule_type: str,
        dev: BoundDevice,
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
        """One alarm row. ``single`` is ``(priority, limit)`` of a one-level alarm."""
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
            rule_type=rule_type,
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

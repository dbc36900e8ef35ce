"""Discrete and duration rules: predicates on points of one device (all must hold, and one of
the alternatives when given), for ``for_s`` seconds in a duration rule."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rules._model import Level
from rules._pack import COMPARISONS, ConditionRule, DiscreteRule, DurationRule

from ._overrides import scalar_overrides
from ._plan import BlockKind, ConditionSpec
from ._rule_binder import Row, RuleBinder
from ._site import BindSite, BoundDevice

__all__ = ["DiscreteBinder", "DurationBinder"]

C = TypeVar("C", bound=ConditionRule)


class ConditionBinder(RuleBinder[C]):
    """One row per device that has every point the rule's predicates (and report point) use."""

    block = BlockKind.CONDITION

    def rows(self, rule: C, devices: Iterable[BoundDevice], site: BindSite) -> Iterator[Row]:
        preds = rule.predicates()
        alternatives = rule.alternatives()
        report = rule.report_point or preds[0].point
        needed = tuple(
            dict.fromkeys([*(n for p in (*preds, *alternatives) for n in p.points_used), report])
        )
        for dev in devices:
            if not dev.points.keys() >= set(needed):
                # a rule on the device's state (a lockout, a trapped car): never silently absent
                site.lacks(rule, dev, needed)
                continue
            changes = scalar_overrides(
                rule, site.changes(dev.name, rule.id), f"{dev.name}.{rule.id}"
            )
            hold = changes.get("for_s", changes.get("on_delay_s", rule.hold_s()))
            bound = tuple(site.predicate(p, dev) for p in preds) + tuple(
                site.predicate(p, dev, alternative=True) for p in alternatives
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
            binding = site.binding(
                rule,
                self.rule_type,
                dev,
                report,
                unit=site.unit(rule, report_index),
                block=self.block,
                spec=ConditionSpec(bound, report_index),
                level_name=rule.level,
                single=(rule.priority, limit),
                on_delay=hold,
                off_delay=rule.off_delay_s,
                power_off_code=int(Level.ACTIVE) if rule.power_off else 0,
                never_hidden=rule.power_off,
            )
            # the same predicates on the same device are the same check, whatever the type
            yield Row((report_index,), binding, (("condition", dev.name, bound),))


class DiscreteBinder(ConditionBinder[DiscreteRule]):
    rule_class = DiscreteRule
    default_message = "{title}: {device}/{point} {level} (value {value})"


class DurationBinder(ConditionBinder[DurationRule]):
    rule_class = DurationRule
    default_message = "{title}: {device}/{point} {level}"

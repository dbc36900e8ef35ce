"""Rate-of-change rules: a least-squares slope per minute over a window, with an optional
time-to-limit forecast and conditions on other points of the device."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator

from rules._pack import RateOfChangeRule

from ._overrides import scalar_overrides
from ._plan import BlockKind, TrendSpec
from ._rule_binder import Row, RuleBinder, point_targets
from ._site import BindSite, BoundDevice

__all__ = ["TrendBinder"]


class TrendBinder(RuleBinder[RateOfChangeRule]):
    rule_class = RateOfChangeRule
    block = BlockKind.TREND
    default_message = "{title}: {device}/{point} changing {value} {unit}/min (limit {limit})"

    def rows(
        self, rule: RateOfChangeRule, devices: Iterable[BoundDevice], site: BindSite
    ) -> Iterator[Row]:
        needed = tuple(dict.fromkeys(n for c in rule.conditions for n in c.points_used))
        fc = rule.forecast
        for dev, name, index in point_targets(rule, devices, site):
            if not dev.points.keys() >= set(needed):
                site.lacks(rule, dev, needed)  # the reading is there, a condition's is not
                continue
            changes = scalar_overrides(
                rule, site.changes(dev.name, rule.id), f"{dev.name}.{rule.id}"
            )
            forecast_limit = None
            if fc is not None:
                forecast_limit = (
                    fc.limit if fc.limit_of is None else site.level_limit(fc.limit_of, dev)
                )
            rise = changes.get("rise_per_min", rule.rise_per_min)
            fall = changes.get("fall_per_min", rule.fall_per_min)
            spec = TrendSpec(
                index,
                changes.get("window_s", rule.window_s),
                rule.min_samples,
                rule.max_samples,
                rise,
                fall,
                forecast_limit,
                (1 if fc.direction == "rising" else -1) if fc else 0,
                fc.within_s if fc else 0.0,
                tuple(site.predicate(c, dev) for c in rule.conditions),
            )
            if rise is not None:
                limit = rise
            elif fall is not None:
                limit = -fall
            else:
                limit = math.nan if forecast_limit is None else forecast_limit
            binding = site.binding(
                rule,
                self.rule_type,
                dev,
                name,
                unit=site.unit(rule, index),
                block=self.block,
                spec=spec,
                level_name=rule.level,
                single=(rule.priority, limit),
                on_delay=rule.on_delay_s,
                off_delay=rule.off_delay_s,
            )
            # a rising and a falling check of one reading are different checks
            checks: list[Hashable] = []
            if spec.rise_per_min is not None or spec.forecast_direction > 0:
                checks.append(("rise", dev.name, name))
            if spec.fall_per_min is not None or spec.forecast_direction < 0:
                checks.append(("fall", dev.name, name))
            yield Row((index,), binding, tuple(checks))

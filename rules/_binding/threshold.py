"""Threshold rules: multi-level limits (LL/L/H/HH) on one point, or on the magnitude of two."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from rules._model import Level
from rules._pack import LevelName, ThresholdRule

from ._overrides import threshold_levels
from ._plan import BlockKind, ThresholdSpec
from ._rule_binder import Row, RuleBinder, point_targets
from ._site import BindSite, BoundDevice

__all__ = ["ThresholdBinder"]

LEVEL_CODES: dict[LevelName, Level] = {"L": Level.L, "LL": Level.LL, "H": Level.H, "HH": Level.HH}


class ThresholdBinder(RuleBinder[ThresholdRule]):
    rule_class = ThresholdRule
    block = BlockKind.THRESHOLD
    default_message = "{title}: {device}/{point} {level} {value} {unit} (limit {limit} {unit})"

    def rows(
        self, rule: ThresholdRule, devices: Iterable[BoundDevice], site: BindSite
    ) -> Iterator[Row]:
        table_levels = rule.resolved_levels()
        table_rule = rule.id in site.table_rules
        po_level = rule.power_off_level
        po_code = int(LEVEL_CODES[po_level]) if po_level is not None else 0
        for dev, name, index in point_targets(rule, devices, site):
            other = -1
            if rule.magnitude_with is not None:
                if rule.magnitude_with not in dev.points:
                    site.lacks(rule, dev, (rule.magnitude_with,))  # a single-axis tilt sensor
                    continue
                other = dev.points[rule.magnitude_with]
            level_changes = site.changes(dev.name, rule.id)
            if level_changes:
                levels = threshold_levels(
                    rule,
                    level_changes,
                    f"{dev.name}.{rule.id}",
                    device=dev.name,
                    table_rule=table_rule,
                    reason=site.limits_reasons.get(dev.name),
                    loosened=site.loosened,
                )
            else:
                levels = table_levels
            coded: dict[int, tuple[float, float]] = {
                int(LEVEL_CODES[n]): lv for n, lv in levels.items()
            }
            priorities = [0] * 6
            limits = [math.nan] * 6
            for n, code in LEVEL_CODES.items():
                if n in levels:
                    priorities[code] = rule.levels[n].priority
                    limits[code] = levels[n][0]
            least = min(coded, key=lambda c: (c % 2 == 0, c))  # L or H before LL / HH
            priorities[0] = priorities[least]
            binding = site.binding(
                rule,
                self.rule_type,
                dev,
                name,
                unit=site.unit(rule, index),
                block=self.block,
                spec=ThresholdSpec(index, coded, other),
                level_name="",
                priorities=tuple(priorities),
                limits=tuple(limits),
                on_delay=rule.on_delay_s,
                off_delay=rule.off_delay_s,
                power_off_code=po_code,
                never_hidden=po_code != 0 or table_rule,
            )
            yield self.row((index,), binding)

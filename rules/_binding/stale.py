"""Stale rules: no fresh sample of a point for ``max_age_s`` (or the gateway marked it stale)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rules._pack import StaleRule

from ._overrides import scalar_overrides
from ._plan import BlockKind, StaleSpec
from ._rule_binder import Row, RuleBinder, point_targets
from ._site import BindSite, BoundDevice

__all__ = ["StaleBinder"]


class StaleBinder(RuleBinder[StaleRule]):
    rule_class = StaleRule
    block = BlockKind.STALE
    default_message = "{title}: {device}/{point} no fresh data for {value} s (limit {limit} s)"

    def rows(
        self, rule: StaleRule, devices: Iterable[BoundDevice], site: BindSite
    ) -> Iterator[Row]:
        for dev, name, index in point_targets(rule, devices, site):
            changes = scalar_overrides(
                rule, site.changes(dev.name, rule.id), f"{dev.name}.{rule.id}"
            )
            max_age = changes.get("max_age_s", rule.max_age_s)
            binding = site.binding(
                rule,
                self.rule_type,
                dev,
                name,
                unit=site.unit(rule, index),
                block=self.block,
                spec=StaleSpec(index, max_age),
                level_name=rule.level,
                single=(rule.priority, max_age),
                on_delay=rule.on_delay_s,
                off_delay=rule.off_delay_s,
            )
            yield self.row((index,), binding)

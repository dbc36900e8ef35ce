"""Feed checks (馈电): a feed point that must read 0 while its area's power-off is demanded."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rules._pack import FeedCheckRule

from ._overrides import scalar_overrides
from ._plan import AREA_TAG, BlockKind, FeedSpec
from ._rule_binder import Row, RuleBinder
from ._site import BindSite, BoundDevice

__all__ = ["FeedBinder"]


class FeedBinder(RuleBinder[FeedCheckRule]):
    rule_class = FeedCheckRule
    block = BlockKind.FEED
    default_message = "{title}: {device}/{point} power still on in a power-off area"

    def rows(
        self, rule: FeedCheckRule, devices: Iterable[BoundDevice], site: BindSite
    ) -> Iterator[Row]:
        """One feed check per feed point of a device with an ``area`` tag."""
        for dev in devices:
            if dev.tags.get(AREA_TAG) is None:
                continue
            changes = scalar_overrides(
                rule, site.changes(dev.name, rule.id), f"{dev.name}.{rule.id}"
            )
            if rule.required:
                site.lacks(rule, dev, rule.point_names)
            for name in rule.point_names:
                index = dev.points.get(name)
                if index is None:
                    continue
                binding = site.binding(
                    rule,
                    self.rule_type,
                    dev,
                    name,
                    unit=site.unit(rule, index),
                    block=self.block,
                    spec=FeedSpec(index),
                    level_name=rule.level,
                    single=(rule.priority, 1.0),
                    on_delay=changes.get("for_s", rule.for_s),
                    off_delay=rule.off_delay_s,
                    never_hidden=True,
                )
                yield self.row((index,), binding)

"""Communication rules: one device-level alarm while the device is offline."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from rules._model import Level
from rules._pack import CommRule

from ._overrides import scalar_overrides
from ._plan import COMM_POINT, BlockKind, CommSpec
from ._rule_binder import Row, RuleBinder
from ._site import BindSite, BoundDevice

__all__ = ["CommBinder"]


class CommBinder(RuleBinder[CommRule]):
    rule_class = CommRule
    block = BlockKind.COMM
    default_message = "{title}: {device} offline"

    def rows(self, rule: CommRule, devices: Iterable[BoundDevice], site: BindSite) -> Iterator[Row]:
        for dev in devices:
            changes = scalar_overrides(
                rule, site.changes(dev.name, rule.id), f"{dev.name}.{rule.id}"
            )
            binding = site.binding(
                rule,
                self.rule_type,
                dev,
                COMM_POINT,
                unit="",
                block=self.block,
                spec=CommSpec(),
                level_name=rule.level,
                single=(rule.priority, math.nan),
                on_delay=changes.get("on_delay_s", rule.on_delay_s),
                off_delay=rule.off_delay_s,
                power_off_code=int(Level.ACTIVE) if rule.power_off else 0,
            )
            yield Row((dev.index,), binding, (("comm", dev.name),))

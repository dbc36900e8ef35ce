"""Exposure rules (GBZ 2.1-2019): per substance and point, one row per check (TWA, its
forecast, STEL or the excursion limits, MAC), limits converted to the point's unit."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from rules._errors import RulesConfigError
from rules._exposure import (
    CHECK_LEVELS,
    CHECK_SUFFIXES,
    Check,
    ExposureSpec,
    exposure_checks,
    limit_in_unit,
)
from rules._pack import ExposureRule

from ._overrides import scalar_overrides
from ._plan import BlockKind
from ._rule_binder import Row, RuleBinder, point_targets
from ._site import BindSite, BoundDevice

__all__ = ["ExposureBinder"]

#: Exposure substances by their last check: with a STEL, with the excursion limits, MAC only.
_EXPOSURE_CLASS = {Check.STEL: 0, Check.EXCURSION: 1, Check.MAC: 2}


class ExposureBinder(RuleBinder[ExposureRule]):
    rule_class = ExposureRule
    block = BlockKind.EXPOSURE
    default_message = "{title}: {device}/{point} {level} {value} {unit} (limit {limit} {unit})"

    def rows(
        self, rule: ExposureRule, devices: Iterable[BoundDevice], site: BindSite
    ) -> Iterator[Row]:
        checks = exposure_checks(rule.pc_twa, rule.pc_stel, rule.mac)
        for dev, name, index in point_targets(rule, devices, site):
            unit = site.unit(rule, index)
            scalar_overrides(rule, site.changes(dev.name, rule.id), f"{dev.name}.{rule.id}")
            limits: dict[str, float] = {}
            for key, mg in (("pc_twa", rule.pc_twa), ("pc_stel", rule.pc_stel), ("mac", rule.mac)):
                if mg is None:
                    limits[key] = math.nan
                    continue
                converted = limit_in_unit(mg, rule.molar_mass, unit, site.points[index].resolution)
                if converted is None:
                    raise RulesConfigError(
                        "rules",
                        f"{rule.id} on {dev.name}/{name}",
                        unit,
                        "an exposure rule's point measures in ppm or mg/m3 (its limits are "
                        "mg/m³, converted to ppm at 20 °C)",
                    )
                limits[key] = converted
            for check in checks:
                spec = ExposureSpec(
                    index,
                    rule.id,
                    rule.substance,
                    int(check),
                    pc_twa=limits["pc_twa"],
                    pc_stel=limits["pc_stel"],
                    mac=limits["mac"],
                )
                limit_reached = check != Check.TWA_FORECAST
                binding = site.binding(
                    rule,
                    self.rule_type,
                    dev,
                    name,
                    unit=unit,
                    block=self.block,
                    spec=spec,
                    level_name=CHECK_LEVELS[check],
                    single=(
                        rule.priority if limit_reached else rule.forecast_priority,
                        spec.limit(),
                    ),
                    on_delay=0.0,
                    off_delay=0.0,
                    rule_id=f"{rule.id}_{CHECK_SUFFIXES[check]}",
                )
                # rows by check, then substance class (STEL, excursion, MAC), then point: each
                # check's rows and channels are then contiguous (slices, no gathers per tick)
                yield self.row((int(check), _EXPOSURE_CLASS[checks[-1]], index), binding)

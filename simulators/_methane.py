"""The methane relay of each simulated detector, set from the site's methane table.

A detector's power-off relay cuts at the power-off limit of its ``position`` and restores below
the restore (reset) limit, as the site's rule packs state them (the coal-mine pack: 《煤矿安全规程》
art. 498), with the device's own ``limits`` applied; detectors sharing an ``area`` tag share a
supply, so one relay cutting turns every feed sensor of the area off. One source for the numbers:
the packs the gateway judges the readings with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from fieldmodel.model import Device
from gateway.config import SiteConfig
from rules import load_packs
from rules._pack import POSITION_TAG, ThresholdRule

__all__ = ["relay_settings"]


def _rule_for(device: Device, rules: list[tuple[ThresholdRule, str]]) -> ThresholdRule | None:
    for rule, point in rules:
        wanted = rule.tags.get(POSITION_TAG)
        values = wanted if isinstance(wanted, list) else [wanted]
        if device.tags.get(POSITION_TAG) in values and any(p.name == point for p in device.points):
            return rule
    return None


def relay_settings(site: SiteConfig) -> dict[str, Mapping[str, float]]:
    """Per gas device in a pack's position table: ``alarm_low``, ``alarm_high``, ``restore``
    (model parameters of :class:`simulators.gas.GasDetectorModel`) and ``area``."""
    packs = load_packs(list(site.rules)) if site.rules else []
    table: list[tuple[ThresholdRule, str]] = [
        (rule, pack.position_table.point)
        for pack in packs
        if pack.position_table is not None
        for rule in pack.rules
        if isinstance(rule, ThresholdRule) and rule.id in pack.table_rules()
    ]
    areas = sorted({d.tags["area"] for d in site.devices if d.kind == "gas" and "area" in d.tags})
    out: dict[str, Mapping[str, float]] = {}
    for device in site.devices:
        if device.kind != "gas":
            continue
        settings: dict[str, float] = {}
        if "area" in device.tags:
            settings["area"] = float(areas.index(device.tags["area"]))
        rule = _rule_for(device, table)
        if rule is not None:
            levels = rule.resolved_levels()
            for name, change in device.limits.get(rule.id, {}).items():
                if name in levels and isinstance(change, int | float):
                    levels[name] = (float(change), levels[name][1])
            alarm = levels["H"][0]
            power_off, restore = levels.get("HH", (math.inf, alarm))
            settings |= {"alarm_low": alarm, "alarm_high": power_off, "restore": restore}
        if settings:
            out[device.id] = settings
    return out

"""``bind``: every enabled rule of the packs on the devices it selects, with the site-wide checks
(positions, overrides that bind nowhere, two packs checking one reading)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from rules._errors import RulesConfigError
from rules._model import PointRef
from rules._pack import POSITION_TAG, RulePack

from ._overrides import Overrides
from ._plan import Binding, BindingPlan, BlockKind
from ._registry import RULE_BINDERS
from ._rule_binder import Row
from ._site import BindSite

__all__ = ["bind"]


def bind(
    points: Sequence[PointRef],
    packs: Sequence[RulePack],
    overrides: Overrides | None = None,
    n_devices: int | None = None,
    limits_reasons: Mapping[str, str] | None = None,
) -> BindingPlan:
    """Bind every enabled rule of ``packs`` to the matching points, applying site overrides.

    Rules of a pack with ``positions`` bind only devices whose ``position`` tag is one of them.
    Raises :class:`RulesConfigError` for an override naming an unknown device, rule or level, one
    whose rule does not bind to that device, or one that breaks the level ordering; for a device
    whose ``position`` no position-scoped pack of its kind lists; for two rules of different
    packs that make the same check on the same reading (naming both); for a limit looser than a
    position-table rule's without a reason in ``limits_reasons`` (``{device: reason}``); and for
    a power-off rule on a device with no ``area`` tag.
    """
    site = BindSite(points, packs, overrides or {}, n_devices, limits_reasons or {})
    _check_positions(site)
    per_block: dict[int, list[tuple[tuple[int, ...], Row]]] = {b: [] for b in BlockKind.ALL}
    for order, (pack, rule) in enumerate(site.rules):
        binder = RULE_BINDERS[rule.type]
        for row in binder.bind(rule, site.matching(pack, rule), site):
            per_block[row.binding.block].append(((*row.order, order), row))
    _check_overrides(site)
    rows: list[Row] = []
    for block in BlockKind.ALL:
        rows.extend(row for _, row in sorted(per_block[block], key=lambda kr: kr[0]))
    _check_conflicts(site, rows)
    bound = {(row.binding.device, row.binding.point) for row in rows}
    unbound = tuple(
        (ref.device, ref.point) for ref in points if (ref.device, ref.point) not in bound
    )
    return BindingPlan(
        tuple(row.binding for row in rows),
        len(points),
        site.n_devices,
        unbound,
        tuple(site.loosened),
        tuple(site.missing),
    )


def _check_positions(site: BindSite) -> None:
    """A device of a kind that position-scoped packs bind must have one of their positions.

    Without this, a sensor with a missing or misspelt ``position`` would silently get no
    rules of those packs (or another pack's rules).
    """
    scoped: dict[str, list[RulePack]] = {}
    for pack in site.packs:
        if pack.positions:
            for kind in pack.kinds:
                scoped.setdefault(kind, []).append(pack)
    for dev in site.devices.values():
        packs = scoped.get(dev.kind)
        if not packs or any(pack.binds_position(dev.tags) for pack in packs):
            continue
        allowed = "; ".join(f"{pack.pack}: {', '.join(pack.positions)}" for pack in packs)
        raise RulesConfigError(
            "devices",
            f"{dev.name}.tags.{POSITION_TAG}",
            dev.tags.get(POSITION_TAG),
            f"a position of the loaded packs for kind {dev.kind!r} ({allowed})",
        )


def _check_conflicts(site: BindSite, rows: Sequence[Row]) -> None:
    """Two rules of different packs making the same check on the same reading is an error:
    each reading would be judged twice, against two limits."""
    owner = {id(rule): pack for pack, rule in site.rules}
    by_id = {rule.id: rule for _, rule in site.rules}
    seen: dict[Hashable, Binding] = {}
    for row in rows:
        binding = row.binding
        pack = owner[id(by_id[binding.pack_rule_id])]
        for key in row.checks:
            first = seen.setdefault(key, binding)
            if first is binding:
                continue
            first_pack = owner[id(by_id[first.pack_rule_id])]
            if first_pack is pack:
                continue
            raise RulesConfigError(
                "packs",
                f"{binding.device}/{binding.point}",
                f"{first.rule_id} ({first_pack.file or first_pack.pack}) and "
                f"{binding.rule_id} ({pack.file or pack.pack})",
                f"one {binding.rule_type} check per reading: both rules bind device "
                f"{binding.device!r}; give it a {POSITION_TAG!r} (or tags) that only one pack "
                "selects, or disable one of the rules",
            )


def _check_overrides(site: BindSite) -> None:
    """Every override names a configured device and a rule that binds to it."""
    overrides = site.overrides
    if not isinstance(overrides, Mapping):
        raise RulesConfigError("overrides", "", overrides, "a mapping device → rule → …")
    for device, per_device in overrides.items():
        if device not in site.devices:
            known = ", ".join(sorted(site.devices)[:8])
            raise RulesConfigError(
                "overrides", device, device, f"a configured device id ({known}…)"
            )
        if not isinstance(per_device, Mapping):
            raise RulesConfigError("overrides", device, per_device, "a mapping rule id → …")
        for rule_id in per_device:
            if rule_id not in site.rule_ids:
                raise RulesConfigError(
                    "overrides",
                    f"{device}.{rule_id}",
                    rule_id,
                    "a rule id of the loaded packs",
                )
            if (device, rule_id) not in site.applied:
                dev = site.devices[device]
                raise RulesConfigError(
                    "overrides",
                    f"{device}.{rule_id}",
                    rule_id,
                    f"a rule that applies to device {device!r} (kind {dev.kind!r}, "
                    f"tags {dict(dev.tags)}); this one does not bind there",
                )

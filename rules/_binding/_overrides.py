"""Site overrides of rule parameters, per device: ``{device: {rule id: {key: value}}}``.

Values come from the site file as parsed YAML, so they are checked here and every problem names
its key path. A threshold rule's levels take a limit or ``{limit, reset}``; other rule types take
the keys their pack model lists in ``overridable``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from rules._errors import RulesConfigError
from rules._pack import (
    HIGH_LEVELS,
    THRESHOLD_LEVELS,
    LevelName,
    RuleBase,
    ThresholdRule,
    check_threshold_levels,
)

from ._plan import LoosenedLimit

__all__ = ["Changes", "Overrides", "scalar_overrides", "threshold_levels"]

#: One device's changes to one rule, as the site file gives them.
Changes = Mapping[str, object]
Overrides = Mapping[str, Mapping[str, Changes]]

_LEVEL_BY_NAME: dict[str, LevelName] = {name: name for name in THRESHOLD_LEVELS}


def override_value(path: str, value: object, allowed: str) -> float:
    """``value`` as a float, or a :class:`RulesConfigError` naming ``path``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RulesConfigError("overrides", path, value, allowed)
    return float(value)


def _looser(name: LevelName, table: float, value: float) -> bool:
    """Whether ``value`` (a limit or reset) of level ``name`` is looser than ``table``: a high
    level raised later or cleared earlier, a low level the other way round."""
    return value > table if name in HIGH_LEVELS else value < table


def threshold_levels(
    rule: ThresholdRule,
    changes: Changes,
    path: str,
    *,
    device: str = "",
    table_rule: bool = False,
    reason: str | None = None,
    loosened: list[LoosenedLimit] | None = None,
) -> dict[LevelName, tuple[float, float]]:
    """The rule's ``{level: (limit, reset)}`` with one device's ``changes`` applied.

    A table rule's limit may be loosened only with a ``reason`` (recorded in ``loosened``).
    """
    levels = rule.resolved_levels()
    table = dict(levels)
    for key_name, change in changes.items():
        key_path = f"{path}.{key_name}"
        name = _LEVEL_BY_NAME.get(key_name)
        if name is None or name not in levels:
            raise RulesConfigError(
                "overrides",
                key_path,
                key_name,
                f"a level rule {rule.id!r} defines: {', '.join(levels) or 'none'}",
            )
        limit, reset = levels[name]
        spec = rule.levels[name]
        if isinstance(change, Mapping):
            unknown = set(change) - {"limit", "reset"}
            if unknown:
                raise RulesConfigError(
                    "overrides", f"{key_path}.{sorted(unknown)[0]}", change, "keys limit, reset"
                )
            new_limit = override_value(
                f"{key_path}.limit", change.get("limit", limit), "a finite number"
            )
            new_reset = (
                override_value(f"{key_path}.reset", change["reset"], "a finite number")
                if "reset" in change
                else None
            )
        else:
            new_limit = override_value(key_path, change, "a finite number (the new limit)")
            new_reset = None
        if new_reset is None:
            if spec.reset is None:  # reset follows the rule's deadband
                band = rule.deadband
                new_reset = new_limit - band if name in HIGH_LEVELS else new_limit + band
            else:
                new_reset = reset
        levels[name] = (new_limit, new_reset)
        if table_rule:
            for i, key in ((0, "limit"), (1, "reset")):
                was, now = table[name][i], levels[name][i]
                if not _looser(name, was, now):
                    continue
                if not reason:
                    raise RulesConfigError(
                        "overrides",
                        f"{key_path}" + (".reset" if key == "reset" else ""),
                        now,
                        f"a {key} no looser than the table's {was:g} of rule {rule.id!r} "
                        f"({spec.source}); a looser one needs "
                        f'`limits_reason: "<why>"` on device {device!r}',
                    )
                if loosened is not None:
                    loosened.append(LoosenedLimit(device, rule.id, name, key, was, now, reason))
    problem = check_threshold_levels(levels)
    if problem is not None:
        level, key, value, allowed = problem
        raise RulesConfigError(
            "overrides",
            f"{path}.{level}" + (".reset" if key == "reset" else ""),
            value,
            allowed + ' (override as {"limit": …, "reset": …} to move both)',
        )
    return levels


#: Keys whose override must be > 0 (a rate or window of 0 would never alarm or divide by zero).
_POSITIVE_KEYS = ("rise_per_min", "fall_per_min", "window_s")


def scalar_overrides(rule: RuleBase, changes: Changes, path: str) -> dict[str, float]:
    """One device's ``changes`` to the scalar keys ``rule`` lets a site override."""
    allowed_keys = rule.overridable
    out: dict[str, float] = {}
    for key, change in changes.items():
        if key not in allowed_keys:
            raise RulesConfigError(
                "overrides",
                f"{path}.{key}",
                key,
                f"a key rule {rule.id!r} lets a site override: {', '.join(allowed_keys)}",
            )
        value = override_value(f"{path}.{key}", change, "a finite number ≥ 0")
        if value < 0 or (value == 0 and key in _POSITIVE_KEYS):
            raise RulesConfigError("overrides", f"{path}.{key}", change, "a number > 0")
        out[key] = value
    return out

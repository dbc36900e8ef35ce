"""The binder of every rule type, by the pack's ``type:`` value, and the alarm message."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from rules._pack import RULE_TYPES, RuleBase

from ._plan import Binding
from ._rule_binder import Row
from ._site import BindSite, BoundDevice
from .comm import CommBinder
from .condition import DiscreteBinder, DurationBinder
from .exposure import ExposureBinder
from .feed import FeedBinder
from .stale import StaleBinder
from .threshold import ThresholdBinder
from .trend import TrendBinder

__all__ = ["RULE_BINDERS", "TypeBinder", "format_message"]


class TypeBinder(Protocol):
    """What binding a site needs of one rule type (:class:`RuleBinder` subclasses are one)."""

    @property
    def rule_type(self) -> str: ...

    @property
    def default_message(self) -> str: ...

    def bind(
        self, rule: RuleBase, devices: Iterable[BoundDevice], site: BindSite
    ) -> Iterator[Row]: ...


def _registry(*binders: TypeBinder) -> dict[str, TypeBinder]:
    registry = {binder.rule_type: binder for binder in binders}
    missing = [t for t in RULE_TYPES if t not in registry]
    if missing or len(registry) != len(binders):
        raise TypeError(f"one binder per rule type; without one: {', '.join(missing) or 'none'}")
    return registry


#: One binder per rule type. A new rule type: its model in ``rules/_pack.py`` (in ``PackRule``),
#: a binder module here, registered in this call, and the engine block that evaluates its rows.
RULE_BINDERS: Mapping[str, TypeBinder] = _registry(
    ThresholdBinder(),
    TrendBinder(),
    StaleBinder(),
    DiscreteBinder(),
    DurationBinder(),
    CommBinder(),
    ExposureBinder(),
    FeedBinder(),
)


def format_message(binding: Binding, level: str, value: float, limit: float) -> str:
    """Render an alarm's message from its template (or the default one of its rule type)."""
    template = binding.message or RULE_BINDERS[binding.rule_type].default_message
    return template.format(
        device=binding.device,
        point=binding.point,
        rule=binding.rule_id,
        level=level,
        value=_num(value),
        limit=_num(limit),
        unit=binding.unit,
        title=binding.title,
    )


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.6g}"

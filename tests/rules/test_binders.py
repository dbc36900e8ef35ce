"""The binder registry: one binder per rule type of the pack schema, each found by its ``type:``."""

from __future__ import annotations

from typing import Literal

import pytest

from rules._binding import RULE_BINDERS, BlockKind
from rules._binding._registry import _registry
from rules._binding._rule_binder import RuleBinder
from rules._binding.stale import StaleBinder
from rules._pack import RULE_TYPES, StaleRule, ThresholdRule, rule_type_of


def test_every_rule_type_of_the_schema_has_exactly_its_binder() -> None:
    assert set(RULE_BINDERS) == set(RULE_TYPES)
    for rule_type, binder in RULE_BINDERS.items():
        assert binder.rule_type == rule_type
        assert isinstance(binder, RuleBinder)
        assert rule_type_of(binder.rule_class) == rule_type
        assert binder.block in BlockKind.ALL
        assert "{device}" in binder.default_message


def test_a_registry_missing_a_rule_type_is_refused_at_import() -> None:
    binders = [b for t, b in RULE_BINDERS.items() if t != "stale"]
    with pytest.raises(TypeError, match="without one: stale"):
        _registry(*binders)
    with pytest.raises(TypeError, match="one binder per rule type"):
        _registry(*RULE_BINDERS.values(), StaleBinder())


def test_a_binder_refuses_a_rule_of_another_type() -> None:
    rule = ThresholdRule.model_validate(
        {
            "id": "t",
            "title": "t",
            "kind": "gas",
            "point": "co",
            "type": "threshold",
            "levels": {"H": {"limit": 24, "priority": 2, "source": "test"}},
        }
    )
    with pytest.raises(TypeError, match="ThresholdRule given to the stale binder"):
        list(RULE_BINDERS["stale"].bind(rule, [], None))  # type: ignore[arg-type]


def test_rule_type_of_reads_the_type_literal() -> None:
    assert rule_type_of(StaleRule) == "stale"

    class NoType(StaleRule):
        type: Literal["a", "b"]  # type: ignore[assignment]

    with pytest.raises(TypeError, match="NoType"):
        rule_type_of(NoType)

"""Binding: which rule applies to which point, with site overrides applied.

The result, a :class:`BindingPlan`, is plain data (one :class:`Binding` per alarm). The vectorized
engine compiles it into arrays; the scalar reference implementation in the tests walks it row by
row. Rows are ordered in blocks by rule type (threshold, rate of change, stale, condition, comm,
exposure, feed), threshold rows by point index so the hot gather reads memory in order.

Modules:

* ``_plan``: the plan's data (``Binding``, the spec of each rule type, ``BindingPlan``);
* ``_site``: the state of binding one site (devices, overrides, the ``Binding`` constructor);
* ``_overrides``: checking a site's per-device overrides;
* ``_rule_binder``: ``RuleBinder``, the base of the one binder per rule type
  (``threshold``, ``trend``, ``stale``, ``condition``, ``comm``, ``exposure``, ``feed``);
* ``_registry``: ``RULE_BINDERS`` (pack ``type:`` → binder) and ``format_message``;
* ``_bind``: ``bind`` and the site-wide checks.
"""

from ._bind import bind
from ._plan import (
    AREA_TAG,
    COMM_POINT,
    Binding,
    BindingPlan,
    BlockKind,
    BoundPredicate,
    CommSpec,
    ConditionSpec,
    FeedSpec,
    LoosenedLimit,
    MissingPoints,
    Spec,
    StaleSpec,
    ThresholdSpec,
    TrendSpec,
)
from ._registry import RULE_BINDERS, format_message

__all__ = [
    "AREA_TAG",
    "COMM_POINT",
    "RULE_BINDERS",
    "Binding",
    "BindingPlan",
    "BlockKind",
    "BoundPredicate",
    "CommSpec",
    "ConditionSpec",
    "FeedSpec",
    "LoosenedLimit",
    "MissingPoints",
    "Spec",
    "StaleSpec",
    "ThresholdSpec",
    "TrendSpec",
    "bind",
    "format_message",
]

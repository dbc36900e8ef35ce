"""The protocol every rule type binds through.

One :class:`RuleBinder` subclass per rule type (a module of this package each) knows how a rule
of that type becomes alarm rows: which points it needs, which overrides it takes, its spec, its
block, its default message and what two rules of different packs must not both check.
``_registry.RULE_BINDERS`` maps each pack ``type:`` to its binder.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, NamedTuple, TypeVar

from rules._pack import PointRule, RuleBase, rule_type_of

from ._plan import Binding
from ._site import BindSite, BoundDevice

__all__ = ["Row", "RuleBinder", "point_targets"]

R = TypeVar("R", bound=RuleBase)


class Row(NamedTuple):
    """One alarm row a binder made."""

    #: Sort key within the row's block (the binder's order, e.g. by point index).
    order: tuple[int, ...]
    binding: Binding
    #: What the row checks: two rows of different packs sharing a key judge the same reading
    #: twice (a configuration error naming both).
    checks: tuple[Hashable, ...]


class RuleBinder(Generic[R]):
    """How rules of one type bind. Subclasses set :attr:`rule_class`, :attr:`block` and
    :attr:`default_message` and implement :meth:`rows`."""

    #: The pack model of the rule type (its ``type:`` literal names the type).
    rule_class: type[R]
    #: The engine block (:class:`BlockKind`) that evaluates the rows.
    block: int
    #: Message template when the rule gives none (fields as in ``format_message``).
    default_message: str

    def __init__(self) -> None:
        self.rule_type = rule_type_of(self.rule_class)

    def bind(self, rule: RuleBase, devices: Iterable[BoundDevice], site: BindSite) -> Iterator[Row]:
        """The rows of ``rule`` on the ``devices`` it selects."""
        if not isinstance(rule, self.rule_class):
            raise TypeError(f"{type(rule).__name__} given to the {self.rule_type} binder")
        return self.rows(rule, devices, site)

    def rows(self, rule: R, devices: Iterable[BoundDevice], site: BindSite) -> Iterator[Row]:
        raise NotImplementedError

    def row(self, order: tuple[int, ...], binding: Binding) -> Row:
        """A row whose check is its rule type on its point (the usual case)."""
        return Row(order, binding, ((binding.rule_type, binding.device, binding.point),))


def point_targets(
    rule: PointRule, devices: Iterable[BoundDevice], site: BindSite
) -> Iterator[tuple[BoundDevice, str, int]]:
    """``(device, point name, point index)`` for each point of ``rule`` a device has
    (``point: "*"``: all of them).

    A point the device lacks is a quantity it does not measure (a CO limit on a methane-only
    detector): skipped, unless the rule is ``required`` (then a config error).
    """
    for dev in devices:
        names = rule.point_names
        if names == ("*",):
            names = tuple(dev.points)
        elif rule.required:
            site.lacks(rule, dev, names)
        for name in names:
            index = dev.points.get(name)
            if index is not None:
                yield dev, name, index

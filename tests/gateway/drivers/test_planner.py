"""Read planner: coalescing, gaps, protocol limits, refused spans."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldmodel.model import Point
from fieldmodel.registers import REGISTER_WIDTH
from gateway.config import load_profile
from gateway.drivers.modbus.planner import MAX_BITS, MAX_REGISTERS, plan_reads


def pt(name: str, address: int, type_name: str = "uint16", register: str = "holding") -> Point:
    return Point(name=name, register=register, address=address, type=type_name)  # type: ignore[arg-type]


def test_contiguous_points_become_one_request() -> None:
    plan = plan_reads([pt("a", 0), pt("b", 1, "float32"), pt("c", 3, "uint64")])
    assert [(r.kind, r.address, r.count) for r in plan.requests] == [("holding", 0, 7)]


def test_near_points_merge_across_a_bounded_gap() -> None:
    plan = plan_reads([pt("a", 0), pt("b", 9)], max_gap=8)
    assert [(r.address, r.count) for r in plan.requests] == [(0, 10)]
    plan = plan_reads([pt("a", 0), pt("b", 10)], max_gap=8)
    assert [(r.address, r.count) for r in plan.requests] == [(0, 1), (10, 1)]


def test_kinds_are_planned_separately() -> None:
    plan = plan_reads(
        [
            pt("a", 0),
            pt("b", 0, register="input"),
            pt("c", 0, "bool", "coil"),
            pt("d", 5, "bool", "discrete"),
        ]
    )
    assert sorted(r.function_code for r in plan.requests) == [1, 2, 3, 4]


def test_register_limit_splits_requests() -> None:
    points = [pt(f"p{i}", i * 2, "float32") for i in range(100)]  # 200 registers
    plan = plan_reads(points)
    assert all(r.count <= MAX_REGISTERS for r in plan.requests)
    assert len(plan.requests) == 2


def test_bit_limit_is_2000() -> None:
    points = [pt(f"c{i}", i, "bool", "coil") for i in range(0, 4000, 4)]
    plan = plan_reads(points, max_gap=8)
    assert all(r.count <= MAX_BITS for r in plan.requests)
    assert len(plan.requests) == 2


def test_refused_span_is_never_read() -> None:
    points = [pt("a", 0), pt("b", 1), pt("c", 2), pt("d", 3)]
    plan = plan_reads(points, refused={"holding": [(2, 3)]})
    spans = [(r.address, r.end) for r in plan.requests]
    assert all(not (s < 3 and e > 2) for s, e in spans)
    assert plan.unread == (2,)
    served = sorted(i for r in plan.requests for i in r.points)
    assert served == [0, 1, 3]


def test_bit_points_of_one_register_share_it() -> None:
    profile = load_profile("elevator")
    plan = plan_reads(profile.points)
    holding = [r for r in plan.requests if r.kind == "holding"]
    assert len(holding) == 1 and holding[0].address == 0 and holding[0].count == 8


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2000), st.sampled_from(sorted(REGISTER_WIDTH.keys() - {"bool"}))),
        min_size=1,
        max_size=80,
    ),
    st.integers(0, 20),
)
def test_plan_covers_every_point_within_limits(specs: list[tuple[int, str]], max_gap: int) -> None:
    points = [pt(f"p{i}", a, t) for i, (a, t) in enumerate(specs)]
    plan = plan_reads(points, max_gap=max_gap)
    served: list[int] = []
    for req in plan.requests:
        assert 1 <= req.count <= MAX_REGISTERS
        for i in req.points:
            p = points[i]
            assert req.address <= p.address and p.address + p.width <= req.end
            served.append(i)
    assert sorted(served) == list(range(len(points)))
    # no two requests could have been merged: each gap exceeds max_gap or the limit binds
    reqs = sorted(plan.requests, key=lambda r: r.address)
    for a, b in itertools.pairwise(reqs):
        assert b.address > a.end + max_gap or max(a.end, b.end) - a.address > MAX_REGISTERS


@pytest.mark.parametrize("name", ["gas_detector", "tank_gauge", "elevator", "tower_crane"])
def test_builtin_profiles_need_few_requests(name: str) -> None:
    profile = load_profile(name)
    plan = plan_reads(profile.points)
    kinds = {p.register for p in profile.points}
    assert len(plan.requests) == len(kinds)

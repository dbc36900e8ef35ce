"""DeviceDecoder: a device's read responses -> (values, good), checked against words built with
:mod:`struct` (tests/fieldmodel/struct_reference.py), not with the gateway's own codec."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fieldmodel.model import Point
from gateway.drivers.modbus.decoder import DeviceDecoder
from gateway.drivers.modbus.planner import ReadPlan, plan_reads
from tests.fieldmodel.struct_reference import struct_words

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
#: One telling value per type: sign, high bits, more than 2**53 for the 64-bit types, and floats
#: exact in their width (so the published precision does not come into it).
VALUES: dict[str, int | float] = {
    "int16": -12345,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3_000_000_001,
    "int64": -(2**62) - 4096,
    "uint64": 2**63 + 2048,
    "float32": -1234.5,
    "float64": 98765.4321,
}


def pt(name: str, address: int, type_name: str = "uint16", **kw: Any) -> Point:
    register = kw.pop("register", "holding")
    return Point(name=name, register=register, address=address, type=type_name, **kw)  # type: ignore[arg-type]


def decoder_for(points: Sequence[Point], plan: ReadPlan | None = None) -> DeviceDecoder:
    return DeviceDecoder(points, plan if plan is not None else plan_reads(points))


def registers(image: dict[int, int], req_address: int, count: int) -> list[int]:
    return [image.get(a, 0) for a in range(req_address, req_address + count)]


def answer_all(
    dec: DeviceDecoder, holding: dict[int, int], bits: dict[int, bool] | None = None
) -> None:
    dec.begin()
    for i, req in enumerate(dec.plan.requests):
        if req.kind in ("coil", "discrete"):
            dec.fill(i, [bool((bits or {}).get(a, False)) for a in range(req.address, req.end)])
        else:
            dec.fill(i, registers(holding, req.address, req.count))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_name", sorted(VALUES))
def test_every_register_type_in_every_word_order(type_name: str, order: str) -> None:
    value = VALUES[type_name]
    point = pt("x", 10, type_name, order=order)
    words = struct_words(value, type_name, order)
    dec = decoder_for([pt("before", 8), point])  # not at the start of the response
    answer_all(dec, {8: 7, **{10 + i: w for i, w in enumerate(words)}})
    values, good = dec.decode()
    assert good.tolist() == [True, True]
    assert values[0] == 7.0
    assert values[1] == float(value)


def test_mixed_types_and_kinds_in_one_device() -> None:
    points = [
        pt("a", 0, "float32", order="CDAB"),
        pt("b", 2, "int16"),
        pt("c", 3, "uint32", order="DCBA"),
        pt("d", 0, "int32", register="input", order="BADC"),
        pt("e", 200, "uint16"),  # far away: a request of its own
        pt("f", 5, "bool", register="coil"),
        pt("g", 1, "bool", register="discrete"),
    ]
    plan = plan_reads(points)
    assert len(plan.requests) == 5
    dec = decoder_for(points, plan)
    dec.begin()
    image = {
        "holding": {
            **dict(enumerate(struct_words(0.75, "float32", "CDAB"))),
            2: struct_words(-2, "int16", "ABCD")[0],
            **{3 + i: w for i, w in enumerate(struct_words(70000, "uint32", "DCBA"))},
            200: 65535,
        },
        "input": dict(enumerate(struct_words(-5, "int32", "BADC"))),
    }
    for i, req in enumerate(plan.requests):
        if req.kind == "coil":
            dec.fill(i, [a == 5 for a in range(req.address, req.end)])
        elif req.kind == "discrete":
            dec.fill(i, [False] * req.count)
        else:
            dec.fill(i, registers(image[req.kind], req.address, req.count))
    values, good = dec.decode()
    assert good.all()
    assert values.tolist() == [0.75, -2.0, 70000.0, -5.0, 65535.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("type_name", "raw", "scale", "offset", "expected"),
    [
        ("uint16", 209, 0.1, 0.0, 20.9),  # not 20.900000000000002
        ("int16", -5, 0.5, -40.0, -42.5),
        ("uint16", 12345, 0.01, 0.0, 123.45),
        ("int32", 1, 0.001, 0.0, 0.001),
        ("uint16", 3, 1.0, 273.15, 276.15),
        ("int16", 100, -2.0, 0.0, -200.0),
    ],
)
def test_scale_and_offset_publish_the_scales_decimals(
    type_name: str, raw: int, scale: float, offset: float, expected: float
) -> None:
    dec = decoder_for([pt("x", 0, type_name, scale=scale, offset=offset)])
    answer_all(dec, dict(enumerate(struct_words(raw, type_name, "ABCD"))))
    values, good = dec.decode()
    assert good[0] and values[0] == expected


def test_floats_are_published_to_their_precision() -> None:
    # 0.1 as float32 is 0.100000001490116...: published with 7 significant digits
    points = [
        pt("f32", 0, "float32"),
        pt("f64", 2, "float64"),
        pt("scaled", 6, "float32", scale=10.0),
    ]
    image = {
        **dict(enumerate(struct_words(0.1, "float32", "ABCD"))),
        **{2 + i: w for i, w in enumerate(struct_words(0.1, "float64", "ABCD"))},
        **{6 + i: w for i, w in enumerate(struct_words(0.3, "float32", "ABCD"))},
    }
    dec = decoder_for(points)
    answer_all(dec, image)
    values, _ = dec.decode()
    assert values.tolist() == [0.1, 0.1, 3.0]


def test_bits_of_a_register_and_coils() -> None:
    word = 0b1000_0000_0010_0101
    points = [pt(f"b{bit}", 4, "bool", bit=bit) for bit in (0, 1, 2, 5, 15)]
    points.append(pt("no_bit", 4, "bool"))  # bit 0 when not given
    points += [pt("coil3", 3, "bool", register="coil"), pt("coil4", 4, "bool", register="coil")]
    dec = decoder_for(points)
    answer_all(dec, {4: word}, bits={3: True})
    values, good = dec.decode()
    assert good.all()
    assert values.tolist() == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_points_of_an_unanswered_request_are_bad() -> None:
    points = [pt("a", 0), pt("b", 100), pt("c", 1, "float32")]
    dec = decoder_for(points)
    assert len(dec.plan.requests) == 2
    answer_all(
        dec,
        {0: 5, 100: 6, **{1 + i: w for i, w in enumerate(struct_words(2.5, "float32", "ABCD"))}},
    )
    values, good = dec.decode()
    assert good.all()
    # next poll: the request that holds b does not answer; a and c keep their fresh values
    dec.begin()
    first = next(i for i, r in enumerate(dec.plan.requests) if 0 in r.points)
    dec.fill(first, registers({0: 9, 1: 0x4020, 2: 0}, 0, dec.plan.requests[first].count))
    values, good = dec.decode()
    assert good.tolist() == [True, False, True]
    assert values[0] == 9.0 and values[2] == 2.5 and math.isnan(values[1])
    # a poll where nothing answered: all bad, nothing left over from before
    dec.begin()
    values, good = dec.decode()
    assert not good.any() and np.isnan(values).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_float_that_is_not_finite_is_bad(bad: float) -> None:
    points = [pt("f", 0, "float32"), pt("g", 2, "float64", order="DCBA"), pt("ok", 6)]
    image = {
        **dict(enumerate(struct_words(bad, "float32", "ABCD"))),
        **{2 + i: w for i, w in enumerate(struct_words(bad, "float64", "DCBA"))},
        6: 1,
    }
    dec = decoder_for(points)
    answer_all(dec, image)
    values, good = dec.decode()
    assert good.tolist() == [False, False, True]
    assert math.isnan(values[0]) and math.isnan(values[1]) and values[2] == 1.0


def test_points_the_plan_leaves_unread_are_bad() -> None:
    points = [pt("a", 0), pt("refused", 5), pt("c", 9)]
    plan = plan_reads(points, refused={"holding": [(5, 6)]})
    assert plan.unread == (1,)
    dec = decoder_for(points, plan)
    answer_all(dec, {0: 1, 9: 3})
    values, good = dec.decode()
    assert good.tolist() == [True, False, True]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 3.0


def test_a_short_response_is_refused_and_names_the_request() -> None:
    dec = decoder_for([pt("a", 0), pt("b", 1, "float32")])
    dec.begin()
    with pytest.raises(ValueError, match=r"FC03 holding 0\+3: got 2 registers, expected 3"):
        dec.fill(0, [1, 2])
    _, good = dec.decode()
    assert not good.any()  # nothing from the short response was taken

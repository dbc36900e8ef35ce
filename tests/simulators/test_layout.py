"""Register layout: the simulators' encoding agrees with pymodbus' own conversion and the codec."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from fieldmodel.model import Point
from simulators._layout import RegisterLayout

DT = ModbusTcpClient.DATATYPE
PYMODBUS_TYPES = {
    "int16": DT.INT16,
    "uint16": DT.UINT16,
    "int32": DT.INT32,
    "uint32": DT.UINT32,
    "int64": DT.INT64,
    "uint64": DT.UINT64,
    "float32": DT.FLOAT32,
    "float64": DT.FLOAT64,
}
RANGES = {
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**53), 2**53),
    "uint64": (0, 2**53),
    "float32": (-1e6, 1e6),
    "float64": (-1e6, 1e6),
}


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[str, str, list[float]]:
    type_name = draw(st.sampled_from(sorted(PYMODBUS_TYPES)))
    order = draw(st.sampled_from(["ABCD", "CDAB"]))
    low, high = RANGES[type_name]
    if type_name.startswith("float"):
        values = draw(st.lists(st.floats(low, high, width=32), min_size=1, max_size=5))
    else:
        values = [float(v) for v in draw(st.lists(st.integers(low, high), min_size=1, max_size=5))]
    return type_name, order, values


@settings(max_examples=200, deadline=None)
@given(typed_values())
def test_words_match_pymodbus_conversion(case: tuple[str, str, list[float]]) -> None:
    type_name, order, values = case
    width = {"int16": 1, "uint16": 1, "float32": 2, "int32": 2, "uint32": 2}.get(type_name, 4)
    points = [
        Point(f"p{i}", "holding", 1 + i * width, type_name, order) for i in range(len(values))
    ]
    layout = RegisterLayout(points)
    image = layout.encode(np.array([values]))
    words = image["holding"][0].tolist()
    assert words[0] == 0  # address 0 is a gap
    word_order = "big" if order == "ABCD" else "little"
    for i, value in enumerate(values):
        regs = words[1 + i * width : 1 + (i + 1) * width]
        got = ModbusTcpClient.convert_from_registers(regs, PYMODBUS_TYPES[type_name], word_order)
        if type_name == "float32":
            assert got == float(np.float32(value))
        else:
            assert got == value


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]),
    st.floats(-300, 300),
    st.sampled_from([0.1, 0.01, 1.0, 0.5]),
    st.floats(-50, 50),
)
def test_scaled_points_decode_to_the_quantized_value(
    order: str, value: float, scale: float, offset: float
) -> None:
    points = [
        Point("i", "holding", 0, "int32", order, scale=scale, offset=offset),
        Point("f", "input", 4, "float64", order, scale=scale, offset=offset),
        Point("flag", "holding", 2, "bool", bit=7),
        Point("coil", "coil", 3, "bool"),
    ]
    layout = RegisterLayout(points)
    image = layout.encode(np.array([[value, value, 1.0, 1.0]]))
    regs = {kind: image[kind][0].tolist() for kind in image}
    decoded = layout.decode(regs)
    assert abs(decoded["i"] - value) <= scale / 2 + 1e-9
    assert abs(decoded["f"] - value) <= 1e-9 * max(1.0, abs(value))
    assert decoded["flag"] == 1.0 and regs["holding"][2] == 1 << 7
    assert regs["coil"] == [False, False, False, True]


def test_values_saturate_at_the_type_range() -> None:
    layout = RegisterLayout(
        [Point("a", "holding", 0, "uint16"), Point("b", "holding", 1, "int16", scale=0.01)]
    )
    image = layout.encode(np.array([[-5.0, 1000.0], [70000.0, -1000.0]]))
    assert image["holding"].tolist() == [[0, 32767], [65535, 32768]]


def test_bits_pack_bit_zero_first() -> None:
    bits = np.zeros((1, 18), dtype=np.bool_)
    bits[0, [0, 3, 17]] = True
    assert RegisterLayout.pack_bits(bits).tolist() == [[0b1001, 0b10]]

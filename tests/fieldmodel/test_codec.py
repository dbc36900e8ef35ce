"""Register codec: round trips for every type x order, checked against struct independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldmodel.codec import decode_words, encode_values
from fieldmodel.registers import DTYPES, WORD_ORDERS
from tests.fieldmodel.struct_reference import struct_words

RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def values_for(type_name: str) -> st.SearchStrategy[float | int]:
    if type_name == "float32":
        return st.floats(width=32, allow_nan=False)
    if type_name == "float64":
        return st.floats(allow_nan=False)
    lo, hi = RANGES[type_name]
    return st.integers(lo, hi)


@pytest.mark.parametrize("order", WORD_ORDERS)
@pytest.mark.parametrize("type_name", sorted(DTYPES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_matches_struct(type_name: str, order: str, data: st.DataObject) -> None:
    values = data.draw(st.lists(values_for(type_name), min_size=1, max_size=8))
    words = encode_values(
        np.array(values, dtype=np.dtype(DTYPES[type_name]).newbyteorder("=")), type_name, order
    )
    assert words.tolist() == [struct_words(v, type_name, order) for v in values]
    decoded = decode_words(words, type_name, order).tolist()
    for got, want in zip(decoded, values, strict=True):
        assert got == want or (math.isinf(want) and got == want)


def test_known_float_layouts() -> None:
    # 1.0f = 0x3F800000 in the four orders field devices use
    assert encode_values([1.0], "float32", "ABCD").tolist() == [[0x3F80, 0x0000]]
    assert encode_values([1.0], "float32", "CDAB").tolist() == [[0x0000, 0x3F80]]
    assert encode_values([1.0], "float32", "BADC").tolist() == [[0x803F, 0x0000]]
    assert encode_values([1.0], "float32", "DCBA").tolist() == [[0x0000, 0x803F]]


def test_sixteen_bit_ignores_word_order_but_swaps_bytes() -> None:
    assert encode_values([0x0102], "uint16", "CDAB").tolist() == [[0x0102]]
    assert encode_values([0x0102], "uint16", "BADC").tolist() == [[0x0201]]
    assert decode_words(np.array([[0x0201]], dtype=np.uint16), "uint16", "DCBA")[0] == 0x0102


def test_sixty_four_bit_word_order_reversed() -> None:
    # CDAB on 64-bit means GHEFCDAB: the four words in reverse order
    words = encode_values([0x0102030405060708], "uint64", "CDAB").tolist()[0]
    assert words == [0x0708, 0x0506, 0x0304, 0x0102]


def test_wrong_width_is_an_error() -> None:
    with pytest.raises(ValueError, match="float32 needs 2 words"):
        decode_words(np.zeros((1, 3), dtype=np.uint16), "float32", "ABCD")

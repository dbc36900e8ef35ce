"""The register-type table: consistent with numpy's dtypes and with the names config accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np
import pytest

from fieldmodel.registers import (
    BIT_KINDS,
    DTYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    REGISTER_KINDS,
    REGISTER_TYPES,
    REGISTER_WIDTH,
    WORD_KINDS,
    WORD_ORDERS,
    DataType,
    is_integer_point,
)


def test_table_covers_exactly_the_type_names_a_site_file_may_use() -> None:
    assert tuple(REGISTER_TYPES) == get_args(DataType)
    assert set(REGISTER_WIDTH) == set(REGISTER_TYPES)
    assert set(DTYPES) == set(REGISTER_TYPES) - {"bool"}
    assert {"float32", "float64"} == FLOAT_TYPES
    assert {"int16", "uint16", "int32", "uint32", "int64", "uint64"} == INTEGER_TYPES
    assert FLOAT_TYPES.isdisjoint(INTEGER_TYPES)


@pytest.mark.parametrize("type_name", sorted(DTYPES))
def test_dtype_is_big_endian_and_width_matches_its_size(type_name: str) -> None:
    dtype = np.dtype(DTYPES[type_name])
    assert dtype.byteorder == ">"
    assert dtype.itemsize == 2 * REGISTER_WIDTH[type_name]
    assert (dtype.kind == "f") == (type_name in FLOAT_TYPES)
    assert dtype.kind in "iuf"
    # the name says the dtype: int32 is a signed 4-byte integer, float64 an 8-byte float
    assert np.dtype(type_name).newbyteorder(">") == dtype


def test_bool_is_one_register_or_bit_and_not_numeric() -> None:
    assert REGISTER_TYPES["bool"].is_bool
    assert REGISTER_WIDTH["bool"] == 1
    assert not REGISTER_TYPES["bool"].is_float


def test_register_kinds_split_into_word_and_bit_kinds() -> None:
    assert set(WORD_KINDS) | set(BIT_KINDS) == set(REGISTER_KINDS)
    assert set(WORD_KINDS).isdisjoint(BIT_KINDS)
    assert set(REGISTER_KINDS) == {"holding", "input", "coil", "discrete"}
    assert WORD_ORDERS == ("ABCD", "CDAB", "BADC", "DCBA")


@dataclass(frozen=True)
class _P:
    type: str
    scale: float = 1.0
    offset: float = 0.0


@pytest.mark.parametrize(
    ("point", "integer"),
    [
        (_P("bool"), True),
        (_P("bool", scale=2.0), True),  # a bool is 0/1 whatever its scale says
        (_P("uint16"), True),
        (_P("int64"), True),
        (_P("int16", scale=0.01), False),
        (_P("uint16", offset=-50.0), False),
        (_P("float32"), False),
        (_P("float64"), False),
    ],
)
def test_is_integer_point(point: _P, integer: bool) -> None:
    assert is_integer_point(point) is integer

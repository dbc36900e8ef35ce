"""The register-type table: the one place that knows what each Modbus data type is.

For every type name a site file may give a point (``bool``, ``int16`` … ``float64``): how many
16-bit registers it spans, its big-endian numpy dtype, and whether it is a float or an integer.
Also the register kinds (holding and input registers carry words; coils and discrete inputs carry
bits) and the word orders. Config checks, the codec, the decoder, the probe, the simulators and
the database encoder all read these facts from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, Protocol, get_args

__all__ = [
    "BIT_KINDS",
    "DTYPES",
    "FLOAT_TYPES",
    "INTEGER_TYPES",
    "REGISTER_KINDS",
    "REGISTER_TYPES",
    "REGISTER_WIDTH",
    "WORD_KINDS",
    "WORD_ORDERS",
    "DataType",
    "RegisterKind",
    "RegisterType",
    "ScaledPoint",
    "WordOrder",
    "is_integer_point",
]

DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]
RegisterKind = Literal["holding", "input", "coil", "discrete"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

#: Kinds that carry 16-bit words (function codes 3 and 4) and kinds that carry single bits
#: (function codes 1 and 2).
WORD_KINDS: Final[tuple[RegisterKind, ...]] = ("holding", "input")
BIT_KINDS: Final[tuple[RegisterKind, ...]] = ("coil", "discrete")
REGISTER_KINDS: Final[tuple[RegisterKind, ...]] = get_args(RegisterKind)
#: Word orders as field devices and Telegraf name them (see :mod:`fieldmodel.codec`).
WORD_ORDERS: Final[tuple[WordOrder, ...]] = get_args(WordOrder)


@dataclass(frozen=True, slots=True)
class RegisterType:
    """One data type: its width in 16-bit registers, big-endian dtype, float or integer.

    ``bool`` has no dtype: it is a coil or discrete bit, or one bit of a holding/input word.
    """

    name: DataType
    width: int
    dtype: str | None
    is_float: bool

    @property
    def is_bool(self) -> bool:
        return self.dtype is None


def _table(*types: RegisterType) -> Mapping[str, RegisterType]:
    return MappingProxyType({t.name: t for t in types})


REGISTER_TYPES: Final[Mapping[str, RegisterType]] = _table(
    RegisterType("bool", 1, None, is_float=False),
    RegisterType("int16", 1, ">i2", is_float=False),
    RegisterType("uint16", 1, ">u2", is_float=False),
    RegisterType("int32", 2, ">i4", is_float=False),
    RegisterType("uint32", 2, ">u4", is_float=False),
    RegisterType("int64", 4, ">i8", is_float=False),
    RegisterType("uint64", 4, ">u8", is_float=False),
    RegisterType("float32", 2, ">f4", is_float=True),
    RegisterType("float64", 4, ">f8", is_float=True),
)

#: 16-bit registers each data type occupies (bool on a register kind reads one bit of one word).
REGISTER_WIDTH: Final[Mapping[str, int]] = MappingProxyType(
    {t.name: t.width for t in REGISTER_TYPES.values()}
)
#: Big-endian numpy dtype of each numeric type (bool is handled as bits, not here).
DTYPES: Final[Mapping[str, str]] = MappingProxyType(
    {t.name: t.dtype for t in REGISTER_TYPES.values() if t.dtype is not None}
)
FLOAT_TYPES: Final = frozenset(t.name for t in REGISTER_TYPES.values() if t.is_float)
#: Integer register types (bool excluded).
INTEGER_TYPES: Final = frozenset(
    t.name for t in REGISTER_TYPES.values() if not t.is_float and not t.is_bool
)


class ScaledPoint(Protocol):
    """What :func:`is_integer_point` reads of a point."""

    @property
    def type(self) -> str: ...
    @property
    def scale(self) -> float: ...
    @property
    def offset(self) -> float: ...


def is_integer_point(point: ScaledPoint) -> bool:
    """True when ``point`` is published as an integer: a bool, or an unscaled integer type
    (``scale`` 1, ``offset`` 0); False when it is published as a float."""
    if point.type == "bool":
        return True
    return point.type in INTEGER_TYPES and point.scale == 1 and point.offset == 0

"""Array type aliases and small constant tables shared by the vectorized blocks."""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

from ._model import LEVEL_SEVERITY, LEVEL_SIDE, is_raise

__all__ = [
    "ACTIVE",
    "F64",
    "I8",
    "RAISE_TABLE",
    "SEVERITY",
    "SIDE",
    "U8",
    "BoolArray",
    "IdxArray",
]

F64: TypeAlias = npt.NDArray[np.float64]
I8: TypeAlias = npt.NDArray[np.int8]
U8: TypeAlias = npt.NDArray[np.uint8]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
IdxArray: TypeAlias = npt.NDArray[np.intp]

ACTIVE: Final = np.int8(5)
SEVERITY: Final = np.array(LEVEL_SEVERITY, dtype=np.int8)
SIDE: Final = np.array(LEVEL_SIDE, dtype=np.int8)
#: ``RAISE_TABLE[old, new]``: going from level ``old`` to ``new`` is an activation/escalation.
RAISE_TABLE: Final = np.array(
    [[is_raise(old, new) for new in range(6)] for old in range(6)], dtype=np.bool_
)

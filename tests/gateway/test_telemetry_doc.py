"""A received telemetry document becomes the record its points say, whatever it holds.

``sample_from_doc`` turns what a platform worker receives into the record the line encoder
reads; this checks it against the rule read point by point, on documents with nulls, NaN, bools,
names the device does not have, qualities that are not names (numbers, lists), missing qualities
and the maintenance flag.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from fieldmodel.quality import BAD, GOOD, MAINTENANCE, QUALITY_NAMES
from gateway.telemetry import TelemetrySample, sample_from_doc

QUALITIES: list[Any] = [*QUALITY_NAMES, "weird", 1, True, None, 0.5, ["x"], {"a": 1}]


def point_by_point(
    values: Mapping[str, Any],
    quality: Mapping[str, Any] | None,
    integer: Mapping[str, bool],
    maintenance: bool,
) -> tuple[list[float], list[int], list[bool]]:
    """The documented rule, one point at a time: (values, quality codes, integer flags)."""
    read = MAINTENANCE if maintenance else GOOD
    codes = {name: code for code, name in enumerate(QUALITY_NAMES)}
    out_values, out_codes, out_integer = [], [], []
    for name, v in values.items():
        out_values.append(math.nan if v is None else float(v))
        q = read if quality is None else quality.get(name)
        if v is None:
            out_codes.append(BAD)
        elif quality is None:
            out_codes.append(read)
        else:
            out_codes.append(codes.get(q, BAD) if isinstance(q, str) else BAD)
        out_integer.append(integer.get(name, isinstance(v, bool)))
    return out_values, out_codes, out_integer


def random_doc(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any] | None]:
    makers = [
        lambda: rng.uniform(-1e6, 1e6),
        lambda: rng.randint(-(10**6), 10**6),
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: math.nan,
        lambda: math.inf,
    ]
    names = [f"p{i}" for i in rng.sample(range(20), rng.randint(0, 12))]
    values = {name: rng.choice(makers)() for name in names}
    if rng.random() < 0.3:
        return values, None
    quality = {name: rng.choice(QUALITIES) for name in names if rng.random() < 0.9}
    return values, quality


@pytest.mark.parametrize("seed", range(4))
def test_every_document_gives_the_record_its_points_say(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        values, quality = random_doc(rng)
        integer = {f"p{i}": rng.random() < 0.3 for i in range(20) if rng.random() < 0.7}
        maintenance = rng.random() < 0.3
        got = sample_from_doc("d1", 7, values, quality, integer, maintenance=maintenance)
        want_values, want_codes, want_integer = point_by_point(
            values, quality, integer, maintenance
        )
        assert isinstance(got, TelemetrySample)
        assert got.names == tuple(values) and got.ts_ms == 7 and got.maintenance == maintenance
        assert np.array_equal(got.values, np.array(want_values), equal_nan=True), values
        assert got.quality.tolist() == want_codes, (values, quality)
        assert got.integer.tolist() == want_integer, (values, integer)


def test_a_value_that_is_not_a_number_is_refused() -> None:
    for bad in ("abc", [1, 2], {"x": 1}):
        with pytest.raises((TypeError, ValueError)):
            sample_from_doc("d1", 7, {"a": bad, "b": 1.0}, {"a": "good"}, {})

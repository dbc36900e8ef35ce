"""The one capped, jittered exponential backoff (gateway/backoff.py)."""

from __future__ import annotations

import random

import pytest

from gateway.backoff import JITTER_FLOOR, Backoff, jitter


def test_ceiling_doubles_from_initial_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_initial_above_the_cap_waits_the_cap() -> None:
    assert Backoff(4.0, 1.0).ceiling(0) == 1.0


def test_a_device_away_for_hours_does_not_overflow_the_delay() -> None:
    """2.0 ** 1100 overflows a float: the old poller formula raised after ~1024 failed polls."""
    backoff = Backoff(1.0, 10.0, random=lambda: 0.0)
    assert backoff.ceiling(5000) == 10.0
    assert backoff.delay(10**6) == 10.0 * JITTER_FLOOR


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.999999])
def test_jitter_scales_to_between_half_and_all(draw: float) -> None:
    backoff = Backoff(1.0, 8.0, random=lambda: draw)
    assert backoff.delay(3) == pytest.approx(8.0 * (0.5 + 0.5 * draw))
    assert jitter(2.0, lambda: draw) == pytest.approx(2.0 * (0.5 + 0.5 * draw))


def test_jittered_delays_stay_in_range_and_spread() -> None:
    backoff = Backoff(0.1, 5.0, random=random.Random(3).random)
    delays = [backoff.delay(2) for _ in range(1000)]
    assert all(0.2 <= d < 0.4 for d in delays)
    assert max(delays) - min(delays) > 0.15  # clients that failed together come back apart


def test_same_delays_as_the_formulas_it_replaces() -> None:
    """Poller, console link and sink each wrote min(max, initial * 2**n) * uniform(0.5, 1)."""
    for initial, cap in ((1.0, 10.0), (0.1, 5.0), (0.5, 30.0), (0.01, 0.05)):
        old, new = random.Random(11), random.Random(11)
        backoff = Backoff(initial, cap, random=new.random)
        for n in range(12):
            expected = min(cap, initial * 2**n) * old.uniform(0.5, 1.0)
            assert backoff.delay(n) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0)])
def test_a_non_positive_delay_is_refused(initial: float, cap: float) -> None:
    with pytest.raises(ValueError, match="must be > 0 s"):
        Backoff(initial, cap)

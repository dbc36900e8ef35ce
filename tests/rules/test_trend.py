"""Rate-of-change rules: slope, window, sample count, forecast."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rules import PointRef, State, parse_pack
from tests.rules.harness import Site


def trend_site(**rule: Any) -> Site:
    spec = {
        "id": "rise",
        "type": "rate_of_change",
        "title": "rise",
        "kind": "probe",
        "point": "v",
        "window_s": 60,
        "min_samples": 3,
        "max_samples": 16,
        "rise_per_min": 6.0,
        "priority": 3,
        "source": "test",
        **rule,
    }
    pack = parse_pack({"pack": "t", "title": "t", "rules": [spec]}, "t.yaml")
    return Site([PointRef("p1", 0, "v", "probe", {}, "u")], [pack])


def feed(site: Site, samples: list[tuple[float, float]]) -> list[Any]:
    """Samples as (seconds after the start, value); one tick per sample."""
    start = 1_700_000_000.0
    out = []
    for t, v in samples:
        site.now = start + t
        site.set("p1", v=v)
        out += site.tick()
    return out


def test_slope_is_the_least_squares_fit_per_minute() -> None:
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.5, 3.0, 12))
    v = 0.07 * t + rng.normal(0, 0.05, t.size) + 4.0
    site = trend_site(window_s=1000, max_samples=64, rise_per_min=1e6)
    feed(site, list(zip(t.tolist(), v.tolist(), strict=True)))
    stored = (1_700_000_000.0 + t) - 1_700_000_000.0  # the timestamps as the engine saw them
    slope_per_s = np.polyfit(stored, v, 1)[0]
    assert site.state("p1/v/rise").value == pytest.approx(slope_per_s * 60, rel=1e-9)


def test_rise_alarm_and_return() -> None:
    site = trend_site()
    out = feed(site, [(0, 10), (1, 10.05), (2, 10.1), (3, 10.15)])  # 3 /min
    assert out == []
    out = feed(site, [(4, 10.5), (5, 11)])  # steep
    assert [(t.level, t.to_state) for t in out] == [("ROC", State.UNACK_ACTIVE)]
    assert out[0].value >= 6.0 and out[0].limit == 6.0


def test_too_few_samples_means_no_trend() -> None:
    site = trend_site(min_samples=4)
    assert feed(site, [(0, 0), (1, 5), (2, 10)]) == []  # 300 /min but only 3 samples
    assert np.isnan(site.state("p1/v/rise").value)
    (t,) = feed(site, [(3, 15)])
    assert t.to_state is State.UNACK_ACTIVE


def test_samples_leave_the_window_by_time_and_by_capacity() -> None:
    site = trend_site(window_s=10, min_samples=2, max_samples=3, rise_per_min=1e9)
    feed(site, [(0, 0), (1, 1), (2, 2)])
    assert site.state("p1/v/rise").value == pytest.approx(60.0)
    feed(site, [(3, 13)])  # capacity 3: the sample at t=0 is dropped
    expected = np.polyfit([1, 2, 3], [1, 2, 13], 1)[0] * 60
    assert site.state("p1/v/rise").value == pytest.approx(expected)
    site.now = 1_700_000_000.0 + 12.0  # t=1 is now older than 12 - 10 = 2 s; t=2 is exactly on it
    site.tick()
    assert site.state("p1/v/rise").value == pytest.approx(11 * 60)


def test_forecast_alarm_before_the_limit_is_reached() -> None:
    site = trend_site(
        rise_per_min=None, forecast={"limit": 100.0, "direction": "rising", "within_s": 120}
    )
    out = feed(site, [(float(t), 50.0 + 0.25 * t) for t in range(0, 40)])
    assert out == []
    forecast = site.state("p1/v/rise").forecast_s
    assert forecast is not None and forecast == pytest.approx((100 - 59.75) / 0.25)
    assert feed(site, [(float(t), 50.0 + 0.25 * t) for t in range(40, 80)]) == []
    (t,) = feed(site, [(80.0, 70.0)])  # 30 to go at 0.25 /s: 120 s
    assert t.to_state is State.UNACK_ACTIVE and t.forecast_s == pytest.approx(120)


def test_falling_value_has_no_rising_forecast() -> None:
    site = trend_site(
        rise_per_min=None, forecast={"limit": 100.0, "direction": "rising", "within_s": 120}
    )
    feed(site, [(float(t), 99.0 - t) for t in range(10)])
    assert site.state("p1/v/rise").forecast_s is None


def test_bad_quality_holds_the_trend_alarm() -> None:
    site = trend_site(min_samples=2)
    (t,) = feed(site, [(0, 0), (1, 10)])
    assert t.to_state is State.UNACK_ACTIVE
    site.quality[0] = 1
    assert site.tick(30) == []
    assert site.state("p1/v/rise").state is State.UNACK_ACTIVE

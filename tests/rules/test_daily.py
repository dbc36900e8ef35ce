"""The daily report's accumulators: statistics, episodes, maintenance time, midnight, restart."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from rules import DailyStats, load_packs
from tests.rules.harness import PACKS, Site, device_points

COAL = load_packs([PACKS / "coal_mine.yaml"])
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 2026-12-01 23:40:00 in Shanghai: 20 minutes to midnight.
BEFORE_MIDNIGHT = dt.datetime(2026, 12, 1, 23, 40, tzinfo=SHANGHAI).timestamp()


def mine(start: float = BEFORE_MIDNIGHT) -> Site:
    points = device_points("face1-gas", 0, "gas", {"position": "T1", "area": "face-1"})
    points += device_points("face2-gas", 1, "gas", {"position": "T1", "area": "face-2"})
    site = Site(points, COAL, start=start)
    site.engine.enable_daily(SHANGHAI, bin_s=60.0)
    for dev in ("face1-gas", "face2-gas"):
        site.set(dev, ch4=0.3, co=2, o2=20.9, h2s=0, temperature=22, status=1, fault=0)
    site.tick()
    return site


def column(stats: DailyStats, device: str, point: str, name: str) -> float:
    i = next(k for k, s in enumerate(stats.sensors) if (s.device, s.point) == (device, point))
    return float(stats.stats[name][i])


def test_statistics_episodes_and_durations() -> None:
    site = mine()
    site.set("face1-gas", ch4=1.2)  # over the alarm limit, 30 s
    site.run(30)
    site.set("face1-gas", ch4=1.6)  # power-off level, 20 s
    site.run(20)
    site.set("face1-gas", ch4=0.5)
    site.run(10)
    site.set("face1-gas", ch4=1.1)  # a second over-limit episode, 5 s
    site.run(5)
    site.set("face1-gas", ch4=0.4)
    site.run(5)
    daily = site.engine.daily
    assert daily is not None
    st = daily.snapshot()
    assert st.day == dt.date(2026, 12, 1)
    assert column(st, "face1-gas", "ch4", "max") == 1.6
    assert column(st, "face1-gas", "ch4", "min") == 0.3
    assert column(st, "face1-gas", "ch4", "samples") == 71
    mean = (0.3 + 1.2 * 30 + 1.6 * 20 + 0.5 * 10 + 1.1 * 5 + 0.4 * 5) / 71
    assert column(st, "face1-gas", "ch4", "mean") == pytest.approx(mean)
    assert column(st, "face1-gas", "ch4", "over_count") == 2
    # over while H or HH held (restore below 1.0 %): 30 + 20 s, then 5 s
    assert column(st, "face1-gas", "ch4", "over_s") == pytest.approx(55)
    assert column(st, "face1-gas", "ch4", "power_off_count") == 1
    assert column(st, "face1-gas", "ch4", "power_off_s") == pytest.approx(20)
    assert column(st, "face2-gas", "ch4", "over_count") == 0
    assert column(st, "face2-gas", "ch4", "max") == 0.3
    assert column(st, "face1-gas", "ch4", "maintenance_s") == 0
    assert st.covered_s == pytest.approx(70)
    # the chart's one-minute bins: the first minute's max is the power-off peak's start
    assert np.nanmax(st.chart_max[:, 0]) == 1.6


def test_maintenance_is_time_not_over_limit_and_not_in_the_statistics() -> None:
    site = mine()
    site.engine.start_maintenance("face1-gas", "li", 10, "calibration", site.now)
    site.set("face1-gas", ch4=2.0)
    site.run(120)
    site.engine.end_maintenance("face1-gas", "li", "done", site.now)
    site.set("face1-gas", ch4=0.3)
    site.run(10)
    daily = site.engine.daily
    assert daily is not None
    st = daily.snapshot()
    assert column(st, "face1-gas", "ch4", "maintenance_s") == pytest.approx(120)
    assert column(st, "face1-gas", "co", "maintenance_s") == pytest.approx(120)
    assert column(st, "face1-gas", "ch4", "over_count") == 0
    assert column(st, "face1-gas", "ch4", "power_off_count") == 0
    assert column(st, "face1-gas", "ch4", "max") == 0.3  # calibration gas is not a reading
    assert column(st, "face2-gas", "ch4", "maintenance_s") == 0


def test_midnight_finishes_the_day_and_a_running_episode_counts_again() -> None:
    site = mine()
    site.set("face1-gas", ch4=1.2)
    site.run(600)
    assert site.engine.take_finished_days() == []
    site.run(20 * 60)  # past 00:00
    (day,) = site.engine.take_finished_days()
    assert (day.day, day.complete) == (dt.date(2026, 12, 1), True)
    assert day.end - day.start == 86_400
    assert column(day, "face1-gas", "ch4", "over_count") == 1
    # 23:40:00 + 1 s (first tick) to 00:00:00: the day's share of the episode
    assert column(day, "face1-gas", "ch4", "over_s") == pytest.approx(20 * 60 - 1, abs=1)
    daily = site.engine.daily
    assert daily is not None
    today = daily.snapshot()
    assert today.day == dt.date(2026, 12, 2)
    assert column(today, "face1-gas", "ch4", "over_count") == 1
    assert column(today, "face1-gas", "ch4", "over_s") == pytest.approx(600, abs=1)


def test_a_restart_continues_the_day_without_counting_a_running_episode_twice() -> None:
    site = mine()
    site.set("face1-gas", ch4=1.2)
    site.run(60)
    daily = site.engine.daily
    assert daily is not None
    buffer = io.BytesIO()
    np.savez(buffer, **daily.snapshot().to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        saved = DailyStats.from_arrays(dict(data))

    later = mine(start=site.now + 120)  # two minutes down
    after = later.engine.daily
    assert after is not None
    assert after.restore(saved, later.now) is None
    later.set("face1-gas", ch4=1.2)
    later.run(30)
    st = after.snapshot()
    assert column(st, "face1-gas", "ch4", "over_count") == 1
    assert column(st, "face1-gas", "ch4", "over_s") == pytest.approx(60 + 30, abs=1)
    # (the new engine's first tick came before the restore, which replaced it)
    assert column(st, "face1-gas", "ch4", "samples") == 61 + 30


def test_a_saved_day_past_its_midnight_comes_back_as_finished() -> None:
    site = mine()
    site.run(30)
    daily = site.engine.daily
    assert daily is not None
    saved = daily.snapshot()
    nxt = mine(start=site.now + 3600)
    after = nxt.engine.daily
    assert after is not None
    late = after.restore(saved, nxt.now)
    assert late is not None and late.complete and late.day == dt.date(2026, 12, 1)

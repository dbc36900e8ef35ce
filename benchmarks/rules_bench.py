"""Rules-engine benchmark: tick time at 1k, 10k and 100k points with the shipped rule packs.

Builds a site of gas detectors (coal-mine pack, sensor positions T0…shearer), tank gauges,
elevators and tower cranes in a fixed mix, feeds every point a new sample each tick (the worst
case for the trend ring buffers) and reports the median tick time of

* a threshold-only engine (threshold rules of the packs): threshold point-evaluations per second;
* a threshold + rate-of-change engine: the tick budget figure;
* the full packs (stale, discrete, duration and comm rules as well);
* the full packs with the daily report's accumulators on (``RuleEngine.enable_daily``);
* the scalar reference implementation of the tests on a sample of the site, scaled to the size;
* the occupational exposure pack alone on 100k toxic-gas points (10 000 detectors × 10 gases,
  every point an exposure channel): median tick (``tick_ms_exposure``, wall clock, and
  ``tick_cpu_ms_exposure``, the process's CPU time for the same work, which a loaded machine
  inflates less), the slowest tick, a tick that closes a shift, and saving the state.

Human-readable lines first, then as the last line one JSON object for 100k points with keys
``points``, ``threshold_evals_per_s``, ``tick_ms_threshold_trend``, ``tick_ms_full``,
``tick_ms_full_daily``, ``daily_report_overhead`` (the ratio of the two, same run),
``speedup_vs_scalar`` and ``tick_ms_exposure``.

Run: ``.venv/bin/python benchmarks/rules_bench.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Callable, Sequence, Sized
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rules import PointRef, RuleEngine, RulePack, ShiftSchedule, load_packs  # noqa: E402
from tests.rules.harness import PROFILE_POINTS  # noqa: E402
from tests.rules.reference import ScalarEngine  # noqa: E402

PACK_FILES = ("coal_mine.yaml", "tank_farm.yaml", "elevator.yaml", "tower_crane.yaml")
#: Devices per block of 20: 8 gas detectors, 6 tanks, 3 elevators, 3 cranes.
MIX = ("gas",) * 8 + ("tank",) * 6 + ("elevator",) * 3 + ("crane",) * 3
POSITIONS = ("T0", "T1", "T2", "T3", "T4", "T7", "shearer")
#: Normal value, noise amplitude and slow swing amplitude per point name. Most points stay
#: normal; a small share of them (EXCURSION_SHARE) swing across their limits every few minutes.
BASELINE: dict[str, tuple[float, float, float]] = {
    "ch4": (0.2, 0.02, 1.2),
    "co": (4.0, 0.5, 30.0),
    "o2": (20.8, 0.05, 1.5),
    "h2s": (0.5, 0.1, 8.0),
    "lel": (1.0, 0.5, 40.0),
    "temperature": (22.0, 0.2, 12.0),
    "level_pct": (50.0, 0.05, 20.0),
    "level": (8.0, 0.02, 4.0),
    "pressure": (2.0, 0.05, 4.0),
    "moment_pct": (60.0, 1.0, 45.0),
    "wind_ms": (4.0, 0.5, 8.0),
    "tilt_x_deg": (0.0, 0.02, 0.8),
    "tilt_y_deg": (0.0, 0.02, 0.8),
    "load_t": (3.0, 0.1, 4.0),
    "rated_load_t": (8.0, 0.0, 0.0),
    "speed": (1.0, 0.05, 0.0),
    "rated_speed": (1.75, 0.0, 0.0),
    "running": (1.0, 0.0, 0.0),
    "door_closed": (1.0, 0.0, 0.0),
    "leveling": (1.0, 0.0, 0.0),
    "safety_circuit": (1.0, 0.0, 0.0),
    "status": (1.0, 0.0, 0.0),
    "nh3": (5.0, 0.5, 40.0),
    "so2": (0.5, 0.1, 4.0),
    "no2": (0.5, 0.1, 4.0),
    "cl2": (0.05, 0.01, 0.4),
    "hcn": (0.1, 0.02, 1.0),
    "benzene": (0.3, 0.05, 3.0),
    "methanol": (2.0, 0.3, 40.0),
    "h2o2": (0.1, 0.02, 4.0),
}
#: The points of the exposure benchmark's detectors: every gas of the occupational pack.
EXPOSURE_GASES = ("co", "h2s", "nh3", "so2", "no2", "cl2", "hcn", "benzene", "methanol", "h2o2")
EXCURSION_SHARE = 0.005


def build_points(n_points: int) -> list[PointRef]:
    points: list[PointRef] = []
    device = 0
    while len(points) < n_points:
        kind = MIX[device % len(MIX)]
        tags = {"area": f"area-{device // 200}"}
        if kind == "gas":
            tags["position"] = POSITIONS[(device // len(MIX)) % len(POSITIONS)]
        name = f"{kind}-{device:06d}"
        for point, unit in PROFILE_POINTS[kind]:
            points.append(PointRef(name, device, point, kind, tags, unit))
        device += 1
    return points[:n_points]


def build_exposure_points(n_points: int) -> list[PointRef]:
    """Toxic-gas detectors, each with every gas of the occupational exposure pack (ppm)."""
    points = []
    for device in range(-(-n_points // len(EXPOSURE_GASES))):
        name = f"tox-{device:06d}"
        points.extend(PointRef(name, device, gas, "gas", {}, "ppm") for gas in EXPOSURE_GASES)
    return points[:n_points]


def exposure_case(ticks: int, warmup: int) -> dict[str, float]:
    """The exposure pack alone on 100k points; times in ms, state size in MB."""
    points = build_exposure_points(100_000)
    packs = load_packs([ROOT / "rules" / "packs" / "occupational_exposure.yaml"])
    engine = RuleEngine(points, packs, shifts=ShiftSchedule(("00:00", "08:00", "16:00"), "UTC"))
    shift_end = 1_699_977_600.0  # 2023-11-14 16:00 UTC
    feed = Feed(points)
    feed.now = shift_end - 25 * 60  # the measured ticks stay inside one shift
    median, _ = time_ticks(vector_tick(engine), feed, ticks, warmup)
    cpu = []  # CPU time of the same ticks: what a tick costs when other processes share the cores
    for _ in range(ticks):
        feed.advance()
        c0 = time.process_time()
        engine.tick(feed.now, feed.values, feed.quality, feed.sample_ts, feed.online)
        cpu.append(time.process_time() - c0)
    cpu_median = statistics.median(cpu)
    slowest = 0.0
    for _ in range(120):  # two minutes of ticks: two 1-min bucket boundaries
        feed.advance()
        t0 = time.perf_counter()
        engine.tick(feed.now, feed.values, feed.quality, feed.sample_ts, feed.online)
        slowest = max(slowest, time.perf_counter() - t0)
    feed.now = shift_end - 1.0  # the next tick closes the shift
    feed.advance()
    t0 = time.perf_counter()
    engine.tick(feed.now, feed.values, feed.quality, feed.sample_ts, feed.online)
    close = time.perf_counter() - t0
    assert len(engine.take_shift_exposures()) == 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exposure.npz"
        t0 = time.perf_counter()
        engine.save_exposure(path)
        save = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
    print(
        f" 100000 exposure points ({engine.exposure_points} channels, "
        f"{len(engine.plan.bindings)} rows): {median * 1e3:6.3f} ms/tick median "
        f"({cpu_median * 1e3:.3f} ms CPU), slowest of "
        f"120 {slowest * 1e3:6.3f} ms, shift close {close * 1e3:6.1f} ms, state "
        f"{size_mb:.0f} MB saved in {save * 1e3:.0f} ms"
    )
    return {
        "tick_ms_exposure": round(median * 1e3, 3),
        "tick_cpu_ms_exposure": round(cpu_median * 1e3, 3),
        "tick_ms_exposure_slowest": round(slowest * 1e3, 3),
        "exposure_shift_close_ms": round(close * 1e3, 1),
        "exposure_save_ms": round(save * 1e3),
        "exposure_state_mb": round(size_mb, 1),
    }


def select(packs: Sequence[RulePack], types: set[str] | None) -> list[RulePack]:
    if types is None:
        return list(packs)
    return [p.model_copy(update={"rules": [r for r in p.rules if r.type in types]}) for p in packs]


class Feed:
    """Synthetic point table: every point gets a new sample each tick (1 s apart)."""

    def __init__(self, points: Sequence[PointRef], seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        n = len(points)
        normal, noise, swing = np.zeros(n), np.zeros(n), np.zeros(n)
        for i, p in enumerate(points):
            normal[i], noise[i], swing[i] = BASELINE.get(p.point, (0.0, 0.0, 0.0))
        swing[rng.random(n) >= EXCURSION_SHARE] = 0.0
        self.rng = rng
        self.normal, self.noise, self.swing = normal, noise, swing
        self.phase = rng.uniform(0, 2 * np.pi, n)
        self.values = normal.copy()
        self.quality = np.zeros(n, dtype=np.uint8)
        self.sample_ts = np.zeros(n)
        self.online = np.ones(max(p.device_index for p in points) + 1, dtype=np.bool_)
        self.now = 1_700_000_000.0
        self.step = 0

    def advance(self) -> None:
        self.now += 1.0
        self.step += 1
        jitter = self.noise * self.rng.standard_normal(self.normal.size)
        self.values = self.normal + jitter + self.swing * np.sin(self.phase + self.step / 120.0)
        self.sample_ts[:] = self.now
        self.quality[:] = 0
        if self.step % 50 == 0:  # now and then a device drops out for a while
            self.online[:] = True
            self.online[self.rng.integers(0, self.online.size, self.online.size // 2000 + 1)] = (
                False
            )


def time_ticks(
    tick: Callable[[Feed], Sized], feed: Feed, ticks: int, warmup: int
) -> tuple[float, float]:
    """Median seconds per tick (feed preparation excluded) and mean transitions per tick."""
    for _ in range(warmup):
        feed.advance()
        tick(feed)
    samples = []
    transitions = 0
    for _ in range(ticks):
        feed.advance()
        t0 = time.perf_counter()
        out = tick(feed)
        samples.append(time.perf_counter() - t0)
        transitions += len(out)
    return statistics.median(samples), transitions / ticks


def vector_tick(engine: RuleEngine) -> Callable[[Feed], Sized]:
    def run(f: Feed) -> Sized:
        return engine.tick(f.now, f.values, f.quality, f.sample_ts, f.online)

    return run


def scalar_tick(engine: ScalarEngine) -> Callable[[Feed], Sized]:
    def run(f: Feed) -> Sized:
        return engine.tick(
            f.now, f.values.tolist(), f.quality.tolist(), f.sample_ts.tolist(), f.online.tolist()
        )

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer ticks (a smoke run)")
    parser.add_argument("--ticks", type=int, default=200, help="measured ticks per case")
    parser.add_argument("--scalar-sample", type=int, default=2000, help="points for the scalar run")
    args = parser.parse_args(argv)
    ticks = 20 if args.quick else args.ticks
    warmup = 5 if args.quick else 70  # fill the trend windows before measuring

    packs = load_packs([ROOT / "rules" / "packs" / f for f in PACK_FILES])
    threshold_only = select(packs, {"threshold"})
    threshold_trend = select(packs, {"threshold", "rate_of_change"})
    result: dict[str, float | int] = {}
    for n in (1_000, 10_000, 100_000):
        points = build_points(n)
        t0 = time.perf_counter()
        thr = RuleEngine(points, threshold_only)
        build_s = time.perf_counter() - t0
        trend = RuleEngine(points, threshold_trend)
        full = RuleEngine(points, packs)
        daily = RuleEngine(points, packs)
        daily.enable_daily(zoneinfo.ZoneInfo("Asia/Shanghai"))
        thr_rows = len(thr.plan.bindings)
        t_thr, _ = time_ticks(vector_tick(thr), Feed(points), ticks, warmup)
        t_trend, _ = time_ticks(vector_tick(trend), Feed(points), ticks, warmup)
        t_full, moves = time_ticks(vector_tick(full), Feed(points), ticks, warmup)
        t_daily, _ = time_ticks(vector_tick(daily), Feed(points), ticks, warmup)
        evals = thr_rows / t_thr
        print(
            f"{n:>7} points: compile {build_s * 1e3:7.1f} ms | threshold-only "
            f"{t_thr * 1e3:6.3f} ms/tick ({thr_rows} rows, {evals / 1e6:6.1f} M evals/s) | "
            f"threshold+trend {t_trend * 1e3:6.3f} ms ({len(trend.plan.bindings)} rows) | "
            f"full packs {t_full * 1e3:6.3f} ms ({len(full.plan.bindings)} rows, "
            f"{moves:.1f} transitions/tick) | with the daily report {t_daily * 1e3:6.3f} ms "
            f"({daily.daily.size if daily.daily else 0} sensors)"
        )
        result = {
            "points": n,
            "threshold_evals_per_s": round(evals),
            "tick_ms_threshold_trend": round(t_trend * 1e3, 3),
            "tick_ms_full": round(t_full * 1e3, 3),
            "tick_ms_full_daily": round(t_daily * 1e3, 3),
            "daily_report_overhead": round(t_daily / t_full, 3),
        }
        last_trend_tick = t_trend

    sample = build_points(args.scalar_sample)
    scalar = ScalarEngine(RuleEngine(sample, threshold_trend).plan)
    t_scalar, _ = time_ticks(scalar_tick(scalar), Feed(sample), max(5, ticks // 10), warmup)
    scaled = t_scalar * (100_000 / len(sample))
    speedup = scaled / last_trend_tick
    print(
        f"scalar reference: {t_scalar * 1e3:.2f} ms/tick for {len(sample)} points, scaled to "
        f"100000 points {scaled * 1e3:.0f} ms/tick; vectorized speedup {speedup:.0f}x"
    )
    result["speedup_vs_scalar"] = round(speedup, 1)
    result |= exposure_case(ticks, warmup)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

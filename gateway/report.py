"""The daily report (24 h): where its data lives, and its CSV, HTML, MQTT and database forms.

The rules engine accumulates each local day (``rules.DailyAccumulator``: per sensor max, min,
mean, over-limit and power-off episodes and durations, feed-abnormal episodes, maintenance time
and a chart series). The gateway keeps that day on disk, beside the outbox, so a restart does
not lose it::

    {state dir}/daily-{site id}/today.npz         the day so far (rewritten atomically)
    {state dir}/daily-{site id}/YYYY-MM-DD.npz    each finished day
    {state dir}/daily-{site id}/YYYY-MM-DD.csv    its report, one row per sensor
    {state dir}/daily-{site id}/YYYY-MM-DD.html   its report as one self-contained page

``{state dir}`` is the directory of the outbox file (``outbox.path``, by default the gateway's
state directory), or the state directory itself when the outbox is turned off. At local
midnight (site ``timezone``) the gateway writes the finished day's files, publishes the retained
summary on ``P/report/daily`` and one ``daily`` line per sensor for the database (through the
sink, so through the outbox: a database that is down gets them later). ``hazardgw report daily
-c site.yaml --date YYYY-MM-DD --out DIR`` renders any kept day (today's so far too) from these
files alone; it needs neither broker nor database.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from gateway.config import SiteConfig, state_directory
from gateway.sinks.lineprotocol import daily_line
from rules import DAILY_FIELDS, DailyStats

__all__ = [
    "DailyStore",
    "daily_lines",
    "render_csv",
    "render_html",
    "report_directory",
    "summary_doc",
    "write_report",
]

log = logging.getLogger(__name__)

TODAY: Final = "today.npz"
#: Columns of the CSV after device, point and unit.
CSV_FIELDS: Final = tuple(DAILY_FIELDS)


def report_directory(site: SiteConfig) -> Path:
    """``daily-{site id}`` beside the outbox file, or in the gateway's state directory
    (:func:`gateway.config.state_directory`) when the outbox is turned off."""
    outbox = site.outbox.path if site.outbox is not None else None
    base = Path(outbox).parent if outbox is not None else state_directory()
    return base.resolve() / f"daily-{site.site.id}"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader (or a crash) sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npz_bytes(stats: DailyStats) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **stats.to_arrays())  # type: ignore[arg-type]
    return buffer.getvalue()


def _load(path: Path) -> DailyStats:
    with np.load(path, allow_pickle=False) as data:
        return DailyStats.from_arrays(dict(data))


class DailyStore:
    """The daily report's files of one site (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def today_path(self) -> Path:
        return self.directory / TODAY

    def save_today(self, stats: DailyStats) -> None:
        _atomic_write(self.today_path, _npz_bytes(stats))

    def load_today(self) -> DailyStats | None:
        """The saved day so far, or None: no file, or one that cannot be read (it is moved
        aside to ``today.npz.bad`` and logged, so the day starts afresh instead of failing)."""
        try:
            return _load(self.today_path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError) as exc:
            aside = self.today_path.with_name(TODAY + ".bad")
            log.error(
                "daily report data %s unusable (%s); moved to %s", self.today_path, exc, aside
            )
            try:
                self.today_path.replace(aside)
            except OSError as move:
                log.error("could not move %s aside: %s", self.today_path, move)
            return None

    def save_day(self, stats: DailyStats) -> Path:
        path = self.directory / f"{stats.day.isoformat()}.npz"
        _atomic_write(path, _npz_bytes(stats))
        return path

    def load_day(self, day: dt.date) -> DailyStats | None:
        """A finished day, or today's data so far when ``day`` is the saved current day."""
        path = self.directory / f"{day.isoformat()}.npz"
        if path.is_file():
            return _load(path)
        today = self.load_today()
        if today is not None and today.day == day:
            return today
        return None

    def days(self) -> list[dt.date]:
        """Days with data, oldest first."""
        out = []
        for p in self.directory.glob("????-??-??.npz"):
            try:
                out.append(dt.date.fromisoformat(p.stem))
            except ValueError:
                continue
        today = self.load_today()
        if today is not None and today.day not in out:
            out.append(today.day)
        return sorted(out)


# ------------------------------------------------------------------------------- values


def _value(stats: DailyStats, name: str, i: int) -> float | int | None:
    v = stats.stats[name][i]
    if DAILY_FIELDS[name] == "int":
        return int(v)
    f = float(v)
    return None if math.isnan(f) else f


def _fmt(v: float | int | None, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}"


def _duration(seconds: float | int | None) -> str:
    s = round(float(seconds or 0))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ------------------------------------------------------------------------------- CSV


def render_csv(stats: DailyStats) -> str:
    """One row per sensor: device, point, unit and :data:`rules.DAILY_FIELDS` (durations in s;
    empty where a sensor had no sample)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", "device", "point", "unit", *CSV_FIELDS])
    for i, s in enumerate(stats.sensors):
        row = [_fmt(_value(stats, name, i), 6) for name in CSV_FIELDS]
        writer.writerow([stats.day.isoformat(), s.device, s.point, s.unit, *row])
    return out.getvalue()


# ------------------------------------------------------------------------------- summary


def summary_doc(stats: DailyStats, site_id: str, *, files: Sequence[Path] = ()) -> dict[str, Any]:
    """The retained ``P/report/daily`` payload: the day, its totals (counts and seconds summed
    over the sensors) and the sensors with an over-limit, a power-off, a feed abnormality or
    maintenance."""
    st = stats.stats
    notable = np.flatnonzero(
        (st["over_count"] > 0)
        | (st["power_off_count"] > 0)
        | (st["feed_abnormal_count"] > 0)
        | (st["maintenance_s"] > 0)
    )
    return {
        "ts": round(stats.end * 1000) if stats.complete else None,
        "site": site_id,
        "day": stats.day.isoformat(),
        "start": round(stats.start * 1000),
        "end": round(stats.end * 1000),
        "complete": stats.complete,
        "covered_s": round(stats.covered_s, 1),
        "sensors": len(stats.sensors),
        "over_count": int(st["over_count"].sum()),
        "over_s": round(float(st["over_s"].sum()), 1),
        "power_off_count": int(st["power_off_count"].sum()),
        "power_off_s": round(float(st["power_off_s"].sum()), 1),
        "feed_abnormal_count": int(st["feed_abnormal_count"].sum()),
        "maintenance_s": round(float(st["maintenance_s"].sum()), 1),
        "notable": [
            {
                "device": stats.sensors[i].device,
                "point": stats.sensors[i].point,
                **{name: _value(stats, name, int(i)) for name in DAILY_FIELDS},
            }
            for i in notable.tolist()
        ],
        "files": [p.name for p in files],
    }


def daily_lines(site_id: str, stats: DailyStats) -> list[str]:
    """One ``daily`` line per sensor, stamped with the day's local midnight (ms)."""
    ts_ms = round(stats.start * 1000)
    lines = []
    for i, s in enumerate(stats.sensors):
        fields = {name: v for name in DAILY_FIELDS if (v := _value(stats, name, i)) is not None}
        line = daily_line(site_id, ts_ms, device=s.device, point=s.point, fields=fields)
        if line is not None:
            lines.append(line)
    return lines


# ------------------------------------------------------------------------------- HTML

_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 720, 170, 56, 12, 10, 24


def _chart(stats: DailyStats, i: int) -> str:
    """An inline SVG: min-max band and mean per bin over the day, maintenance shaded."""
    mean = stats.chart_mean[:, i]
    lo = stats.chart_min[:, i]
    hi = stats.chart_max[:, i]
    maint = stats.chart_maintenance[:, i]
    n = len(mean)
    width = _W - _PAD_L - _PAD_R
    height = _H - _PAD_T - _PAD_B
    seen = ~np.isnan(mean)
    if seen.any():
        y0, y1 = float(np.nanmin(lo)), float(np.nanmax(hi))
    else:
        y0, y1 = 0.0, 1.0
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def x(k: float) -> float:
        return _PAD_L + width * k / n

    def y(v: float) -> float:
        return _PAD_T + height * (1.0 - (v - y0) / (y1 - y0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{html.escape(stats.sensors[i].point)}">',
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{width}" height="{height}" class="plot"/>',
    ]
    for k in np.flatnonzero(maint).tolist():  # maintenance bins
        parts.append(
            f'<rect x="{x(k):.1f}" y="{_PAD_T}" width="{max(width / n, 1):.1f}" '
            f'height="{height}" class="maint"><title>maintenance</title></rect>'
        )
    hours = (stats.end - stats.start) / 3600.0
    for h in range(0, round(hours) + 1, 3):
        xx = x(h * 3600.0 / stats.bin_s)
        parts.append(
            f'<line x1="{xx:.1f}" y1="{_PAD_T}" x2="{xx:.1f}" y2="{_H - _PAD_B}" class="grid"/>'
        )
        parts.append(f'<text x="{xx:.1f}" y="{_H - 8}" class="tick">{h:02d}:00</text>')
    for v in (y0, (y0 + y1) / 2, y1):
        parts.append(f'<text x="{_PAD_L - 4}" y="{y(v) + 4:.1f}" class="ytick">{v:.3g}</text>')
    # contiguous runs of bins with samples: a band polygon and a mean polyline each
    runs = np.split(np.arange(n), np.flatnonzero(np.diff(seen.astype(np.int8)) != 0) + 1)
    for run in runs:
        if run.size == 0 or not seen[run[0]]:
            continue
        xs = [x(k + 0.5) for k in run.tolist()]
        top = " ".join(f"{a:.1f},{y(b):.1f}" for a, b in zip(xs, hi[run].tolist(), strict=True))
        bottom = " ".join(
            f"{a:.1f},{y(b):.1f}"
            for a, b in zip(reversed(xs), reversed(lo[run].tolist()), strict=True)
        )
        if run.size == 1:  # a lone bin: a dot and its range
            k = int(run[0])
            parts.append(
                f'<line x1="{xs[0]:.1f}" y1="{y(float(hi[k])):.1f}" x2="{xs[0]:.1f}" '
                f'y2="{y(float(lo[k])):.1f}" class="mean"/><circle cx="{xs[0]:.1f}" '
                f'cy="{y(float(mean[k])):.1f}" r="1.5" class="dot"/>'
            )
            continue
        parts.append(f'<polygon points="{top} {bottom}" class="band"/>')
        line = " ".join(f"{a:.1f},{y(b):.1f}" for a, b in zip(xs, mean[run].tolist(), strict=True))
        parts.append(f'<polyline points="{line}" class="mean"/>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}td.n{text-align:right}tr.hit td{background:#fff3f0}
section{margin:1.2em 0}h2{font-size:15px;margin:.2em 0}
svg .plot{fill:#fafafa;stroke:#999}svg .grid{stroke:#e3e3e3}svg .band{fill:#9ecae1;opacity:.6}
svg .mean{fill:none;stroke:#08519c;stroke-width:1.2}svg .dot{fill:#08519c}
svg .maint{fill:#fdd49e;opacity:.7}
svg text{font-size:10px;fill:#555}svg .ytick{text-anchor:end}svg .tick{text-anchor:middle}
"""


def render_html(stats: DailyStats, site_name: str) -> str:
    """The report as one HTML page with inline CSS and SVG (no scripts, no external assets)."""
    esc = html.escape
    st = stats.stats
    status = "complete" if stats.complete else "so far (the day is not over)"
    head = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>日报表 / daily report {stats.day.isoformat()} — {esc(site_name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>监测日报表 / daily report — {esc(site_name)}, {stats.day.isoformat()}</h1>",
        f"<p>{status}; observed {_duration(stats.covered_s)} of "
        f"{_duration(stats.end - stats.start)}. Over-limit episodes "
        f"{int(st['over_count'].sum())}, power-off episodes {int(st['power_off_count'].sum())}, "
        f"feed-abnormal episodes {int(st['feed_abnormal_count'].sum())}; "
        f"{int((st['maintenance_s'] > 0).sum())} sensors had maintenance (calibration time is not "
        "over-limit and its readings are not in the statistics).</p>",
    ]
    rows = [
        "<table><tr><th>device</th><th>point</th><th>unit</th><th>samples</th><th>mean</th>"
        "<th>max</th><th>min</th><th>over-limit</th><th>over-limit time</th><th>power-off</th>"
        "<th>power-off time</th><th>feed abnormal</th><th>maintenance</th></tr>"
    ]
    for i, s in enumerate(stats.sensors):
        hit = any(
            int(st[k][i]) > 0 for k in ("over_count", "power_off_count", "feed_abnormal_count")
        )
        cells = [
            _fmt(_value(stats, "samples", i)),
            _fmt(_value(stats, "mean", i)),
            _fmt(_value(stats, "max", i)),
            _fmt(_value(stats, "min", i)),
            _fmt(_value(stats, "over_count", i)),
            _duration(_value(stats, "over_s", i)),
            _fmt(_value(stats, "power_off_count", i)),
            _duration(_value(stats, "power_off_s", i)),
            _fmt(_value(stats, "feed_abnormal_count", i)),
            _duration(_value(stats, "maintenance_s", i)),
        ]
        tr = '<tr class="hit">' if hit else "<tr>"
        rows.append(
            f"{tr}<td>{esc(s.device)}</td><td>{esc(s.point)}</td><td>{esc(s.unit)}</td>"
            + "".join(f'<td class="n">{c}</td>' for c in cells)
            + "</tr>"
        )
    rows.append("</table>")
    charts = [
        f'<section id="{esc(s.device)}-{esc(s.point)}"><h2>{esc(s.device)} / {esc(s.point)}'
        f"{' (' + esc(s.unit) + ')' if s.unit else ''}</h2>{_chart(stats, i)}</section>"
        for i, s in enumerate(stats.sensors)
    ]
    legend = (
        "<p>Charts: blue band = min-max per "
        f"{stats.bin_s / 60:g} min, line = mean, orange = maintenance.</p>"
    )
    return "\n".join([*head, *rows, legend, *charts, "</body></html>"]) + "\n"


def write_report(stats: DailyStats, site: SiteConfig, out_dir: Path) -> tuple[Path, Path]:
    """Write ``YYYY-MM-DD.csv`` and ``YYYY-MM-DD.html`` into ``out_dir`` (atomically)."""
    day = stats.day.isoformat()
    csv_path = out_dir / f"{day}.csv"
    html_path = out_dir / f"{day}.html"
    _atomic_write(csv_path, render_csv(stats).encode("utf-8"))
    page = render_html(stats, site.site.name or site.site.id)
    _atomic_write(html_path, page.encode("utf-8"))
    return csv_path, html_path

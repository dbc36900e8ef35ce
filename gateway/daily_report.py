"""The daily report in the running gateway: keep the day on disk, report it at local midnight.

:class:`DailyReporter` turns the rules engine's daily accumulators on (days in the site's
``timezone``), continues a saved day after a restart (or reports it, when the gateway was down
over its midnight), saves the day so far every ``save_interval`` seconds and at stop, and when a
day finishes: writes its ``.npz``, ``.csv`` and ``.html`` (see :mod:`gateway.report`), publishes
the retained summary on ``P/report/daily`` and hands one ``daily`` line per sensor to the
database sink (through the outbox when there is one, so a database that is down gets them
later). Disk trouble is logged and never stops the gateway nor the MQTT and database forms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from gateway.config import SiteConfig
from gateway.messages import OutboundMessage, json_payload
from gateway.report import DailyStore, daily_lines, report_directory, summary_doc, write_report
from gateway.topics import Topics
from rules import DailyStats, RuleEngine

__all__ = ["DailyReporter"]

log = logging.getLogger(__name__)


class DailyReporter:
    """The daily report of one gateway (see the module docstring)."""

    def __init__(
        self,
        site: SiteConfig,
        engine: RuleEngine,
        topics: Topics,
        publish: Callable[[OutboundMessage], None],
        *,
        lines: Callable[[Sequence[str]], None] | None = None,
        clock: Callable[[], float] = time.time,
        save_interval: float = 60.0,
    ) -> None:
        self.site = site
        self.engine = engine
        self.daily = engine.enable_daily(site.site.zone)
        self.topics = topics
        self.publish = publish
        self.lines = lines
        self.clock = clock
        self.save_interval = save_interval
        self.store = DailyStore(report_directory(site))
        self._writing: set[asyncio.Task[None]] = set()
        self.reported: list[DailyStats] = []

    def restore(self) -> None:
        """Continue the saved day (or report it, if its midnight has passed)."""
        saved = self.store.load_today()
        if saved is None:
            return
        late = self.daily.restore(saved, self.clock())
        if late is not None:
            log.info("reporting %s, which ended while the gateway was stopped", late.day)
            self.finish(late)
        else:
            log.info("daily report: continuing %s from the saved day", saved.day)

    def finish(self, stats: DailyStats) -> None:
        """Report a finished day: files, ``P/report/daily`` and the database's ``daily`` lines."""
        self.reported.append(stats)
        day = stats.day.isoformat()
        files = [self.store.directory / f"{day}.{ext}" for ext in ("npz", "csv", "html")]
        doc = summary_doc(stats, self.site.site.id, files=files)
        self.publish(
            OutboundMessage(
                self.topics.report_daily, json_payload(doc), qos=1, retain=True, kind="status"
            )
        )
        if self.lines is not None:
            self.lines(daily_lines(self.site.site.id, stats))
        log.info(
            "daily report %s: %d over-limit, %d power-off, %d feed-abnormal episodes",
            day,
            doc["over_count"],
            doc["power_off_count"],
            doc["feed_abnormal_count"],
        )
        # the new day, so a restart does not find the finished one as "today" and report it again
        today = self.daily.snapshot() if self.daily.day not in (None, stats.day) else None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_files(stats, today)
            return
        task = loop.create_task(asyncio.to_thread(self._write_files, stats, today))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    def _write_files(self, stats: DailyStats, today: DailyStats | None) -> None:
        try:
            self.store.save_day(stats)
            write_report(stats, self.site, self.store.directory)
            if today is not None:
                self.store.save_today(today)
        except OSError as exc:
            log.error("daily report %s: cannot write its files: %s", stats.day, exc)

    def save(self) -> None:
        """Save the day so far (atomically)."""
        if self.daily.day is None:
            return
        try:
            self.store.save_today(self.daily.snapshot())
        except OSError as exc:
            log.error("daily report: cannot save the day so far: %s", exc)

    async def run(self) -> None:
        """Save the day so far every ``save_interval`` seconds (in a worker thread)."""
        while True:
            await asyncio.sleep(self.save_interval)
            if self.daily.day is not None:
                snapshot = self.daily.snapshot()
                try:
                    await asyncio.to_thread(self.store.save_today, snapshot)
                except OSError as exc:
                    log.error("daily report: cannot save the day so far: %s", exc)

    async def close(self) -> None:
        """Finish writing reports in progress and save the day so far."""
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
        self.save()

"""The gateway: pollers, point table, publishers, as named tasks in one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gateway import __version__
from gateway.aio import raise_if_cancelling
from gateway.alarm_service import AlarmService, build_engine
from gateway.commands import command_reply
from gateway.config import MqttConfig, SiteConfig
from gateway.daily_report import DailyReporter
from gateway.delivery import TickTransaction
from gateway.drivers.modbus.link import ModbusLink, link_key
from gateway.exposure import ExposureKeeper
from gateway.maintenance import maintenance_status
from gateway.messages import OutboundMessage, json_payload
from gateway.metrics import GatewayReadings, MetricsServer
from gateway.mqtt import MqttPublisher
from gateway.outbox import AsyncOutbox, OutboxError
from gateway.points import PointTable
from gateway.poller import DevicePoller, PollResult
from gateway.redact import SECRETS, secret_from_env
from gateway.rescue import RescueBook
from gateway.sinks.influx import InfluxSink, influx_token
from gateway.telemetry import TelemetryPayload, TelemetrySample, device_status_payload
from gateway.topics import Topics
from rules import AlarmTransition, DailyStats, MaintenanceEvent

__all__ = ["Gateway", "GatewayStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class GatewayStats:
    polls: int = 0
    failed_polls: int = 0
    telemetry_messages: int = 0  # telemetry records produced (one per good poll)
    # the newest telemetry ts (ms) and how many records carry it: see telemetry_through
    last_telemetry_ms: int = -1
    at_last_telemetry_ms: int = 0
    points: int = 0
    requests: int = 0
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)

    def telemetry_through(self, ts_ms: int) -> int:
        """Telemetry records produced so far with ``ts <= ts_ms``, for ``ts_ms`` at least the
        current millisecond minus one (records are stamped in the order they are produced)."""
        later = self.at_last_telemetry_ms if self.last_telemetry_ms > ts_ms else 0
        return self.telemetry_messages - later

    def snapshot(self) -> dict[str, float]:
        lags = np.fromiter(self.lag_ms, dtype=np.float64) if self.lag_ms else np.zeros(1)
        return {
            "polls": self.polls,
            "failed_polls": self.failed_polls,
            "points": self.points,
            "requests": self.requests,
            "poll_lag_ms": float(np.percentile(lags, 50)),  # the median of the recent polls
            "poll_lag_p99_ms": float(np.percentile(lags, 99)),
        }


class Gateway:
    """Polls every device of a site and publishes telemetry, status and alarms."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        mqtt: MqttConfig | None = None,
        client_id: str | None = None,
        backoff_max: float = 10.0,
        stats_interval: float = 5.0,
    ) -> None:
        self.site = site
        self.mqtt_cfg = mqtt or site.mqtt
        # every secret the gateway will use is masked in logs and payloads from the start
        secret_from_env(self.mqtt_cfg.password_env)
        secret_from_env(site.influx.token_env if site.influx else None)
        SECRETS.install()
        self.topics = Topics(self.mqtt_cfg.topic_prefix, site.site.id)
        self.table = PointTable(site.devices)
        self.stats = GatewayStats()
        self.stats_interval = stats_interval
        base_dir = str(site.source.resolve().parent) if site.source else None
        self.publisher = MqttPublisher(
            self.mqtt_cfg,
            self.topics,
            client_id=client_id
            or self.mqtt_cfg.client_id
            or f"hazardgw-{site.site.id}-{socket.gethostname()}-{os.getpid()}",
            version=__version__,
            on_command=self.handle_command,
            base_dir=base_dir,
            backoff_max=backoff_max,
        )
        self.links: dict[str, ModbusLink] = {}
        self.pollers: list[DevicePoller] = []
        n = max(1, len(site.devices))
        for rows in self.table.devices:
            dev = rows.device
            key = link_key(dev.connection)
            link = self.links.get(key)
            if link is None:
                link = self.links[key] = ModbusLink(dev.connection, timeout=dev.timeout)
            # spread first polls over one interval so a large site does not poll in lock-step
            stagger = dev.poll_interval * (rows.index / n)
            self.pollers.append(
                DevicePoller(rows, link, self.on_poll, backoff_max=backoff_max, start_delay=stagger)
            )
        self._online: list[bool | None] = [None] * len(self.pollers)
        self._errors = [0] * len(self.pollers)
        self._last_error: list[str | None] = [None] * len(self.pollers)
        self._latency_ms: list[float | None] = [None] * len(self.pollers)
        self._device_index = {rows.device.id: rows.index for rows in self.table.devices}
        self._telemetry_topics = [self.topics.telemetry(r.device.id) for r in self.table.devices]
        self._payloads = [TelemetryPayload(r.names, r.integer) for r in self.table.devices]
        self.telemetry_qos = self.mqtt_cfg.telemetry_qos
        self.outbox: AsyncOutbox | None = None
        self.transaction: TickTransaction | None = None  # commits to the durable outbox
        self.alarms: AlarmService | None = None
        self.report: DailyReporter | None = None
        self.sink: InfluxSink | None = None
        self.exposure: ExposureKeeper | None = None
        self.points_per_s = 0.0
        self.metrics: MetricsServer | None = None
        if site.metrics is not None:
            self.metrics = MetricsServer(
                self._readings(), host=site.metrics.host, port=site.metrics.port
            )
        if site.rules:
            engine = build_engine(site, self.table)
            rescue = RescueBook.for_site(site, self.topics.base)
            rescue.write_line = lambda line: self._write_lines([line])
            self.alarms = AlarmService(
                engine,
                self.table,
                self.topics,
                self.publisher.publish,
                on_transition=self._record_transition,
                on_maintenance=self._maintenance_changed,
                on_day=self._day_finished,
                rescue=rescue,
            )
            self.report = DailyReporter(
                site, engine, self.topics, self.publisher.publish, lines=self._daily_lines
            )
            if engine.exposure_points:
                self.exposure = ExposureKeeper(
                    engine, site.exposure, site.site.id, self._write_lines
                )

    def _write_lines(self, lines: list[str]) -> None:
        """Per-shift exposure rows and rescue records go to the database like alarms (through
        the outbox)."""
        if self.sink is not None:
            self.sink.add_lines(lines)

    def _readings(self) -> GatewayReadings:
        """What a metrics scrape reads (at scrape time, on the event loop)."""
        return GatewayReadings(
            polls=lambda: self.stats.polls,
            failed_polls=lambda: self.stats.failed_polls,
            points=lambda: self.stats.points,
            points_per_s=lambda: self.points_per_s,
            alarms=lambda: (
                [(a.priority, a.state.value) for a in self.alarms.engine.active_alarms()]
                if self.alarms is not None
                else []
            ),
            outbox_depth=lambda: self.outbox.stats().rows if self.outbox is not None else 0,
            broker_connected=lambda: self.publisher.stats.connected,
            database_connected=(
                (lambda: self.sink.stats.connected if self.sink is not None else False)
                if self.site.influx is not None
                else None
            ),
            devices_online=lambda: int(self.table.device_online.sum()),
        )

    def _record_transition(self, tr: AlarmTransition) -> None:
        if self.sink is not None:
            self.sink.add_alarm(
                round(tr.ts * 1000),
                device=tr.device,
                point=tr.point,
                rule=tr.rule,
                level=tr.level,
                state=tr.to_state,
                value=tr.value,
                limit=tr.limit,
            )

    # ------------------------------------------------------------------ poll results

    def on_poll(self, res: PollResult) -> None:
        idx = res.rows.index
        dev = res.rows.device
        ts_ms = int(res.ts * 1000)
        st = self.stats
        st.polls += 1
        st.lag_ms.append(res.lag_s * 1000.0)
        if self.metrics is not None:
            self.metrics.poll_lag.observe(res.lag_s)
        st.requests += res.requests
        if res.error is None and res.values is not None and res.good is not None:
            self.table.update(idx, res.values, res.good, res.ts)
            st.points += int(res.good.sum())
            maintenance = self.alarms is not None and bool(self.alarms.engine.in_maintenance[idx])
            # one record of the poll, read by the MQTT payload and the database line
            sample = TelemetrySample.from_poll(
                res.rows, ts_ms, res.values, res.good, maintenance=maintenance
            )
            st.telemetry_messages += 1
            if ts_ms != st.last_telemetry_ms:
                st.last_telemetry_ms, st.at_last_telemetry_ms = ts_ms, 0
            st.at_last_telemetry_ms += 1
            # With an outbox, the message and the line below are staged in self.transaction by
            # this one callback, so they are committed in one transaction (gateway/delivery.py).
            self.publisher.publish(
                OutboundMessage(
                    self._telemetry_topics[idx],
                    self._payloads[idx].encode(sample),
                    qos=self.telemetry_qos,
                )
            )
            if self.sink is not None:
                self.sink.add_sample(dev, sample)
            online, error = True, None
        else:
            st.failed_polls += 1
            self._errors[idx] += 1
            self.table.mark_bad(idx, res.ts)
            online, error = False, str(res.error)
        self.table.device_online[idx] = online
        if self.alarms is not None:
            self.alarms.poll_arrived(idx, res.ts)
        self._last_error[idx] = error
        self._latency_ms[idx] = res.latency_s * 1000.0
        if self._online[idx] != online:
            self._online[idx] = online
            if self.sink is not None:
                self.sink.add_device_status(
                    dev.id, ts_ms, online, res.latency_s * 1000.0, self._errors[idx]
                )
            self._publish_device_status(idx, ts_ms)

    def _publish_device_status(self, idx: int, ts_ms: int) -> None:
        """The retained ``P/{device}/status``: online, last error, latency, maintenance."""
        dev = self.table.devices[idx].device
        event = self.alarms.engine.maintenance(dev.id) if self.alarms is not None else None
        latency = self._latency_ms[idx]
        self.publisher.publish(
            OutboundMessage(
                self.topics.status(dev.id),
                device_status_payload(
                    ts_ms,
                    bool(self._online[idx]),
                    self._last_error[idx],
                    float("nan") if latency is None else latency,
                    self._errors[idx],
                    maintenance=maintenance_status(event),
                ),
                qos=1,
                retain=True,
                kind="status",
            )
        )

    def _day_finished(self, stats: DailyStats) -> None:
        if self.report is not None:
            self.report.finish(stats)

    def _daily_lines(self, lines: Sequence[str]) -> None:
        if self.sink is not None:
            self.sink.add_lines(lines)

    def _maintenance_changed(self, event: MaintenanceEvent) -> None:
        idx = self._device_index.get(event.device)
        if idx is not None:
            self._publish_device_status(idx, round(event.ts * 1000))

    # ------------------------------------------------------------------ commands

    async def handle_command(self, topic: str, payload: bytes) -> list[OutboundMessage]:
        if self.topics.is_reply(topic):
            return []  # our own replies come back on the cmd/# subscription
        known = self.topics.commands
        if self.alarms is None or topic not in known:
            error = (
                f"unknown command topic {topic}"
                if topic not in known
                else "no rule packs loaded: no alarms"
            )
            return [command_reply(self.topics.base, time.time(), None, error)]
        return self.alarms.handle_command(topic, payload)

    # ------------------------------------------------------------------ run

    async def _stats_loop(self) -> None:
        last = time.monotonic()
        last_points = last_requests = 0
        while True:
            await asyncio.sleep(self.stats_interval)
            now = time.monotonic()
            snap = self.stats.snapshot()
            snap["points_per_s"] = (self.stats.points - last_points) / (now - last)
            self.points_per_s = snap["points_per_s"]
            snap["requests_per_s"] = (self.stats.requests - last_requests) / (now - last)
            last, last_points, last_requests = now, self.stats.points, self.stats.requests
            self._publish_stats(snap, now)

    def _publish_stats(self, snap: dict[str, float], now: float) -> None:
        """The retained gateway status on MQTT and a ``gateway`` line for the database.

        Its ``telemetry_messages`` and ``alarm_transitions`` count exactly the records with
        ``started <= ts <= status ts``. Records are stamped with the wall clock in ms (telemetry
        truncated, alarms rounded), so the status takes the millisecond before the current one:
        nothing produced after it can carry a ``ts`` at or before the status's, and the records
        already produced with a later ``ts`` (this millisecond's, an alarm rounded up) are left
        out of the counts. Nothing waits.
        """
        ts_ms = int(time.time() * 1000) - 1
        st = self.stats
        online = int(self.table.device_online.sum())
        ob = self.outbox.stats() if self.outbox is not None else None
        payload = {
            "ts": ts_ms,
            "online": True,
            "version": __version__,
            "started": int(st.started_wall * 1000),
            "devices": len(self.pollers),
            "devices_online": online,
            "points_per_s": round(snap["points_per_s"], 1),
            "requests_per_s": round(snap["requests_per_s"], 1),
            "poll_lag_ms": round(snap["poll_lag_ms"], 3),
            "poll_lag_p99_ms": round(snap["poll_lag_p99_ms"], 3),
            "mqtt_backlog": self.publisher.backlog,
            # cumulative since this process started: what it produced, for end-to-end counts
            "telemetry_messages": st.telemetry_through(ts_ms),
            "alarm_transitions": self.alarms.transitions_through(ts_ms) if self.alarms else 0,
            "outbox_depth": ob.rows if ob else 0,
            "outbox_streams": dict(ob.depth) if ob else {},
            "outbox_bytes": ob.bytes if ob else 0,
            "outbox_dropped": ob.dropped_telemetry if ob else 0,
            "outbox_over_bound": ob.over_bound if ob else False,
            "alarm_latency_p99_ms": (
                _round3(self.alarms.take_latency_p99_ms()) if self.alarms else None
            ),
            # per-device limits looser than a pack's table, each with the device's reason
            "loosened_limits": [
                {
                    "device": lo.device,
                    "rule": lo.rule,
                    "level": lo.level,
                    "key": lo.key,
                    "table": lo.table,
                    "value": lo.value,
                    "reason": lo.reason,
                }
                for lo in (self.alarms.engine.plan.loosened if self.alarms else ())
            ],
            # rules that select a device lacking points they need: alarms that do not exist
            "missing_points": [
                {"device": gap.device, "rule": gap.rule, "points": list(gap.points)}
                for gap in (self.alarms.engine.plan.missing_points if self.alarms else ())
            ],
        }
        self.publisher.publish(
            OutboundMessage(
                self.topics.gateway_status,
                json_payload(payload),
                qos=1,
                retain=True,
                kind="status",
            )
        )
        if self.sink is not None:
            sink_stats = self.sink.stats
            self.sink.add_gateway(
                ts_ms,
                {
                    "points_per_s": snap["points_per_s"],
                    "poll_lag_ms": snap["poll_lag_ms"],
                    "outbox_depth": ob.rows if ob else 0,
                    "outbox_dropped": ob.dropped_telemetry if ob else 0,
                    "devices_online": online,
                    "devices_total": len(self.pollers),
                    "active_alarms": len(self.alarms.engine.active_alarms()) if self.alarms else 0,
                    "read_errors": st.failed_polls,
                    "mqtt_connected": self.publisher.stats.connected,
                    "influx_buffered": sink_stats.buffered_lines,
                    "influx_dropped": sink_stats.dropped_lines,
                    "influx_rejected": sink_stats.rejected_lines,
                    "uptime_s": now - st.started,
                },
            )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set, then stop as :meth:`_shutdown` says (or until cancelled:
        then at once, delivering nothing more)."""
        log.info(
            "gateway %s: %d devices on %d links, %d points; MQTT %s",
            self.site.site.id,
            len(self.pollers),
            len(self.links),
            self.table.size,
            " ".join(self.mqtt_cfg.brokers),
        )
        if self.site.outbox is None:
            log.warning(
                "outbox off (outbox.enabled: false): what the broker or the database cannot take "
                "is kept in memory only, and lost when the gateway stops or is killed"
            )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.site.outbox is not None:
                    path = Path(self.site.outbox.path or "")
                    log.info("outbox %s (bound %g MB)", path, self.site.outbox.max_mb)
                    self.outbox = await stack.enter_async_context(
                        AsyncOutbox(path, max_bytes=int(self.site.outbox.max_mb * 2**20))
                    )
                    self.transaction = TickTransaction(self.outbox)
                    self.publisher.transaction = self.transaction
                if self.site.influx is not None:
                    cfg = self.site.influx
                    self.sink = await stack.enter_async_context(
                        InfluxSink(
                            cfg,
                            self.site.site.id,
                            token=influx_token(cfg),
                            outbox=self.outbox,  # None: the sink keeps an outbox in memory
                            transaction=self.transaction,
                        )
                    )
                if self.report is not None:
                    self.report.restore()  # after the sink: a late day's lines reach it
                if self.metrics is not None:
                    await self._start_metrics(stack)
                try:
                    await self._run_tasks(stop)
                finally:  # what the last polls staged goes to disk before the outbox closes
                    if self.report is not None:
                        await self.report.close()
                    if self.transaction is not None:
                        try:
                            await self.transaction.commit()
                        except OutboxError as exc:
                            log.error("could not commit the last messages to the outbox: %s", exc)
        except* _Stop:
            pass
        finally:
            for link in self.links.values():
                with contextlib.suppress(Exception):
                    link.close()

    async def _start_metrics(self, stack: contextlib.AsyncExitStack) -> None:
        """Serve metrics; a port that cannot be had is logged, and the gateway runs without."""
        assert self.metrics is not None
        try:
            await self.metrics.start()
        except OSError as exc:
            log.error(
                "metrics: cannot listen on %s:%s (%s); running without metrics",
                self.metrics.host,
                self.metrics.port,
                exc,
            )
            return
        stack.push_async_callback(self.metrics.close)

    async def _run_tasks(self, stop: asyncio.Event | None) -> None:
        if self.exposure is not None:
            self.exposure.restore()  # before the alarm task's first tick
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.publisher.run(), name="mqtt")
            if self.transaction is not None:
                tg.create_task(self.transaction.run(), name="outbox-commit")
            helpers = [tg.create_task(self._stats_loop(), name="stats")]
            if self.alarms is not None:
                helpers.append(tg.create_task(self.alarms.run(), name="alarms"))
            if self.report is not None:
                helpers.append(tg.create_task(self.report.run(), name="daily-report"))
            if self.exposure is not None:
                helpers.append(tg.create_task(self.exposure.run(), name="exposure"))
            polls = [
                tg.create_task(poller.run(), name=f"poll:{poller.device.id}")
                for poller in self.pollers
            ]
            try:
                await (stop or asyncio.Event()).wait()
                await self._shutdown(polls, helpers)
            finally:  # stopped or cancelled: no reconnects while the tasks wind down
                self.publisher.stop()
            raise _Stop

    async def _shutdown(
        self, polls: Sequence[asyncio.Task[None]], helpers: Sequence[asyncio.Task[None]]
    ) -> None:
        """Stop polling at once, then deliver what is pending while the broker and the database
        answer, for up to ``shutdown_timeout`` seconds from the stop signal. What is left stays
        in the outbox (without one, it is lost, and said so)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.site.shutdown_timeout
        for link in self.links.values():
            link.stop_reads()  # no request goes out after the signal; one on the wire finishes
        for poller in self.pollers:
            poller.stop()
        log.info(
            "stopping: polls stopped; delivering what is pending for up to %g s",
            self.site.shutdown_timeout,
        )
        await _wait_tasks(polls, deadline)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if self.alarms is not None:
            self.alarms.tick()  # the last samples' transitions
        now = time.monotonic()
        snap = self.stats.snapshot()
        elapsed = max(now - self.stats.started, 1e-9)
        snap["points_per_s"] = self.stats.points / elapsed
        snap["requests_per_s"] = self.stats.requests / elapsed
        self._publish_stats(snap, now)  # the final counts, behind every record they count
        drained = True
        try:
            async with asyncio.timeout_at(deadline):
                if self.transaction is not None:
                    await self.transaction.commit()
                waits: list[Awaitable[object]] = [self.publisher.wait_drained()]
                if self.sink is not None:
                    waits.append(self.sink.flush())
                await asyncio.gather(*waits)
        except TimeoutError:
            raise_if_cancelling()
            drained = False
        except OutboxError as exc:
            log.error("could not commit the last messages to the outbox: %s", exc)
            drained = False
        mqtt_left = self.publisher.backlog
        db_left = self.sink.buffered if self.sink is not None else 0
        if drained:
            log.info("stopping: everything delivered to the broker and the database")
        else:
            where = "kept in the outbox" if self.outbox is not None else "lost (no outbox)"
            log.warning(
                "stopping after shutdown_timeout (%g s): %d MQTT messages and %d database lines "
                "not delivered, %s",
                self.site.shutdown_timeout,
                mqtt_left,
                db_left,
                where,
            )
        remaining = deadline - loop.time()
        if self.sink is not None:
            self.sink.close_timeout = max(0.0, remaining)
        await self.publisher.close(timeout=min(2.0, max(0.0, remaining)))


async def _wait_tasks(tasks: Sequence[asyncio.Task[None]], deadline: float) -> None:
    """Wait for tasks until ``deadline`` (loop time); cancel those still running then."""
    if not tasks:
        return
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _round3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class _Stop(Exception):
    """Raised inside the task group to stop every task."""

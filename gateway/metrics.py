"""Prometheus metrics of a running gateway (``metrics: {listen: host:port}``; off by default).

Served at ``http://{listen}/metrics`` in the text exposition format by prometheus-client, from
a small HTTP responder on the gateway's own event loop: a scrape reads the gateway's counters
between two of its steps, never while a poll or a tick is half done. Only the poll-lag histogram
is recorded as polls happen; everything else is read at scrape time from what the gateway keeps
anyway, so an unscraped gateway pays one histogram observation per poll.

| metric | type | labels |
|---|---|---|
| ``hazardgw_polls_total`` | counter | |
| ``hazardgw_failed_polls_total`` | counter | |
| ``hazardgw_points_total`` | counter (good point readings) | |
| ``hazardgw_points_per_second`` | gauge (last stats interval) | |
| ``hazardgw_poll_lag_seconds`` | histogram | |
| ``hazardgw_alarms`` | gauge (alarms not NORMAL) | ``priority``, ``state`` |
| ``hazardgw_outbox_depth`` | gauge (rows waiting) | |
| ``hazardgw_broker_connected`` | gauge 0/1 | |
| ``hazardgw_database_connected`` | gauge 0/1 (absent without ``influx``) | |
| ``hazardgw_devices_online`` | gauge | |
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LAG_BUCKETS", "GatewayReadings", "MetricsServer"]

log = logging.getLogger(__name__)

#: Poll lag buckets (seconds): a poll on time is well under 10 ms late; one a second late is lost.
LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True, slots=True)
class GatewayReadings:
    """What one scrape reads from the gateway (each a callable, read at scrape time)."""

    polls: Callable[[], int]
    failed_polls: Callable[[], int]
    points: Callable[[], int]
    points_per_s: Callable[[], float]
    alarms: Callable[[], list[tuple[int, str]]]  # (priority, state) of every alarm not NORMAL
    outbox_depth: Callable[[], int]
    broker_connected: Callable[[], bool]
    database_connected: Callable[[], bool] | None
    devices_online: Callable[[], int]


class _GatewayCollector(Collector):
    def __init__(self, readings: GatewayReadings) -> None:
        self.r = readings

    def collect(self) -> Iterator[Metric]:
        r = self.r
        yield CounterMetricFamily("hazardgw_polls", "Device polls done", value=r.polls())
        yield CounterMetricFamily(
            "hazardgw_failed_polls", "Device polls that failed", value=r.failed_polls()
        )
        yield CounterMetricFamily("hazardgw_points", "Good point readings", value=r.points())
        yield GaugeMetricFamily(
            "hazardgw_points_per_second",
            "Good point readings per second over the last stats interval",
            value=r.points_per_s(),
        )
        alarms = GaugeMetricFamily(
            "hazardgw_alarms",
            "Alarms not NORMAL, by priority and state",
            labels=["priority", "state"],
        )
        for (priority, state), n in sorted(Counter(r.alarms()).items()):
            alarms.add_metric([str(priority), state], n)
        yield alarms
        yield GaugeMetricFamily(
            "hazardgw_outbox_depth", "Rows waiting in the durable outbox", value=r.outbox_depth()
        )
        yield GaugeMetricFamily(
            "hazardgw_broker_connected",
            "1 while the MQTT broker connection is up",
            value=int(r.broker_connected()),
        )
        if r.database_connected is not None:
            yield GaugeMetricFamily(
                "hazardgw_database_connected",
                "1 while the last database write succeeded",
                value=int(r.database_connected()),
            )
        yield GaugeMetricFamily(
            "hazardgw_devices_online", "Devices whose last poll succeeded", value=r.devices_online()
        )


class MetricsServer:
    """The registry, the poll-lag histogram and the ``/metrics`` endpoint."""

    def __init__(self, readings: GatewayReadings, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_GatewayCollector(readings))
        self.poll_lag = Histogram(
            "hazardgw_poll_lag_seconds",
            "How late each poll started against its schedule",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._server: asyncio.Server | None = None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split()
            if (
                len(line) >= 2
                and line[0] in (b"GET", b"HEAD")
                and line[1].split(b"?")[0]
                in (
                    b"/metrics",
                    b"/",
                )
            ):
                body = self.exposition()
                status, ctype = b"200 OK", b"text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype
                + b"\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + (body if line[:1] != [b"HEAD"] else b"")
            )  # fmt: skip
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

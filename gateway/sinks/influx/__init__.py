"""The InfluxDB sink, in modules of one job each:

* :mod:`~gateway.sinks.influx.sink` — :class:`InfluxSink`: encodes records and stages them for
  the outbox's ``"influx"`` stream (an outbox in memory when the durable one is off);
* :mod:`~gateway.sinks.influx.delivery` — :class:`OutboxDelivery`: the loop sending that stream
  to the database in batches;
* :mod:`~gateway.sinks.influx.writer` — :class:`InfluxWriter`: one write attempt, its counters,
  outage logs and backoff;
* :mod:`~gateway.sinks.influx.http` — the HTTP write API and its error classification.

The line-protocol encoder is :mod:`gateway.sinks.lineprotocol`; the transaction that commits a
sample's MQTT message and its line together is :mod:`gateway.delivery`.
"""

from gateway.sinks.influx.delivery import OutboxDelivery
from gateway.sinks.influx.http import InfluxSinkError, InfluxWriteError, LineWriter, influx_token
from gateway.sinks.influx.sink import (
    DEFAULT_MAX_BUFFER,
    OUTBOX_STREAM,
    InfluxSink,
    SinkStats,
    line_kind,
    measurement_of,
)
from gateway.sinks.influx.writer import InfluxWriter

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "OUTBOX_STREAM",
    "InfluxSink",
    "InfluxSinkError",
    "InfluxWriteError",
    "InfluxWriter",
    "LineWriter",
    "OutboxDelivery",
    "SinkStats",
    "influx_token",
    "line_kind",
    "measurement_of",
]

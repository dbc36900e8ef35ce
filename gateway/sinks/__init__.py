"""Sinks: where the gateway's records go besides MQTT. One today: InfluxDB line protocol."""

from gateway.sinks.influx import (
    InfluxSink,
    InfluxSinkError,
    InfluxWriteError,
    InfluxWriter,
    LineWriter,
    SinkStats,
    influx_token,
)
from gateway.sinks.lineprotocol import ALARM_STATE_CODES, GATEWAY_FIELDS, LineEncoder

__all__ = [
    "ALARM_STATE_CODES",
    "GATEWAY_FIELDS",
    "InfluxSink",
    "InfluxSinkError",
    "InfluxWriteError",
    "InfluxWriter",
    "LineEncoder",
    "LineWriter",
    "SinkStats",
    "influx_token",
]

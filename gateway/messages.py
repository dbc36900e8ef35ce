"""The one message type every publisher, sink and outbox passes around."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutboundMessage"]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """An MQTT message bound for the broker."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    kind: str = "telemetry"  # telemetry | status | alarm | event | reply

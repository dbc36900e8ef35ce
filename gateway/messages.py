"""The one message type every publisher, sink and outbox passes around, and the one JSON
encoding of its payloads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["OutboundMessage", "json_payload"]

_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def json_payload(obj: Any) -> bytes:
    """The payload of every JSON message: compact, UTF-8 (not ASCII-escaped), no NaN (a NaN or
    an infinity raises ValueError: the contract's documents carry null instead)."""
    return _dumps(obj).encode()


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """An MQTT message bound for the broker."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    kind: str = "telemetry"  # telemetry | status | alarm | event | reply

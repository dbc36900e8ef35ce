"""Where commands enter the gateway: the checks every command passes before it is dispatched,
and the one reply format of ``P/cmd/reply``.

A command is an act of one moment. :func:`entry_refusal` runs once for every message that
arrives under ``P/cmd/``, whatever its topic (present command topics and any added later), and
refuses:

* a message carrying the MQTT retain flag — the broker replays a retained message to every new
  subscription, so a shelve published with ``retain=true`` would be acted on again at each
  restart by nobody who is there today;
* a command whose ``ts`` (Unix epoch milliseconds, optional) is more than
  :data:`MAX_COMMAND_AGE_S` old, or more than :data:`MAX_COMMAND_AHEAD_S` ahead of the
  gateway's clock (the two clocks disagree too much to tell its age), or is not a number.

Everything else about a command (size, encoding, fields, the alarm it names) is checked by the
handler of its topic, which gives the precise error.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from gateway.messages import OutboundMessage, json_payload
from gateway.topics import cmd_reply_topic

__all__ = [
    "MAX_COMMAND_AGE_S",
    "MAX_COMMAND_AHEAD_S",
    "MAX_COMMAND_BYTES",
    "command_reply",
    "entry_refusal",
]

#: Largest command payload accepted (bytes).
MAX_COMMAND_BYTES: Final = 4096
#: A command whose ``ts`` is older than this is refused (seconds).
MAX_COMMAND_AGE_S: Final = 60.0
#: A command whose ``ts`` is further ahead of the gateway's clock than this is refused (seconds).
MAX_COMMAND_AHEAD_S: Final = 60.0
QOS_REPLY: Final = 1


def _ts_refusal(ts: Any, now: float) -> str | None:
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        return "'ts' must be Unix epoch milliseconds (a number)"
    age_s = now - ts / 1000.0
    if age_s > MAX_COMMAND_AGE_S:
        return (
            f"command is {age_s:.0f} s old ('ts'): commands older than "
            f"{MAX_COMMAND_AGE_S:g} s are refused"
        )
    if -age_s > MAX_COMMAND_AHEAD_S:
        return (
            f"command 'ts' is {-age_s:.0f} s ahead of the gateway's clock "
            f"(more than {MAX_COMMAND_AHEAD_S:g} s): its age cannot be told"
        )
    return None


def entry_refusal(payload: bytes, *, retained: bool, now: float) -> str | None:
    """Why a command must not be dispatched at all, or None. ``now`` is wall-clock seconds."""
    if retained:
        return "command carries the MQTT retain flag: a retained command is refused, never replayed"
    if len(payload) > MAX_COMMAND_BYTES:
        return None  # the handler refuses it by size, without parsing it
    try:
        request = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None  # the handler names the problem
    if isinstance(request, dict) and "ts" in request:
        return _ts_refusal(request["ts"], now)
    return None


def command_reply(base: str, now: float, request: Any, error: str | None) -> OutboundMessage:
    """The reply on ``P/cmd/reply``: ``{"ts", "ok", "error", "request"}`` (``request`` echoes
    the parsed command, or null when it could not be parsed or cannot be echoed)."""
    doc = {"ts": round(now * 1000.0), "ok": error is None, "error": error, "request": request}
    try:
        payload = json_payload(doc)
    except (ValueError, UnicodeEncodeError):  # NaN, Infinity or a lone surrogate in the request
        payload = json_payload({**doc, "request": None})
    return OutboundMessage(cmd_reply_topic(base), payload, QOS_REPLY, False, "reply")

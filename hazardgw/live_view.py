"""The demo's live terminal view, drawn with ``rich`` (the ``demo`` extra)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from hazardgw.demo import DemoView

__all__ = ["render_view"]

KEY_POINTS = {
    "gas": ("ch4", "co", "o2", "h2s"),
    "tank": ("level", "level_pct", "temperature", "pressure"),
    "elevator": ("floor", "running", "door_closed", "leveling", "occupied"),
    "crane": ("moment_pct", "load_t", "radius_m", "wind_ms"),
}
STATE_STYLE = {
    "UNACK_ACTIVE": "bold white on red",
    "ACK_ACTIVE": "bold red",
    "RTN_UNACK": "yellow",
    "SHELVED": "dim",
    "SUPPRESSED": "dim",
    "OUT_OF_SERVICE": "cyan",
}


def render_view(view: DemoView) -> Group:
    """The terminal picture of what the view has seen: devices, alarms, newest messages."""
    devices = Table(title="Devices", expand=True, title_justify="left")
    devices.add_column("device")
    devices.add_column("kind")
    devices.add_column("status")
    devices.add_column("values (quality)")
    for dev in view.site.devices:
        st = view.status.get(dev.id)
        online = st.get("online") if st else None
        status = Text(
            "online" if online else ("offline" if online is False else "…"),
            style="green" if online else ("bold red" if online is False else "dim"),
        )
        vals = view.values.get(dev.id, {})
        qual = view.quality.get(dev.id, {})
        cells = []
        for name in KEY_POINTS.get(dev.kind, tuple(vals)[:4]):
            if name not in vals:
                continue
            v = vals[name]
            shown = "—" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
            q = qual.get(name, "?")
            style = "" if q == "good" else "red"
            cells.append(Text.assemble(f"{name}=", (shown, style or "bold")))
        devices.add_row(dev.id, dev.kind, status, Text("  ").join(cells) if cells else "")

    alarms = Table(
        title="Alarms (press a to acknowledge, q to quit)", expand=True, title_justify="left"
    )
    for col in ("alarm", "state", "level", "prio", "value", "limit"):
        alarms.add_column(col, no_wrap=True)
    alarms.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    for alarm_id, doc in sorted(view.alarms.items(), key=lambda kv: kv[1].get("priority", 9)):
        state = str(doc.get("state"))
        alarms.add_row(
            alarm_id,
            Text(state, style=STATE_STYLE.get(state, "")),
            str(doc.get("level", "")),
            str(doc.get("priority", "")),
            str(doc.get("value", "")),
            str(doc.get("limit", "")),
            str(doc.get("message", "")),
        )
    if not view.alarms:
        alarms.add_row("(none)", "", "", "", "", "", "")

    recent = Table(
        title="Newest MQTT messages", expand=True, title_justify="left", show_header=False
    )
    recent.add_column("time", style="dim", no_wrap=True)
    recent.add_column("topic", style="cyan", no_wrap=True)
    recent.add_column("payload", overflow="ellipsis", no_wrap=True)
    for ts, topic, text in view.recent:
        recent.add_row(time.strftime("%H:%M:%S", time.localtime(ts)), topic, text)
    gw = view.gateway
    header = Text.assemble(
        ("hazard-gateway demo  ", "bold"),
        f"site {view.site.site.id}  ",
        f"up {time.monotonic() - view.started:5.0f} s  ",
        f"messages {view.messages}  ",
        f"gateway {'online' if gw.get('online') else '…'}  ",
        f"points/s {gw.get('points_per_s', '…')}  ",
        f"last reply: {view.replies[0] if view.replies else '—'}",
    )
    return Group(Panel(header), devices, alarms, recent)

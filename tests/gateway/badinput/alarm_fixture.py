"""A real rules engine with live alarms behind an AlarmService, for the command tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gateway.alarm_service import AlarmService, build_engine
from gateway.config import parse_site
from gateway.messages import OutboundMessage
from gateway.points import PointTable
from gateway.topics import Topics

PREFIX, SITE = "hz", "bad-input"
BASE = f"{PREFIX}/{SITE}"
ACK, SHELVE, REPLY = f"{BASE}/cmd/alarm/ack", f"{BASE}/cmd/alarm/shelve", f"{BASE}/cmd/reply"
#: methane at the coal face above its power-off level: UNACK_ACTIVE from the first ticks
FACE_CH4 = "face1-gas/ch4/ch4_face"
#: the same on a second detector, acknowledged by the fixture: ACK_ACTIVE
RETURN_CH4 = "face2-gas/ch4/ch4_face"
HEALTHY = {"ch4": 2.0, "co": 0.0, "o2": 20.9, "h2s": 0.0, "temperature": 20.0, "status": 1.0}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Alarms:
    service: AlarmService
    clock: Clock
    published: list[OutboundMessage] = field(default_factory=list)

    def snapshot(self) -> list[str]:
        """Every alarm's full state, as text (NaN compares equal to itself this way)."""
        engine = self.service.engine
        return [repr(engine.state(a)) for a in engine.alarm_ids]

    def state(self, alarm_id: str) -> str:
        return self.service.engine.state(alarm_id).state.value


def gas_device(device_id: str, port: int) -> dict[str, object]:
    return {
        "id": device_id,
        "profile": "gas_detector",
        "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
        "tags": {"position": "T1", "area": "face-1"},
    }


def live_alarms() -> Alarms:
    """Two gas detectors at the coal face over the methane power-off level, ticked until their
    alarms are active; the second one's alarm acknowledged."""
    site = parse_site(
        {
            "site": {"id": SITE},
            "mqtt": {"topic_prefix": PREFIX},
            "rules": ["rules/packs/coal_mine.yaml"],
            "devices": [gas_device("face1-gas", 1502), gas_device("face2-gas", 1503)],
        }
    )
    table = PointTable(site.devices)
    clock = Clock(1_700_000_000.0)
    published: list[OutboundMessage] = []
    service = AlarmService(
        build_engine(site, table), table, Topics(PREFIX, SITE), published.append, clock=clock
    )
    alarms = Alarms(service, clock, published)
    for step in range(6):
        clock.now += 1.0
        for rows in table.devices:
            names = [p.name for p in rows.device.points]
            values = np.array([HEALTHY.get(n, 0.0) for n in names], dtype=np.float64)
            table.update(rows.index, values, np.ones(len(names), dtype=bool), clock.now)
            table.device_online[rows.index] = True
        alarms.service.tick()
        assert step < 5 or alarms.state(FACE_CH4) == "UNACK_ACTIVE"
    alarms.service.handle_command(ACK, b'{"id": "%s", "user": "setup"}' % RETURN_CH4.encode())
    assert alarms.state(RETURN_CH4) == "ACK_ACTIVE"
    alarms.published.clear()
    return alarms

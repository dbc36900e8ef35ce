"""Maintenance commands through the gateway's alarm service, calibration dates and the site's
time zone (no sockets: the service publishes into a list; the broker path is in
tests/gateway/sinks/test_calibration_report_live.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.alarm_service import AlarmService, build_engine
from gateway.config import ConfigError, SiteConfig, parse_site
from gateway.messages import OutboundMessage
from gateway.points import PointTable
from gateway.topics import Topics

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def site(**device: Any) -> SiteConfig:
    return parse_site(
        {
            "site": {"id": "mine-1"},
            "rules": ["rules/packs/coal_mine.yaml"],
            "devices": [
                {
                    "id": "face1-gas",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1502},
                    "tags": {"area": "face-1", "position": "T1"},
                    **device,
                }
            ],
        }
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(s: SiteConfig) -> tuple[AlarmService, list[OutboundMessage], Clock]:
    table = PointTable(s.devices)
    out: list[OutboundMessage] = []
    clock = Clock(NOW)
    svc = AlarmService(
        build_engine(s, table), table, Topics("hz", s.site.id), out.append, clock=clock
    )
    return svc, out, clock


def command(svc: AlarmService, verb: str, payload: Any) -> dict[str, Any]:
    (reply,) = svc.handle_command(f"hz/mine-1/cmd/device/{verb}", json.dumps(payload).encode())
    doc: dict[str, Any] = json.loads(reply.payload)
    return doc


def events(out: list[OutboundMessage]) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in out if m.topic == "hz/mine-1/events/maintenance"]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"device": "nope", "user": "li", "minutes": 10, "reason": "x"}, "unknown device"),
        ({"device": "face1-gas", "user": "li", "minutes": 0, "reason": "x"}, "minutes"),
        ({"device": "face1-gas", "user": "li", "minutes": 481, "reason": "x"}, "minutes"),
        ({"device": "face1-gas", "user": "li", "minutes": "10", "reason": "x"}, "minutes"),
        ({"device": "face1-gas", "user": "li", "minutes": 10}, "'reason'"),
        ({"device": "face1-gas", "minutes": 10, "reason": "x"}, "'user'"),
        ({"user": "li", "minutes": 10, "reason": "x"}, "'device'"),
    ],
)
def test_bad_maintenance_commands_are_refused_and_change_nothing(
    payload: dict[str, Any], error: str
) -> None:
    svc, out, _ = service(site())
    reply = command(svc, "maintenance", payload)
    assert reply["ok"] is False and error in reply["error"]
    assert not svc.engine.in_maintenance.any()
    assert events(out) == []


def test_start_end_and_expiry_are_events_with_user_and_reason() -> None:
    svc, out, clock = service(site())
    start = {"device": "face1-gas", "user": "li", "minutes": 2, "reason": "标校"}
    assert command(svc, "maintenance", start)["ok"] is True
    assert command(svc, "maintenance/end", {"device": "face1-gas", "user": "wang"})["ok"]
    reply = command(svc, "maintenance/end", {"device": "face1-gas", "user": "wang"})
    assert reply["ok"] is False and "not in maintenance" in reply["error"]
    command(svc, "maintenance", start)
    clock.now += 120
    svc.tick()
    got = [(e["state"], e["user"], e["reason"], e["expired"]) for e in events(out)]
    assert got == [
        ("start", "li", "标校", False),
        ("end", "wang", "", False),
        ("start", "li", "标校", False),
        ("end", "li", "maintenance time of 2 min is over", True),
    ]


def test_calibrated_at_from_the_site_file_is_local_midnight_and_warns_after_15_days() -> None:
    s = site(calibrated_at=dt.date(2026, 11, 15))
    (dev,) = s.devices
    assert (
        dev.calibrated_at == dt.datetime(2026, 11, 15, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    )
    svc, out, clock = service(s)
    svc.warn_calibration_due()
    (due,) = events(out)
    assert (due["type"], due["device"], due["interval_days"]) == (
        "calibration_due",
        "face1-gas",
        15,
    )
    assert due["age_days"] == 16.38  # 16 days and 9 hours, rounded to 0.01

    out.clear()
    command(svc, "maintenance", {"device": "face1-gas", "user": "li", "minutes": 30, "reason": "x"})
    clock.now += 600
    end = {"device": "face1-gas", "user": "li", "calibrated": True}
    assert command(svc, "maintenance/end", end)["ok"] is True
    assert svc.calibrated_at["face1-gas"] == clock.now
    out.clear()
    svc.warn_calibration_due()
    assert events(out) == []  # calibrated just now


def test_a_recent_calibration_and_an_unknown_one_give_no_warning() -> None:
    for s in (site(calibrated_at="2026-11-25T14:00:00"), site()):
        svc, out, _ = service(s)
        svc.warn_calibration_due()
        assert events(out) == []


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"site": {"id": "m", "timezone": "China/Beijing"}}, "site.timezone"),
        ({"devices_calibrated_at": "yesterday"}, "devices[0].calibrated_at"),
    ],
)
def test_bad_timezone_or_calibration_date_names_the_key(raw: dict[str, Any], path: str) -> None:
    doc: dict[str, Any] = {
        "site": {"id": "m"},
        "devices": [
            {
                "id": "d",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1502},
            }
        ],
    }
    if "site" in raw:
        doc["site"] = raw["site"]
    else:
        doc["devices"][0]["calibrated_at"] = raw["devices_calibrated_at"]
    with pytest.raises(ConfigError) as err:
        parse_site(doc)
    assert any(issue.path == path for issue in err.value.issues), err.value.issues

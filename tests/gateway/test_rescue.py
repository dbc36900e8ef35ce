"""Elevator rescue records: opened by a trapped alarm, stages by ack and commands, targets."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from console import AlarmBoard
from gateway.alarm_service import AlarmService, build_engine
from gateway.config import parse_site
from gateway.points import PointTable
from gateway.rescue import RescueBook, RescueTargets
from gateway.topics import Topics
from tests.rules.harness import Site
from tests.rules.test_elevator import ELEVATOR, IDLE, device_points

BASE = "hazard/site-1"
TAGS = {"lift-a": {"registration_code": "31104101002017060001", "maintenance_unit": "Lift Co."}}


def trapped_site() -> tuple[Site, RescueBook, list[Any]]:
    """A car stopped between floors with a passenger inside until the trapped alarm rises."""
    site = Site(device_points("lift-a", 0, "elevator"), ELEVATOR)
    site.set("lift-a", **IDLE)
    site.tick()
    book = RescueBook(BASE, TAGS)
    out: list[Any] = []
    site.set("lift-a", floor=7, leveling=0, door_open=0, door_closed=1, occupied=1)
    site.tick()
    for t in site.run(30):
        out += book.observe(t)
    return site, book, out


def doc(message: Any) -> dict[str, Any]:
    return json.loads(message.payload)  # type: ignore[no-any-return]


def command(book: RescueBook, verb: str, now: float, **request: Any) -> list[Any]:
    return book.command(f"{BASE}/cmd/rescue/{verb}", json.dumps(request).encode(), now)


def test_a_trapped_alarm_opens_a_retained_record_with_the_lifts_tags() -> None:
    site, _, out = trapped_site()
    (m,) = out
    assert (m.topic, m.retain, m.qos) == (f"{BASE}/rescue/lift-a", True, 1)
    record = doc(m)
    assert record["alarm"] == "lift-a/floor/elevator_trapped" and record["open"] is True
    assert record["registration_code"] == "31104101002017060001"
    assert record["maintenance_unit"] == "Lift Co."
    assert record["stages"] == {
        "raised": round(site.now * 1000),
        "acknowledged": None,
        "arrived": None,
        "released": None,
    }
    assert record["targets_min"] == {"arrival": 30.0, "release": None}


def test_stages_ack_arrive_release_with_elapsed_times() -> None:
    site, book, _ = trapped_site()
    raised = site.now
    acked = site.engine.ack("lift-a/floor/elevator_trapped", "duty.op", raised + 60)
    (m,) = [m for t in acked for m in book.observe(t)]
    assert doc(m)["stages"]["acknowledged"] == round((raised + 60) * 1000)
    assert doc(m)["users"]["acknowledged"] == "duty.op"
    reply, m = command(book, "arrive", raised + 900, device="lift-a", user="li.rescuer")
    assert json.loads(reply.payload)["ok"] is True
    record = doc(m)
    assert record["stages"]["arrived"] == round((raised + 900) * 1000)
    assert record["elapsed_s"]["to_arrival"] == 900 and record["overdue"] == []
    reply, final, clear = command(
        book, "release", raised + 1380, device="lift-a", user="li.rescuer"
    )
    assert json.loads(reply.payload)["ok"] is True
    assert (final.retain, doc(final)["open"], doc(final)["elapsed_s"]["to_release"]) == (
        False,
        False,
        1380,
    )
    assert (clear.topic, clear.payload, clear.retain) == (f"{BASE}/rescue/lift-a", b"", True)
    assert book.open == {}


def test_a_missed_arrival_target_is_published_once() -> None:
    site, book, _ = trapped_site()
    raised = site.now
    assert book.check(raised + 1799) == []
    (m,) = book.check(raised + 1801)
    assert doc(m)["overdue"] == ["arrived"] and doc(m)["elapsed_s"]["to_arrival"] == 1801
    assert book.check(raised + 2400) == []


def test_site_targets_apply() -> None:
    book = RescueBook(BASE, TAGS, RescueTargets(arrive_within_min=15, release_within_min=25))
    site = Site(device_points("lift-a", 0, "elevator"), ELEVATOR)
    site.set("lift-a", **IDLE)
    site.tick()
    site.set("lift-a", door_open=0, door_closed=1, door_opening=1, alarm_button=1)
    site.tick()
    for t in site.run(30):
        book.observe(t)  # trapped at a landing whose doors will not open
    assert list(book.open) == ["lift-a"]
    (m,) = book.check(site.now + 15 * 60 + 1)
    assert doc(m)["overdue"] == ["arrived"]
    command(book, "arrive", site.now + 16 * 60, device="lift-a", user="x")
    (m,) = book.check(site.now + 25 * 60 + 1)
    assert doc(m)["overdue"] == ["arrived", "released"]


@pytest.mark.parametrize(
    ("verb", "payload", "error"),
    [
        ("arrive", b"[1]", "JSON object"),
        ("arrive", b"\xff", "payload is not UTF-8 JSON"),
        ("arrive", b'{"user": "x"}', "'device' must be a non-empty string"),
        ("arrive", b'{"device": "lift-a"}', "'user' must be a non-empty string"),
        ("arrive", b'{"device": "lift-a", "user": " "}', "'user' must be a non-empty string"),
        ("arrive", b'{"device": "lift-a", "user": "' + b"u" * 129 + b'"}', "longer than 128"),
        # JSON escapes can spell a lone surrogate: no reply or record could carry it
        ("arrive", b'{"device": "lift-a", "user": "\\ud800"}', "lone UTF-16 surrogates"),
        ("release", b'{"device": "lift-a", "user": "x\\udfff"}', "lone UTF-16 surrogates"),
        ("arrive", b'{"device": "lift-b", "user": "x"}', "no open rescue for device 'lift-b'"),
        ("dance", b'{"device": "lift-a", "user": "x"}', "unknown command topic"),
        ("arrive", b"x" * 5000, "command larger than 4096 bytes"),
    ],
)
def test_bad_rescue_commands_change_nothing(verb: str, payload: bytes, error: str) -> None:
    _, book, _ = trapped_site()
    before = book.open["lift-a"].times.copy()
    (reply,) = book.command(f"{BASE}/cmd/rescue/{verb}", payload, 1.0)
    body = json.loads(reply.payload)
    assert body["ok"] is False and error in body["error"]
    assert book.open["lift-a"].times == before


def test_arriving_twice_is_refused() -> None:
    site, book, _ = trapped_site()
    command(book, "arrive", site.now + 60, device="lift-a", user="x")
    (reply,) = command(book, "arrive", site.now + 120, device="lift-a", user="y")
    assert "already arrived" in json.loads(reply.payload)["error"]


# -- through the gateway's alarm service (site config targets, command routing) ---------------


def test_rescue_through_the_alarm_service_with_the_sites_targets() -> None:
    cfg = parse_site(
        {
            "site": {"id": "tower-7"},
            "rules": ["rules/packs/elevator.yaml"],
            "rescue": {"arrive_within_min": 10},
            "devices": [
                {
                    "id": "lift-a",
                    "profile": "elevator",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1502},
                    "tags": TAGS["lift-a"],
                }
            ],
        }
    )
    table = PointTable(cfg.devices)
    out: list[Any] = []
    now = [1_767_225_600.0]
    topics = Topics("hz", cfg.site.id)
    svc = AlarmService(
        build_engine(cfg, table),
        table,
        topics,
        out.append,
        clock=lambda: now[0],
        rescue=RescueBook.for_site(cfg, topics.base),
    )
    rows = table.devices[0]
    stopped = {**IDLE, "floor": 4, "leveling": 0, "door_open": 0, "door_closed": 1, "occupied": 1}
    values = np.array([float(stopped.get(name, 0)) for name in rows.names])
    table.device_online[0] = True
    for _ in range(32):
        table.update(0, values, np.ones(len(values), dtype=bool), now[0])
        svc.tick()
        now[0] += 1.0
    rescue = [m for m in out if m.topic == "hz/tower-7/rescue/lift-a"]
    assert len(rescue) == 1 and json.loads(rescue[0].payload)["targets_min"]["arrival"] == 10
    out.clear()
    now[0] += 10 * 60
    svc.tick()
    (late,) = [m for m in out if m.topic == "hz/tower-7/rescue/lift-a"]
    assert json.loads(late.payload)["overdue"] == ["arrived"]
    body = json.dumps({"device": "lift-a", "user": "li"}).encode()
    (reply,) = svc.handle_command(topics.cmd_rescue_arrive, body)
    assert json.loads(reply.payload)["ok"] is True
    assert json.loads(out[-1].payload)["users"]["arrived"] == "li"


def test_the_consoles_rescue_panel_lists_open_rescues_only() -> None:
    site, book, opened = trapped_site()
    board = AlarmBoard("hazard")
    board.link_up(0.0)

    def feed(messages: list[Any]) -> None:
        for m in messages:
            board.apply(m.topic, m.payload, retained=m.retain, now=site.now)

    def rescues() -> dict[str, Any]:
        doc = board.snapshot().doc
        assert doc is not None
        return doc["rescues"]  # type: ignore[no-any-return]

    feed(opened)
    rescues_now = rescues()
    assert list(rescues_now) == ["site-1/lift-a"]
    assert rescues_now["site-1/lift-a"]["registration_code"] == "31104101002017060001"
    _, *records = command(book, "release", site.now + 600, device="lift-a", user="li")
    feed(records)
    assert rescues() == {}


def test_every_change_of_a_record_is_a_rescue_line_for_the_board() -> None:
    """The elevator board lists open rescues from the ``rescue`` measurement: one line each
    time a record changes, its stage, whether it is open, elapsed times and missed targets."""
    site = Site(device_points("lift-a", 0, "elevator"), ELEVATOR)
    site.set("lift-a", **IDLE)
    site.tick()
    book = RescueBook(BASE, TAGS, RescueTargets(arrive_within_min=10))
    lines: list[str] = []
    book.write_line = lines.append
    site.set("lift-a", floor=7, leveling=0, door_open=0, door_closed=1, occupied=1)
    site.tick()
    for t in site.run(30):
        book.observe(t)
    raised = site.now
    (opened,) = lines
    assert opened.startswith("rescue,device=lift-a,site=site-1 open=1i,stage=0i,")
    assert opened.endswith(f"overdue_arrival=0i,overdue_release=0i {round(raised * 1000)}")
    for t in site.engine.ack("lift-a/floor/elevator_trapped", "duty.op", raised + 60):
        book.observe(t)
    book.check(raised + 601)  # arrival target (10 min) missed
    command(book, "arrive", raised + 900, device="lift-a", user="li.rescuer")
    command(book, "release", raised + 1380, device="lift-a", user="li.rescuer")
    fields = [dict(kv.split("=") for kv in line.split(" ")[1].split(",")) for line in lines]
    assert [(f["open"], f["stage"], f["overdue_arrival"]) for f in fields] == [
        ("1i", "0i", "0i"),  # raised
        ("1i", "1i", "0i"),  # acknowledged
        ("1i", "1i", "1i"),  # the arrival target missed
        ("1i", "2i", "1i"),  # arrived (late)
        ("0i", "3i", "1i"),  # released
    ]
    assert float(fields[-1]["to_release_s"]) == 1380.0

"""The example site's trapped elevators open retained rescue records (P/rescue/{device})."""

from __future__ import annotations

import json

from tests.simulators.scenarios.harness import EPOCH
from tests.simulators.scenarios.test_golden import DURATION_S, PREFIX, played, site


def test_each_trapped_car_opens_one_retained_rescue_record() -> None:
    run = played("elevator-trapped", DURATION_S["elevator-trapped"])
    base = f"{PREFIX}/{site().site.id}"
    trapped = {t.device: t.ts for t in run.transitions if t.level == "TRAPPED"}
    assert sorted(trapped) == ["lift-a", "lift-b"]
    for device, raised in trapped.items():
        records = [m for m in run.messages if m.topic == f"{base}/rescue/{device}"]
        assert len(records) == 1 and records[0].retain and records[0].qos == 1
        doc = json.loads(records[0].payload)
        tags = site().device(device).tags
        assert doc["registration_code"] == tags["registration_code"]
        assert doc["maintenance_unit"] == tags["maintenance_unit"]
        assert doc["alarm"] == f"{device}/floor/elevator_trapped" and doc["open"] is True
        assert doc["stages"]["raised"] == round(raised * 1000)
        assert raised - EPOCH < DURATION_S["elevator-trapped"]
        assert doc["targets_min"]["arrival"] == 30.0

"""Elevator rescue records through the sink, read back from a real server speaking the InfluxDB
v2 write API (VictoriaMetrics): what the elevator board's "Open rescues" table reads."""

from __future__ import annotations

import time

import pytest

from gateway.rescue import RescueBook
from tests.gateway.sinks.test_influx_vm import sink_for
from tests.gateway.test_rescue import BASE, TAGS, command
from tests.harness.victoria_metrics import VictoriaMetrics
from tests.rules.harness import Site
from tests.rules.test_elevator import ELEVATOR, IDLE, device_points

pytestmark = pytest.mark.integration


async def test_rescue_rows_reach_the_database(vm: VictoriaMetrics) -> None:
    site = Site(device_points("lift-a", 0, "elevator"), ELEVATOR, start=time.time() - 3600)
    site.set("lift-a", **IDLE)
    site.tick()
    book = RescueBook(BASE, TAGS)
    async with sink_for(vm) as sink:
        book.write_line = lambda line: sink.add_lines([line])
        site.set("lift-a", floor=7, leveling=0, door_open=0, door_closed=1, occupied=1)
        site.tick()
        for t in site.run(30):
            book.observe(t)
        raised = site.now
        command(book, "arrive", raised + 600, device="lift-a", user="li.rescuer")
        assert await sink.flush(10)
    vm.wait_for_samples('{__name__=~"rescue_.*"}', 2)
    labels = {"device": "lift-a"}
    assert [v for _, v in vm.samples("rescue_open", **labels)] == [1, 1]
    assert [v for _, v in vm.samples("rescue_stage", **labels)] == [0, 2]
    assert [v for _, v in vm.samples("rescue_to_arrival_s", **labels)] == [0.0, 600.0]
    assert [ts for ts, _ in vm.samples("rescue_stage", **labels)] == [
        round(raised * 1000),
        round((raised + 600) * 1000),
    ]

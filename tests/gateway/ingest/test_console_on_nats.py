"""The alarm console's broker side against the NATS cluster: one console connection (to one
node) sees every site at once, whichever node each site's gateway publishes to."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from console import AlarmBoard, TitleBook
from console._board import builtin_packs
from console._link import BrokerLink, Hub
from tests.gateway.ingest.harness import shard_sites
from tests.gateway.ingest.test_gateway_on_nats import port_of
from tests.gateway.ingest.test_ingest_cluster import running_sites
from tests.harness.nats import NatsCluster

pytestmark = pytest.mark.integration


async def test_one_console_sees_every_site_through_the_cluster(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    # two sites, each starting on a different node; the console on the third
    paths = shard_sites(tmp_path, 2, mqtt_urls=nats_cluster.mqtt_urls)
    board = AlarmBoard("hazard", titles=TitleBook.from_packs(builtin_packs()))
    link = BrokerLink(board, Hub(), host="127.0.0.1", port=port_of(nats_cluster.mqtt_urls[2]))
    task = asyncio.create_task(link.run())
    try:
        async with running_sites(paths):
            deadline = time.monotonic() + 60
            while True:
                snap = board.snapshot().doc
                sites = {key.split("/", 1)[0] for key in snap["devices"]}
                alarm_sites = {key.split("/", 1)[0] for key in snap["alarms"]}
                if sites == {"city-1", "city-2"} and "city-1" in alarm_sites:
                    break
                assert time.monotonic() < deadline, f"devices of {sites}, alarms of {alarm_sites}"
                await asyncio.sleep(0.2)
            assert snap["link"]["connected"]
            methane = [k for k in snap["alarms"] if k.startswith("city-1/face1-gas/ch4/")]
            assert methane, sorted(snap["alarms"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

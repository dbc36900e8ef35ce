"""Occupational exposure end to end: a pymodbus gas detector, the gateway with the exposure pack,
real Mosquitto. The MAC alarm is published; the exposure state is saved when the gateway stops
and restored by the next one."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.app import Gateway
from gateway.config import SiteConfig, parse_site
from rules._exposure import load_state
from tests.gateway.test_gateway_mqtt import GAS_HOLDING, recorder
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import Listener
from tests.harness.paths import PACKS
from tests.harness.ports import free_port
from tests.harness.simulators import serve_tcp

pytestmark = pytest.mark.integration
__all__ = ["recorder"]  # the fixture, shared with test_gateway_mqtt

PACK = PACKS / "occupational_exposure.yaml"


def exposure_site(broker: Mosquitto, port: int, state_file: Path) -> SiteConfig:
    return parse_site(
        {
            "site": {"id": "t1"},
            "mqtt": {"url": broker.url, "topic_prefix": "hz"},
            "rules": [str(PACK)],
            "exposure": {"state_file": str(state_file)},
            "devices": [
                {
                    "id": "gas0",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                    "poll_interval": 0.2,
                    "timeout": 0.3,
                }
            ],
        }
    )


async def test_mac_alarm_and_state_across_a_restart(
    mosquitto: Mosquitto,
    recorder: Listener,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert GAS_HOLDING[4] == 12  # h2s register (scale 0.1): 1.2 ppm, below MAC 7.0
    holding = list(GAS_HOLDING)
    holding[4] = 80  # 8.0 ppm H2S: MAC 10 mg/m³ = 7.054 ppm (7.0 on the 0.1 ppm reading) is reached
    device = SimDevice(
        1,
        simdata=(
            [SimData(0, values=[True] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[True] * 16, datatype=DataType.BITS)],
            [SimData(0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(0, values=[0, 0], datatype=DataType.REGISTERS)],
        ),
    )
    port = free_port()
    server = await serve_tcp(port, [device])
    state_file = tmp_path / "exposure.npz"
    try:
        gw = Gateway(exposure_site(mosquitto, port, state_file))
        assert gw.exposure is not None
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        topic = "hz/t1/alarms/gas0/h2s/h2s_exposure_mac"
        alarm = (await recorder.wait_for(lambda t, d: t == topic and d is not None, 15)).doc
        assert alarm["state"] == "UNACK_ACTIVE" and alarm["level"] == "MAC"
        assert alarm["value"] == pytest.approx(8.0) and alarm["limit"] == 7.0
        await asyncio.sleep(1.0)  # a second of 5 ppm CO
        stop.set()
        await task
        state = load_state(state_file)  # saved at shutdown
        keys = state["keys"].tolist()
        co = keys.index("gas0/co/co_exposure")
        assert state["shift_dose"][co] > 0  # 5 ppm × the seconds it ran
        dose = float(state["shift_dose"][co])

        caplog.set_level(logging.INFO, logger="gateway.exposure")
        gw2 = Gateway(exposure_site(mosquitto, port, state_file))
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(gw2.run(stop2))
        await asyncio.sleep(1.0)
        stop2.set()
        await task2
        assert "exposure state restored" in caplog.text
        again = load_state(state_file)
        assert float(again["shift_dose"][co]) > dose  # carried on from the saved dose
        assert np.isfinite(again["clock"][0])
    finally:
        await server.shutdown()

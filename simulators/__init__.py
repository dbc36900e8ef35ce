"""Modbus device simulators for testers: signal models, scenarios, fault injection.

The simulators serve exactly the registers a site config makes the gateway read (the same
profiles and codec), over Modbus TCP, RTU-over-TCP and RTU serial lines::

    from simulators import SiteSimulator

    async with SiteSimulator(load_site("site.yaml"), scenario="gas-leak", seed=1) as sim:
        await sim.wait_closed()

See docs/simulators.md.
"""

from simulators.cli import parse_shard, run_simulator
from simulators.errors import EndpointError, ScenarioError, SimulatorError, UnknownDevice
from simulators.faults import (
    Delay,
    Drop,
    ExceptionReply,
    Fault,
    Freeze,
    Garbage,
    Silence,
    Spikes,
    parse_fault,
)
from simulators.lines import Endpoint
from simulators.scenarios import (
    SCENARIOS,
    ModelHandle,
    OperatorCommand,
    Scenario,
    ScenarioContext,
    scenario,
)
from simulators.site import MODELS, SiteSimulator

__all__ = [
    "MODELS",
    "SCENARIOS",
    "Delay",
    "Drop",
    "Endpoint",
    "EndpointError",
    "ExceptionReply",
    "Fault",
    "Freeze",
    "Garbage",
    "ModelHandle",
    "OperatorCommand",
    "Scenario",
    "ScenarioContext",
    "ScenarioError",
    "Silence",
    "SimulatorError",
    "SiteSimulator",
    "Spikes",
    "UnknownDevice",
    "parse_fault",
    "parse_shard",
    "run_simulator",
    "scenario",
]

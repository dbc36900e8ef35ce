"""The simulators' exceptions, in one shallow tree.

::

    SimulatorError
    ├── ScenarioError    unknown scenario, bad model parameter, bad shard
    ├── EndpointError    an endpoint could not be served (port in use, serial port missing)
    └── UnknownDevice    no simulated device has that id (also a KeyError)
"""

from __future__ import annotations

__all__ = ["EndpointError", "ScenarioError", "SimulatorError", "UnknownDevice"]


class SimulatorError(Exception):
    """Base of every error the simulators raise on purpose."""


class ScenarioError(SimulatorError):
    """A scenario, its parameters or the simulator's set-up is wrong."""


class EndpointError(SimulatorError):
    """An endpoint (TCP port or serial line) could not be served."""


class UnknownDevice(SimulatorError, KeyError):
    """No simulated device has the given id."""

    def __str__(self) -> str:
        return f"no simulated device {self.args[0]!r}"

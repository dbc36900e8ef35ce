"""The chaos tests' simulator scenario: methane at the coal face switching over its limits.

Loaded by the simulator process with ``python -m simulators --import tests.gateway.chaos.scenario``.
Every gas detector's CH4 baseline steps between 0.2 %vol and 1.8 %vol (over the H 1.0 and the
HH 1.5 limits of the coal-mine pack) every ``HALF_PERIOD_S`` seconds of simulated time from
``FIRST_STEP_S``, so alarms are raised and return to normal all through a run, outages included.
Everything else runs as in ``normal``. Seeded, so a run is the same from one time to the next.
"""

from __future__ import annotations

from collections.abc import Callable

from simulators.scenarios import ModelHandle, ScenarioContext, scenario

__all__ = ["FIRST_STEP_S", "HALF_PERIOD_S", "chaos_cycle"]

FIRST_STEP_S = 3.0
HALF_PERIOD_S = 2.5
LOW, HIGH = 0.2, 1.8
HORIZON_S = 3600.0


@scenario(
    "chaos-cycle",
    f"CH4 baseline of every gas detector steps between {LOW} and {HIGH} %vol every "
    f"{HALF_PERIOD_S} s from t={FIRST_STEP_S} s: alarm transitions all through a run",
)
def chaos_cycle(ctx: ScenarioContext) -> None:
    """Schedule the steps for an hour of simulated time."""
    for device in ctx.of_kind("gas"):
        handle = ctx.model(device.id)
        handle.set(ch4_base=LOW)
        t, high = FIRST_STEP_S, True
        while t < HORIZON_S:
            base = HIGH if high else LOW
            ctx.at(t, _step(handle, base))
            t += HALF_PERIOD_S
            high = not high


def _step(handle: ModelHandle, base: float) -> Callable[[], None]:
    return lambda: handle.set(ch4_base=base)

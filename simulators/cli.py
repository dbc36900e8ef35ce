"""Command-line helper: serve a site's simulated devices until stopped.

``hazardgw simulate -c SITE.yaml [--scenario NAME] [--seed N] [--shard i/n]`` calls
:func:`run_simulator`; ``python -m simulators`` does the same without the gateway's CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.config import SiteConfig
from simulators.site import SiteSimulator

__all__ = ["parse_shard", "run_simulator"]

log = logging.getLogger("simulators")


def parse_shard(text: str) -> tuple[int, int]:
    """Read ``"i/n"`` (serve devices whose index % n == i)."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must satisfy 0 <= i < n, got {text!r}")
    return i, n


async def run_simulator(
    site: SiteConfig,
    scenario: str,
    seed: int,
    shard: tuple[int, int] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the site's devices (or one shard of them) until ``stop`` is set or cancelled."""
    pymodbus_log = logging.getLogger("pymodbus")
    if pymodbus_log.level == logging.NOTSET:
        pymodbus_log.setLevel(logging.WARNING)  # not one "Server listening" line per endpoint
    sim = SiteSimulator(site, scenario=scenario, seed=seed, shard=shard)
    async with sim:
        where = f" shard {shard[0]}/{shard[1]}" if shard else ""
        log.info(
            "simulating %d devices of site %s%s on %d endpoints, scenario %s, seed %d",
            len(sim.devices),
            site.site.id,
            where,
            len(sim.lines),
            sim.scenario.name,
            seed,
        )
        for line in sim.lines:
            units = ", ".join(
                f"unit {u}: {d.id} ({d.profile.name})" for u, d in sorted(line.units.items())
            )
            log.info("serving %s: %s", line.endpoint, units)
        if stop is None:
            await sim.wait_closed()
        else:
            closed = asyncio.ensure_future(sim.wait_closed())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (closed, stopped):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        log.info("simulator stopping")

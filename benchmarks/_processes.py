"""Starting and stopping the processes a benchmark runs: simulators and the gateway.

Every benchmark runs the real CLI in its own processes (``hazardgw simulate --shard i/n`` and
``hazardgw run``), so what it measures is what a site runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["GATEWAY", "start_gateway", "start_simulators", "stop_all"]

GATEWAY = [sys.executable, "-m", "hazardgw"]
_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start_simulators(
    site: Path, procs: int, logs: Path, *, scenario: str = "normal", cwd: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    """``procs`` simulator processes, each serving one shard of the site's devices."""
    return [
        subprocess.Popen(
            [
                *GATEWAY,
                *("simulate", "-c", str(site), "--scenario", scenario),
                *("--shard", f"{i}/{procs}", "--log-level", "WARNING"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(logs / f"sim{i}.log").open("w"),
            env=_ENV,
            cwd=cwd,
        )
        for i in range(procs)
    ]


def start_gateway(
    site: Path, log: Path, *, argv: Sequence[str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """The gateway on ``site`` (``argv`` replaces the command, e.g. to run it under a profiler).

    Its state directory (the outbox of a site without ``outbox.path``) is ``state/`` next to
    ``log``: each run starts with an empty outbox of its own."""
    cmd = list(argv) if argv is not None else [*GATEWAY, "run", "-c", str(site)]
    env = {**_ENV, "STATE_DIRECTORY": str(log.parent / "state")}
    return subprocess.Popen(
        [*cmd, "--log-level", "WARNING"], stderr=log.open("w"), env=env, cwd=cwd
    )


def stop_all(gateway: subprocess.Popen[bytes], sims: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop the gateway as Ctrl-C would (it flushes what it holds), then the simulators."""
    gateway.send_signal(2)
    try:
        gateway.wait(15)
    except subprocess.TimeoutExpired:
        gateway.kill()
    for sim in sims:
        sim.terminate()
    for sim in sims:
        sim.wait(10)

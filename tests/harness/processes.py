"""The project's commands as processes a test starts, and stopping a process it started.

A test stops only the processes it started, by their handle (never by name: other tests'
brokers and gateways run on the same machine).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["HAZARDGW", "log_tail", "stop_process"]

HAZARDGW = (sys.executable, "-m", "hazardgw")
"""The ``hazardgw`` command line, run from this interpreter (``HAZARDGW + ("run", "-c", …)``)."""


def stop_process(
    proc: subprocess.Popen[bytes] | None,
    *,
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
) -> int | None:
    """Send ``sig`` (SIGTERM: stop as an operator would) and wait up to ``timeout`` s; a process
    still running then is killed. Returns its exit status, or None when it had to be killed (or
    there was no process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return None
    return proc.returncode


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a process's log file ("" when there is none yet)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])

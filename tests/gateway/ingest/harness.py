"""Pieces of the city platform for tests and benchmarks: site files for several gateways,
``hazardgw ingest`` worker processes, and reading a stream's consumer state.

Sites are the example site's devices split ``n`` ways (device ``j`` goes to site ``j % n``), each
with its own simulator ports, so every gateway has its own simulator: the shards of one big
site served as ``n`` sites.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.paths import EXAMPLE_SITE, ROOT
from tests.harness.ports import free_port
from tests.harness.processes import HAZARDGW, log_tail, stop_process

__all__ = [
    "IngestProcess",
    "shard_sites",
    "wait_consumer",
    "wait_drained",
    "write_ingest_config",
]

STATS_RE = re.compile(r"ingest (\S+) (?:stats|stopped): messages=(\d+) lines=(\d+)")


def shard_sites(
    workdir: Path,
    n: int,
    *,
    mqtt_urls: list[str],
    influx_url: str | None = None,
    poll_interval: float = 0.25,
    prefix: str = "city",
    telemetry_qos: int = 1,
) -> list[Path]:
    """``n`` site files from the example site's devices; site ``i`` starts on node ``i`` of
    ``mqtt_urls`` (so the gateways spread over the cluster) and writes its own sink to
    ``influx_url`` when given. Returns their paths."""
    base: dict[str, Any] = yaml.safe_load(EXAMPLE_SITE.read_text())
    paths = []
    for i in range(n):
        ports: dict[int, int] = {}
        devices = []
        for j, dev in enumerate(base["devices"]):
            if j % n != i:
                continue
            conn = dict(dev["connection"])
            conn["port"] = ports.setdefault(int(conn["port"]), free_port())
            devices.append({**dev, "connection": conn, "poll_interval": poll_interval})
        rotated = mqtt_urls[i % len(mqtt_urls) :] + mqtt_urls[: i % len(mqtt_urls)]
        doc: dict[str, Any] = {
            "site": {"id": f"{prefix}-{i + 1}", "name": f"shard {i + 1} of {n}"},
            "mqtt": {
                "urls": rotated,
                "topic_prefix": "hazard",
                "telemetry_qos": telemetry_qos,
                "client_id": f"{prefix}-{i + 1}-gw",
            },
            "outbox": {"path": str(workdir / f"{prefix}-{i + 1}.outbox.sqlite3")},
            "rules": [str(ROOT / r) for r in base["rules"]],
            "devices": devices,
        }
        if influx_url is not None:
            doc["influx"] = {"url": influx_url, "org": "direct", "bucket": "direct"}
        path = workdir / f"{prefix}-{i + 1}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths


def write_ingest_config(
    workdir: Path,
    *,
    influx_url: str,
    sites: list[Path],
    ack_wait: float = 30.0,
    batch_size: int = 5000,
) -> Path:
    path = workdir / "ingest.yaml"
    doc = {
        "nats": {"ack_wait": ack_wait},
        "topic_prefix": "hazard",
        "influx": {"url": influx_url, "org": "city", "bucket": "hazard", "batch_size": batch_size},
        "sites": [str(p) for p in sites],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class IngestProcess:
    """One ``hazardgw ingest`` worker as its own process (so it can be killed outright)."""

    name: str
    config: Path
    nats_urls: list[str]
    workdir: Path
    stream: str = "$MQTT_msgs"
    stats_interval: float = 1.0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> IngestProcess:
        args = [
            *HAZARDGW,
            *("ingest", "-c", str(self.config)),
            *("--nats", ",".join(self.nats_urls), "--stream", self.stream),
            *("--name", self.name, "--stats-interval", str(self.stats_interval)),
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to acknowledge or hand anything back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        stop_process(self.proc, timeout=timeout)
        return None if self.proc is None else self.proc.returncode

    def bound(self) -> bool:
        """The worker is bound to its consumer (it logged ``ingest NAME: stream ...``)."""
        try:
            return f"ingest {self.name}: stream " in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def written(self) -> tuple[int, int]:
        """(messages, lines) from the worker's last stats line (0, 0 before the first)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0, 0
        found = [m for m in STATS_RE.finditer(text) if m.group(1) == self.name]
        if not found:
            return 0, 0
        return int(found[-1].group(2)), int(found[-1].group(3))

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


async def wait_consumer(js: Any, stream: str, consumer: str, timeout: float) -> None:
    """Until the workers have created their consumer: from then on nothing published is missed
    (an interest-retention stream keeps nothing for a consumer that does not exist yet)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.consumer_info(stream, consumer, timeout=2)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def wait_drained(js: Any, stream: str, consumer: str, timeout: float) -> tuple[int, int]:
    """Until the consumer has nothing pending nor unacknowledged; returns the last
    (num_pending, num_ack_pending)."""
    import asyncio

    deadline = time.monotonic() + timeout
    last = (-1, -1)
    while time.monotonic() < deadline:
        try:
            info = await js.consumer_info(stream, consumer, timeout=2)
            last = (int(info.num_pending or 0), int(info.num_ack_pending or 0))
            if last == (0, 0):
                return last
        except Exception:  # leader moving: ask again
            pass
        await asyncio.sleep(0.3)
    return last

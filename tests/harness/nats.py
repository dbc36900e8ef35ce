"""A real NATS cluster with JetStream and MQTT for tests: Debian's ``nats-server`` (2.9).

Each node is one process on free loopback ports (client, cluster routes, MQTT, monitoring) with
its own JetStream store directory. MQTT in nats-server needs JetStream and a ``server_name``; an
MQTT topic ``hazard/s1/gas1/telemetry`` is the NATS subject ``hazard.s1.gas1.telemetry``::

    with NatsCluster.launch(tmp_path, nodes=3) as cluster:
        cluster.nats_urls          # ["nats://127.0.0.1:p1", ...] for nats-py and `hazardgw ingest`
        cluster.mqtt_urls          # ["mqtt://127.0.0.1:m1", ...] for a gateway's `mqtt.urls`
        cluster.kill(0)            # SIGKILL one node: its store directory stays
        cluster.start(0)           # and back, on the same ports

Used by tests/gateway/ingest and benchmarks/platform_bench.py.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from tests.harness.ports import free_port

__all__ = ["NatsCluster", "NatsNode", "nats_binary"]

CLUSTER_NAME = "hazard"


def nats_binary() -> str | None:
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )


@dataclass
class NatsNode:
    name: str
    workdir: Path
    client_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def config(self, routes: list[int], max_payload: int = 1 << 20) -> str:
        store = self.workdir / "js"
        route_list = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
        cluster = (
            f"cluster {{ name: {CLUSTER_NAME}, listen: 127.0.0.1:{self.cluster_port}, "
            f"routes: [{route_list}] }}\n"
            if routes
            else ""
        )
        return (
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f"max_payload: {max_payload}\n"
            f'jetstream {{ store_dir: "{store}", max_memory_store: 256MB, max_file_store: 4GB }}\n'
            f"{cluster}"
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}\n"
        )


class NatsCluster:
    """``nodes`` nats-server processes routed into one cluster (one node: no cluster block)."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        binary = nats_binary()
        if binary is None:
            raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.nodes = [NatsNode(f"n{i + 1}", self.workdir / f"nats-n{i + 1}") for i in range(nodes)]

    @classmethod
    @contextlib.contextmanager
    def launch(cls, workdir: Path, nodes: int = 3, timeout: float = 30.0) -> Iterator[Self]:
        cluster = cls(workdir, nodes)
        try:
            cluster.start_all(timeout)
            yield cluster
        finally:
            cluster.stop_all()

    @property
    def nats_urls(self) -> list[str]:
        return [n.nats_url for n in self.nodes]

    @property
    def mqtt_urls(self) -> list[str]:
        return [n.mqtt_url for n in self.nodes]

    def start(self, index: int) -> None:
        node = self.nodes[index]
        if node.running:
            return
        node.workdir.mkdir(parents=True, exist_ok=True)
        routes = [n.cluster_port for n in self.nodes] if len(self.nodes) > 1 else []
        conf = node.workdir / "nats.conf"
        conf.write_text(node.config(routes))
        with (node.workdir / "nats.log").open("ab") as log:
            node.proc = subprocess.Popen(
                [self.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )

    def start_all(self, timeout: float = 30.0) -> None:
        for i in range(len(self.nodes)):
            self.start(i)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every running node says JetStream (and so MQTT) is ready."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while node.running:
                if _healthy(node):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nats node {node.name} not healthy: {self.log_tail(node)}")
                time.sleep(0.1)
            else:
                if node.proc is not None:
                    raise RuntimeError(f"nats node {node.name} exited: {self.log_tail(node)}")

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a power cut would; its store directory stays."""
        node = self.nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(10)

    def stop_all(self) -> None:
        for node in self.nodes:
            proc, node.proc = node.proc, None
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def log_tail(self, node: NatsNode, lines: int = 20) -> str:
        try:
            text = (node.workdir / "nats.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start_all()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()


def _healthy(node: NatsNode) -> bool:
    try:
        url = f"http://127.0.0.1:{node.http_port}/healthz"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False

"""A real VictoriaMetrics for tests: it speaks the InfluxDB v2 write API the gateway uses.

Debian's ``victoria-metrics`` binary runs on a free loopback port with its own storage directory;
:meth:`VictoriaMetrics.stop` and :meth:`VictoriaMetrics.start` keep that directory, so a test can
take the database away and bring it back with its data. Reads go through ``/api/v1/export``
(JSON lines, raw samples with millisecond timestamps) after ``/internal/force_flush``.

VictoriaMetrics names a series ``{measurement}_{field}`` and keeps the tags as labels::

    with VictoriaMetrics.launch(tmp_path) as vm:
        ...  # point an InfluxConfig at vm.url (any org, bucket and token)
        rows = vm.wait_for_samples('{__name__=~"gas_.*",site="s1"}', count=120)
        assert vm.samples("gas_ch4", device="face1-gas") == [(ts_ms, 0.42), ...]

Used by tests/gateway/sinks and by the end-to-end test (gateway + simulators + broker + database).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from tests.harness.ports import free_port

__all__ = ["Series", "VictoriaMetrics", "find_binary"]

BINARY_CANDIDATES = ("victoria-metrics", "victoria-metrics-prod", "/usr/bin/victoria-metrics")


def find_binary() -> str | None:
    """Path of the victoria-metrics binary, or None when it is not installed."""
    for name in BINARY_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True, slots=True)
class Series:
    """One exported series: its name, labels (tags) and samples in time order."""

    name: str
    labels: dict[str, str]
    timestamps: list[int]  # epoch ms
    values: list[float]

    @property
    def samples(self) -> list[tuple[int, float]]:
        return list(zip(self.timestamps, self.values, strict=True))


class VictoriaMetrics:
    """One victoria-metrics process; restartable on the same port and storage directory."""

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: str | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        found = binary or find_binary()
        if found is None:
            raise FileNotFoundError(
                "victoria-metrics is not installed (apt install victoria-metrics)"
            )
        self.binary = found
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra_args = extra_args
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @contextlib.contextmanager
    def launch(cls, tmp_dir: Path, **kwargs: Any) -> Iterator[Self]:
        """Start one in ``tmp_dir/vm-data``; stop it on exit."""
        vm = cls(Path(tmp_dir) / "vm-data", **kwargs)
        vm.start()
        try:
            yield vm
        finally:
            vm.stop()

    @property
    def url(self) -> str:
        """Base URL: give it to influxdb-client (``/api/v2/write`` is served under it)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start (or restart) on the same port and storage directory; wait until healthy."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-retentionPeriod=100y",  # accept old timestamps, as replays after an outage carry
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"victoria-metrics exited with {self._proc.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                if self._get("/health", timeout=0.5) == b"OK":
                    return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"victoria-metrics not healthy after {timeout}s: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM flushes to disk); the storage directory stays."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ HTTP

    def _get(
        self, path: str, params: Mapping[str, str] | None = None, timeout: float = 10
    ) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=timeout) as resp:
            return bytes(resp.read())

    def _post(self, path: str, body: bytes = b"", timeout: float = 10) -> bytes:
        req = urllib.request.Request(f"{self.url}{path}", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return bytes(resp.read())

    def write_lines(self, lines: str, *, precision: str = "ms") -> None:
        """Write line protocol directly (the same endpoint influxdb-client uses)."""
        self._post(f"/api/v2/write?precision={precision}&bucket=test&org=test", lines.encode())

    def force_flush(self) -> None:
        """Make everything ingested so far searchable."""
        self._get("/internal/force_flush")

    # ------------------------------------------------------------------ reading back

    def export(self, match: str, *, flush: bool = True) -> list[Series]:
        """Every series matching the selector (``{__name__=~"gas_.*"}``), raw samples."""
        if flush:
            self.force_flush()
        raw = self._get("/api/v1/export", {"match[]": match})
        out = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            metric = dict(obj["metric"])
            name = metric.pop("__name__")
            pairs = sorted(zip(obj["timestamps"], obj["values"], strict=True))
            out.append(
                Series(
                    name=name,
                    labels=metric,
                    timestamps=[int(t) for t, _ in pairs],
                    values=[float(v) for _, v in pairs],
                )
            )
        out.sort(key=lambda s: (s.name, sorted(s.labels.items())))
        return out

    def wait_for_samples(self, match: str, count: int, timeout: float = 10.0) -> list[Series]:
        """Export until at least ``count`` samples match (ingestion is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            series = self.export(match)
            total = sum(len(s.timestamps) for s in series)
            if total >= count or time.monotonic() > deadline:
                return series
            time.sleep(0.1)

    def samples(self, name: str, **labels: str) -> list[tuple[int, float]]:
        """Samples of the one series ``name`` with exactly these labels among its labels."""
        selector = ",".join(
            [f'__name__="{name}"', *(f'{k}="{_esc(v)}"' for k, v in labels.items())]
        )
        found = self.export("{" + selector + "}")
        if len(found) > 1:
            raise AssertionError(f"{len(found)} series match {name} {labels}: give more labels")
        return found[0].samples if found else []

    def query(self, promql: str, at_ms: int | None = None) -> list[dict[str, Any]]:
        """An instant PromQL/MetricsQL query; ``data.result`` of the answer."""
        params = {"query": promql}
        if at_ms is not None:
            params["time"] = f"{at_ms / 1000:.3f}"
        self.force_flush()
        answer = json.loads(self._get("/api/v1/query", params))
        if answer.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def is_reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False

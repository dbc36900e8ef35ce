"""The chaos rig: real Mosquitto, victoria-metrics, simulators and a gateway; and the counts.

:class:`ChaosRig` starts everything on free loopback ports in a temporary directory: the broker
(:class:`PersistentMosquitto`: sessions and queued QoS 1 messages saved every second), the
database (:class:`VictoriaMetrics`), the simulators (``python -m simulators`` with the
``chaos-cycle`` scenario) and the gateway (``python -m hazardgw run`` with an ``outbox:`` and
``telemetry_qos: 1``), plus a :class:`SessionRecorder`: an MQTT subscriber with a persistent
session (``clean_session`` False, QoS 1, fixed client id) that keeps every message in order.

What each leg can honestly promise, and what :func:`check` asserts:

* **What the gateway produced.** Every periodic gateway status carries ``started`` and, since
  that start, ``telemetry_messages`` and ``alarm_transitions``. The status goes through the same
  ordered outbox as the records counted before it, so the last status a process produced that
  reached us gives, for that process, a count to hold both legs against: every record with
  ``started <= ts <= status.ts``.
* **Gateway -> database** (outbox, ``deliver_batches``, idempotent writes): nothing lost. For
  each process, the database holds exactly the counted records; across the whole run every
  record on MQTT is in the database.
* **Gateway -> broker** (outbox, QoS 1, replayed until PUBACK): nothing lost, duplicates only as
  exact re-sends of the same message.
* **Broker -> subscriber.** A QoS 1 message the broker acknowledged is its responsibility. A
  Mosquitto SIGKILLed loses what it took in since its last save (``autosave_interval 1``) and
  had not yet written to the subscriber's socket. So a record missing on MQTT but present in the
  database is allowed only if its ``ts`` lies in the second or two before a broker SIGKILL
  (:data:`BROKER_LOSS_WINDOW_MS`); they are counted and reported (in practice there are none:
  Mosquitto forwards a message to connected subscribers before it acknowledges it).
* **Order**: per device (telemetry) and per alarm (events), in arrival order, each new ``ts`` is
  greater than every ``ts`` before it; a ``ts`` seen before must be an exact re-send (the same
  payload).
* **Outage windows**: every device has records with ``ts`` inside each outage window, on both
  legs (the gateway kept producing and nothing it produced then was lost), unless the gateway
  itself was down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.sinks.lineprotocol import ALARM_STATE_CODES
from tests.harness.counting_device import CountingDevices
from tests.harness.mosquitto import PersistentMosquitto
from tests.harness.mqtt import Message, SessionRecorder
from tests.harness.paths import PACKS, ROOT
from tests.harness.ports import free_port
from tests.harness.processes import HAZARDGW, log_tail, stop_process
from tests.harness.simulators import SimulatorProcess
from tests.harness.victoria_metrics import VictoriaMetrics

__all__ = [
    "BROKER_LOSS_WINDOW_MS",
    "ChaosRig",
    "GatewayKill",
    "ReadReport",
    "Report",
    "check",
    "check_reads",
]

SITE_ID = "chaos"
PREFIX = "hazard"
BASE = f"{PREFIX}/{SITE_ID}"
POLL_INTERVAL = 0.5
STATS_INTERVAL_S = 5.0  # the gateway's status period (Gateway.stats_interval)
BROKER_LOSS_WINDOW_MS = 2500
"""How long before a broker SIGKILL a record may have been acknowledged and then lost by it."""
STATE_NAMES = {code: name for name, code in ALARM_STATE_CODES.items()}

DEVICES: tuple[tuple[str, str, str], ...] = (
    # id, profile, tags
    ("face-gas", "gas_detector", "{area: face-1, position: T1}"),
    ("corner-gas", "gas_detector", "{area: face-1, position: T0}"),
    ("return-gas", "gas_detector", "{area: face-1, position: T2}"),
    ("tank-1", "tank_gauge", "{area: tank-farm}"),
    ("lift-1", "elevator", "{building: office}"),
)
MEASUREMENTS = "gas|tank|elevator|counter"


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True, slots=True)
class Status:
    started: int
    ts: int
    telemetry: int
    alarms: int
    dropped: int


@dataclass(slots=True)
class Legs:
    """What arrived over MQTT and what is in the database."""

    mqtt_telemetry: set[tuple[str, int]] = field(default_factory=set)
    mqtt_alarms: set[tuple[str, int, str]] = field(default_factory=set)
    db_telemetry: set[tuple[str, int]] = field(default_factory=set)
    db_alarms: set[tuple[str, int, str]] = field(default_factory=set)
    statuses: list[Status] = field(default_factory=list)
    order_errors: list[str] = field(default_factory=list)
    duplicates: int = 0

    def final_status(self) -> dict[int, Status]:
        """The newest status of each gateway process (by ``started``)."""
        out: dict[int, Status] = {}
        for st in self.statuses:
            if st.started not in out or st.ts > out[st.started].ts:
                out[st.started] = st
        return out


def parse_mqtt(messages: list[Message]) -> Legs:
    legs = Legs()
    last_ts: dict[str, int] = {}
    seen: dict[tuple[str, int], bytes] = {}
    for m in messages:
        if not m.payload:
            continue
        doc = json.loads(m.payload)
        if m.topic.endswith("/telemetry"):
            stream = m.topic.split("/")[2]
            legs.mqtt_telemetry.add((stream, int(doc["ts"])))
        elif m.topic == f"{BASE}/events/alarm":
            if doc.get("type") != "transition":
                continue  # flood announcements are not transitions
            stream = str(doc["id"])
            legs.mqtt_alarms.add((stream, int(doc["ts"]), str(doc["to"])))
        elif m.topic == f"{BASE}/gateway/status":
            if "telemetry_messages" in doc:
                legs.statuses.append(
                    Status(
                        int(doc["started"]),
                        int(doc["ts"]),
                        int(doc["telemetry_messages"]),
                        int(doc["alarm_transitions"]),
                        int(doc.get("outbox_dropped", 0)),
                    )
                )
            continue
        else:
            continue
        key = (stream, int(doc["ts"]))
        previous = seen.get(key)
        if previous is not None:
            legs.duplicates += 1
            if previous != m.payload:
                legs.order_errors.append(f"{key}: a second, different message with the same ts")
        elif key[1] <= last_ts.get(stream, -1):
            legs.order_errors.append(
                f"{stream}: ts {key[1]} arrived after ts {last_ts[stream]} (out of order)"
            )
        seen.setdefault(key, m.payload)
        last_ts[stream] = max(last_ts.get(stream, -1), key[1])
    return legs


def read_db(vm: VictoriaMetrics, legs: Legs) -> None:
    legs.db_telemetry = {
        (s.labels["device"], ts)
        for s in vm.export(f'{{__name__=~"({MEASUREMENTS})_.*",site="{SITE_ID}"}}')
        for ts in s.timestamps
    }
    legs.db_alarms = set()
    for s in vm.export(f'{{__name__="alarm_state",site="{SITE_ID}"}}'):
        alarm = f"{s.labels['device']}/{s.labels['point']}/{s.labels['rule']}"
        for ts, value in s.samples:
            legs.db_alarms.add((alarm, ts, STATE_NAMES[int(value)]))


# --------------------------------------------------------------------------- the rig


@dataclass(slots=True)
class Timeline:
    """Wall-clock times (ms) of what the test did."""

    broker_kills: list[int] = field(default_factory=list)
    outages: list[tuple[str, int, int]] = field(default_factory=list)  # (what, from, to)
    gateway_down: list[tuple[int, int | None]] = field(default_factory=list)
    """(killed, restarted); None: until the restarted gateway's first record."""


def now_ms() -> int:
    return int(time.time() * 1000)


def write_site(
    work: Path,
    mqtt_url: str,
    vm_url: str,
    *,
    default_outbox: bool = False,
    counters: CountingDevices | None = None,
) -> tuple[Path, list[int]]:
    """The chaos site. ``default_outbox``: no ``outbox`` key (the outbox a new user gets, in
    ``$STATE_DIRECTORY``); ``counters``: counting devices polled beside the simulated ones."""
    ports: list[int] = []
    while len(ports) < len(DEVICES):
        port = free_port()
        if port not in ports:
            ports.append(port)
    lines = [
        f"site: {{id: {SITE_ID}, name: chaos test site}}",
        f"mqtt: {{url: '{mqtt_url}', topic_prefix: {PREFIX}, telemetry_qos: 1, keepalive: 5}}",
        f"influx: {{url: '{vm_url}', org: safety, bucket: hazard, flush_interval: 0.5}}",
    ]
    if not default_outbox:
        lines.append(f"outbox: {{path: '{work / 'outbox.sqlite3'}', max_mb: 64}}")
    lines += [f"rules: ['{PACKS / 'coal_mine.yaml'}']", "devices:"]
    for (device, profile, tags), port in zip(DEVICES, ports, strict=True):
        lines.append(
            f"  - {{id: {device}, profile: {profile}, connection: {{transport: tcp, "
            f"host: 127.0.0.1, port: {port}}}, unit: 1, poll_interval: {POLL_INTERVAL}, "
            f"timeout: 1.0, tags: {tags}}}"
        )
    # the simulators serve the simulated devices; the counting devices serve themselves
    (work / "sim-site.yaml").write_text("\n".join(lines) + "\n")
    if counters is not None:
        lines += counters.device_lines(counters.write_profile(work), POLL_INTERVAL)
    site = work / "site.yaml"
    site.write_text("\n".join(lines) + "\n")
    return site, ports


class ChaosRig:
    """Broker, database, simulators, gateway process and recorder for one chaos test."""

    def __init__(
        self,
        work: Path,
        vm: VictoriaMetrics,
        name: str,
        *,
        default_outbox: bool = False,
        counters: CountingDevices | None = None,
    ) -> None:
        self.work = work
        self.vm = vm
        self.broker = PersistentMosquitto(work)
        self.counters = counters
        self.site, self.ports = write_site(
            work, self.broker.url, vm.url, default_outbox=default_outbox, counters=counters
        )
        self.timeline = Timeline()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.sim: SimulatorProcess | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.gateway_runs = 0
        self.recorder: SessionRecorder | None = None
        self.name = name

    # -- lifecycle

    def start(self) -> None:
        self.broker.start()
        self.recorder = SessionRecorder(
            self.broker.port,
            f"chaos-recorder-{self.name}",
            [f"{BASE}/+/telemetry", f"{BASE}/events/alarm", f"{BASE}/gateway/status"],
        )
        self.recorder.wait_connected()
        self.sim = SimulatorProcess(
            self.work / "sim-site.yaml",
            self.work / "simulators.log",
            scenario="chaos-cycle",
            imports=["tests.gateway.chaos.scenario"],
            seed=7,
            ports=self.ports,
            env=self.env,
        ).start()
        self.start_gateway()
        self.wait_for_status(after_ms=0, timeout=60)  # up, polling and publishing

    def close(self) -> None:
        stop_process(self.gateway, timeout=15)
        if self.sim is not None:
            self.sim.stop()
        if self.recorder is not None:
            self.recorder.close()
        self.broker.stop()

    # -- the gateway process

    def start_gateway(self) -> None:
        self.gateway_runs += 1
        self.gateway = subprocess.Popen(
            [*HAZARDGW, "run", "-c", str(self.site), "--log-level", "INFO"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.work / f"gateway-{self.gateway_runs}.log").open("ab"),
        )

    def kill_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.wait(10)

    def stop_gateway(self) -> None:
        """Stop the gateway as an operator would (SIGTERM); returns when it has exited."""
        assert self.gateway is not None
        self.gateway.terminate()
        self.gateway.wait(30)

    def assert_gateway_running(self) -> None:
        assert self.gateway is not None
        if self.gateway.poll() is not None:
            raise AssertionError(f"the gateway exited: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.work / f"gateway-{self.gateway_runs}.log", lines)

    # -- faults

    def kill_broker(self) -> None:
        assert self.broker.store.exists(), "the broker has not saved its sessions yet"
        self.timeline.broker_kills.append(now_ms())
        self.broker.kill()

    def start_broker(self) -> None:
        self.broker.start()

    # -- waiting

    def wait_for_status(self, *, after_ms: int, timeout: float) -> Status:
        """The first gateway status (with counters) produced after ``after_ms``."""
        assert self.recorder is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            legs = parse_mqtt(self.recorder.snapshot())
            fresh = [s for s in legs.statuses if s.ts > after_ms]
            if fresh:
                return fresh[0]
            self.assert_gateway_running()
            time.sleep(0.5)
        raise TimeoutError(f"no gateway status after {after_ms} within {timeout} s")

    def wait_for_db_records(self, *, after_ms: int, minimum: int, timeout: float) -> None:
        """Wait until every device has ``minimum`` records in the database after ``after_ms``."""
        deadline = time.monotonic() + timeout
        while True:
            legs = Legs()
            read_db(self.vm, legs)
            counts = dict.fromkeys((d for d, _, _ in DEVICES), 0)
            for device, ts in legs.db_telemetry:
                if ts > after_ms and device in counts:
                    counts[device] += 1
            if min(counts.values()) >= minimum:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"records in the database after {timeout} s: {counts}")
            self.assert_gateway_running()
            time.sleep(0.5)

    def settle(self, timeout: float = 90.0) -> Legs:
        """Let the last outage heal; return both legs once the database holds every record the
        last status counted (or the timeout passed: :func:`check` then says what is missing)."""
        assert self.recorder is not None
        end = now_ms()
        self.wait_for_status(after_ms=end, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            legs = parse_mqtt(self.recorder.snapshot())
            read_db(self.vm, legs)
            if not _db_shortfall(legs) or time.monotonic() > deadline:
                return legs
            time.sleep(1.0)

    def collect(self, timeout: float = 90.0) -> Legs:
        """After the gateway stopped (SIGTERM): both legs, once the database holds every record
        the last status counted (or the timeout passed: :func:`check` then says what is missing).
        """
        assert self.recorder is not None
        deadline = time.monotonic() + timeout
        while True:
            legs = parse_mqtt(self.recorder.snapshot())
            read_db(self.vm, legs)
            if not _db_shortfall(legs) or time.monotonic() > deadline:
                return legs
            time.sleep(1.0)


@contextlib.contextmanager
def chaos_rig(
    tmp_path: Path, name: str, *, default_outbox: bool = False, counters: int = 0
) -> Iterator[ChaosRig]:
    with contextlib.ExitStack() as stack:
        vm = stack.enter_context(VictoriaMetrics.launch(tmp_path / "vm"))
        devices = stack.enter_context(CountingDevices(counters)) if counters else None
        rig = ChaosRig(tmp_path, vm, name, default_outbox=default_outbox, counters=devices)
        try:
            rig.start()
            yield rig
        finally:
            rig.close()


def _in_run(ts: int, st: Status) -> bool:
    return st.started <= ts <= st.ts


def _db_shortfall(legs: Legs) -> bool:
    for st in legs.final_status().values():
        tel = sum(1 for _, ts in legs.db_telemetry if _in_run(ts, st))
        alarms = sum(1 for _, ts, _ in legs.db_alarms if _in_run(ts, st))
        if tel < st.telemetry or alarms < st.alarms:
            return True
    return False


# --------------------------------------------------------------------------- the verdict


@dataclass(slots=True)
class Report:
    """The counts a chaos test asserts on and prints."""

    produced_telemetry: int = 0
    produced_alarms: int = 0
    db_telemetry: int = 0
    db_alarms: int = 0
    mqtt_telemetry: int = 0
    mqtt_alarms: int = 0
    broker_lost: int = 0
    duplicates: int = 0
    runs: int = 0
    in_outages: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def check(legs: Legs, timeline: Timeline, *, runs: int) -> Report:
    """Assert everything the module docstring promises; return the counts."""
    finals = legs.final_status()
    assert len(finals) == runs, f"statuses from {len(finals)} gateway runs, expected {runs}"
    report = Report(runs=runs, duplicates=legs.duplicates)
    assert not legs.order_errors, f"order broken: {legs.order_errors[:5]}"

    # What each process produced, up to its last status, is on both legs.
    for st in finals.values():
        db_tel = {k for k in legs.db_telemetry if _in_run(k[1], st)}
        db_al = {k for k in legs.db_alarms if _in_run(k[1], st)}
        assert len(db_tel) == st.telemetry, (
            f"run started {st.started}: produced {st.telemetry} telemetry records up to "
            f"{st.ts}, the database holds {len(db_tel)}"
        )
        assert len(db_al) == st.alarms, (
            f"run started {st.started}: produced {st.alarms} alarm transitions up to {st.ts}, "
            f"the database holds {len(db_al)}"
        )
        assert st.dropped == 0, "the outbox dropped telemetry: the bound is too small"
        report.produced_telemetry += st.telemetry
        report.produced_alarms += st.alarms

    # Every record on MQTT is in the database; a record only in the database is one the broker
    # took and lost when it was SIGKILLed (see the module docstring).
    horizon = max(st.ts for st in finals.values())
    mqtt_tel = {k for k in legs.mqtt_telemetry if k[1] <= horizon}
    mqtt_al = {k for k in legs.mqtt_alarms if k[1] <= horizon}
    db_tel = {k for k in legs.db_telemetry if k[1] <= horizon}
    db_al = {k for k in legs.db_alarms if k[1] <= horizon}
    assert not mqtt_tel - db_tel, f"on MQTT, not in the database: {sorted(mqtt_tel - db_tel)[:5]}"
    assert not mqtt_al - db_al, f"on MQTT, not in the database: {sorted(mqtt_al - db_al)[:5]}"

    def broker_may_have_lost(ts: int) -> bool:
        return any(k - BROKER_LOSS_WINDOW_MS <= ts <= k for k in timeline.broker_kills)

    lost = [k for k in (db_tel - mqtt_tel) | (db_al - mqtt_al) if not broker_may_have_lost(k[1])]
    assert not lost, f"in the database, never on MQTT: {sorted(lost)[:5]}"
    report.broker_lost = len(db_tel - mqtt_tel) + len(db_al - mqtt_al)
    report.db_telemetry, report.db_alarms = len(db_tel), len(db_al)
    report.mqtt_telemetry, report.mqtt_alarms = len(mqtt_tel), len(mqtt_al)

    # The gateway kept producing through every outage, and what it produced then arrived.
    gateway_down = [
        (a, b if b is not None else min(ts for _, ts in db_tel if ts > a))
        for a, b in timeline.gateway_down
    ]
    for what, start, end in timeline.outages:
        down = [(a, b) for a, b in gateway_down if a < end and b > start]
        for device, _, _ in DEVICES:
            for leg, records in (("mqtt", mqtt_tel), ("db", db_tel)):
                inside = [
                    ts
                    for d, ts in records
                    if d == device and start <= ts <= end and not any(a <= ts <= b for a, b in down)
                ]
                assert inside, f"{device}: no records on {leg} during the {what} outage"
                report.in_outages[f"{what}:{leg}"] = report.in_outages.get(
                    f"{what}:{leg}", 0
                ) + len(inside)
    assert report.produced_alarms > 0, "the scenario raised no alarms: nothing was counted"
    return report


# --------------------------------------------------------------------------- every read


@dataclass(frozen=True, slots=True)
class GatewayKill:
    """A gateway SIGKILLed at ``killed`` and started again at ``restarted`` (wall-clock s)."""

    killed: float
    restarted: float


@dataclass(slots=True)
class ReadReport:
    """What the counting devices answered, and where it arrived."""

    reads: int = 0
    mqtt: int = 0
    db: int = 0
    lost_in_flight: int = 0  # the one sample a device had given when its gateway was SIGKILLed
    broker_lost: int = 0

    def line(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def _seqs_on_mqtt(messages: list[Message]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for m in messages:
        if m.topic.endswith("/telemetry") and m.payload:
            doc = json.loads(m.payload)
            if "seq" in doc["values"]:
                out.setdefault(m.topic.split("/")[2], set()).add(int(doc["values"]["seq"]))
    return out


def _seqs_in_db(vm: VictoriaMetrics) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for series in vm.export(f'{{__name__="counter_seq",site="{SITE_ID}"}}'):
        out.setdefault(series.labels["device"], set()).update(int(v) for _, v in series.samples)
    return out


def check_reads(
    rig: ChaosRig, kills: list[GatewayKill], timeline: Timeline, timeout: float = 60.0
) -> ReadReport:
    """Every read a counting device answered is on MQTT and in the database, except, per device
    and gateway SIGKILL, the one sample it had given last before the kill (read, not yet
    committed); on MQTT also what the broker may have lost when it was SIGKILLed itself (see
    :data:`BROKER_LOSS_WINDOW_MS`). Call after the gateway stopped cleanly."""
    assert rig.counters is not None and rig.recorder is not None
    reads = {d.device_id: d.reads for d in rig.counters}
    deadline = time.monotonic() + timeout
    while True:  # the recorder and the database catch up with what the gateway delivered
        mqtt = _seqs_on_mqtt(rig.recorder.snapshot())
        db = _seqs_in_db(rig.vm)
        caught_up = all(
            {s for s, _ in r} <= mqtt.get(d, set()) and {s for s, _ in r} <= db.get(d, set())
            for d, r in reads.items()
        )
        if caught_up or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    report = ReadReport()
    for device, answered in reads.items():
        in_flight: set[int] = set()
        for kill in kills:
            before = [s for s, at in answered if at <= kill.killed]
            if before:
                in_flight.add(max(before))  # read, maybe not yet committed
            in_flight.update(s for s, at in answered if kill.killed < at <= kill.restarted)
        broker_window = {
            s
            for s, at in answered
            if any(k - BROKER_LOSS_WINDOW_MS <= at * 1000 <= k for k in timeline.broker_kills)
        }
        seqs = {s for s, _ in answered}
        missing_db = seqs - db.get(device, set())
        missing_mqtt = seqs - mqtt.get(device, set())
        assert missing_db <= in_flight, (
            f"{device}: read, never in the database: {sorted(missing_db - in_flight)[:10]}"
        )
        assert missing_mqtt <= in_flight | broker_window, (
            f"{device}: read, never on MQTT: {sorted(missing_mqtt - in_flight)[:10]}"
        )
        report.reads += len(seqs)
        report.db += len(seqs & db.get(device, set()))
        report.mqtt += len(seqs & mqtt.get(device, set()))
        report.lost_in_flight += len(missing_db)
        report.broker_lost += len(missing_mqtt - missing_db)
    assert report.reads > 0, "the counting devices were never read"
    return report

"""Site configuration: the contract with enterprises.

A site file is parsed once, at start, in layers: YAML syntax, then structure (pydantic models),
then cross-field checks driven by tables (register kind -> legal types, type -> register count),
then profile resolution. Every problem becomes a :class:`ConfigIssue` that names the key path
(``devices[3].points[1].type``), the bad value and what is allowed; :class:`ConfigError` carries
all of them so an enterprise fixes its file in one pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import re
import socket
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fieldmodel.model import (
    DEFAULT_REFUSAL_RECHECK,
    Connection,
    Device,
    Point,
    Profile,
    RtuConnection,
    RtuOverTcpConnection,
    TcpConnection,
)
from fieldmodel.registers import BIT_KINDS, DataType, RegisterKind, WordOrder
from gateway.errors import ConfigError, ConfigIssue
from gateway.topics import RESERVED_DEVICE_IDS
from rules import DEFAULT_SHIFT_STARTS, ShiftSchedule
from rules.yamlfile import YamlFileError, load_yaml, read_text_file

__all__ = [
    "BUILTIN_PROFILES",
    "RESERVED_TAGS",
    "ConfigError",
    "ConfigIssue",
    "ConnectionFile",
    "OutboxConfig",
    "RescueConfig",
    "RtuConnectionFile",
    "RtuOverTcpConnectionFile",
    "SiteConfig",
    "TcpConnectionFile",
    "connection_from_file",
    "default_outbox_path",
    "load_site",
    "parse_site",
]

PROFILE_DIR = Path(__file__).parent / "profiles"
BUILTIN_PROFILES: dict[str, Path] = {
    "gas_detector": PROFILE_DIR / "gas_detector.yaml",
    "toxic_gas_detector": PROFILE_DIR / "toxic_gas_detector.yaml",
    "mine_environment": PROFILE_DIR / "mine_environment.yaml",
    "tank_gauge": PROFILE_DIR / "tank_gauge.yaml",
    "elevator": PROFILE_DIR / "elevator.yaml",
    "tower_crane": PROFILE_DIR / "tower_crane.yaml",
}

NAME_RE = r"^[a-z0-9_]+$"
DEVICE_ID_RE = r"^[a-z0-9_-]+$"
#: Tag keys the gateway sets itself on database lines; device tags must not use them.
RESERVED_TAGS = frozenset({"site", "device", "point", "rule", "level", "quality"})
MAX_ADDRESS = 65535
#: Shortest poll interval and timeout a device may have (s). Field sensors change far more
#: slowly; below this a site file only turns the gateway into a request generator.
MIN_POLL_INTERVAL_S = 0.05
MIN_TIMEOUT_S = 0.05
#: Shortest time between two database writes (s).
MIN_FLUSH_INTERVAL_S = 0.01


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PointSpec(_Frozen):
    """One point as written in a profile or a device's ``points`` list (all fields optional so a
    device can override a profile point partly; :class:`fieldmodel.model.Point` is the checked,
    merged form)."""

    name: Annotated[str, Field(pattern=NAME_RE, max_length=64)]
    register_kind: RegisterKind | None = Field(default=None, alias="register")
    address: Annotated[int, Field(ge=0, le=MAX_ADDRESS)] | None = None
    type: DataType | None = None
    order: WordOrder | None = None
    scale: float | None = None
    offset: float | None = None
    bit: Annotated[int, Field(ge=0, le=15)] | None = None
    unit: str | None = None
    description: str | None = None
    writable: bool | None = None


class ProfileFile(_Frozen):
    kind: Annotated[str, Field(pattern=NAME_RE)]
    measurement: Annotated[str, Field(pattern=NAME_RE)] | None = None
    description: str = ""
    points: list[PointSpec] = Field(min_length=1)


class TcpConnectionFile(_Frozen):
    transport: Literal["tcp"]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 502


class RtuOverTcpConnectionFile(_Frozen):
    transport: Literal["rtu-over-tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    baudrate: Annotated[int, Field(gt=0)] = 9600
    frame_gap: Annotated[float, Field(ge=0)] | None = None


class RtuConnectionFile(_Frozen):
    transport: Literal["rtu"]
    port: str
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    frame_gap: Annotated[float, Field(ge=0)] | None = None


ConnectionFile = Annotated[
    TcpConnectionFile | RtuOverTcpConnectionFile | RtuConnectionFile,
    Field(discriminator="transport"),
]


def connection_from_file(
    conn: TcpConnectionFile | RtuOverTcpConnectionFile | RtuConnectionFile,
) -> Connection:
    """The field model's connection for a checked ``connection:`` mapping."""
    if isinstance(conn, TcpConnectionFile):
        return TcpConnection(host=conn.host, port=conn.port)
    if isinstance(conn, RtuOverTcpConnectionFile):
        return RtuOverTcpConnection(
            host=conn.host, port=conn.port, baudrate=conn.baudrate, frame_gap=conn.frame_gap
        )
    return RtuConnection(
        port=conn.port,
        baudrate=conn.baudrate,
        parity=conn.parity,
        stopbits=conn.stopbits,
        bytesize=conn.bytesize,
        frame_gap=conn.frame_gap,
    )


class DeviceFile(_Frozen):
    id: Annotated[str, Field(pattern=DEVICE_ID_RE, max_length=64)]
    profile: str
    connection: ConnectionFile
    unit: Annotated[int, Field(ge=0, le=255)] = 1
    poll_interval: Annotated[float, Field(ge=MIN_POLL_INTERVAL_S, le=3600)] = 1.0
    timeout: Annotated[float, Field(ge=MIN_TIMEOUT_S, le=60)] = 1.0
    tags: dict[Annotated[str, Field(pattern=NAME_RE)], str] = Field(default_factory=dict)
    points: list[PointSpec] = Field(default_factory=list)
    limits: dict[str, dict[str, float]] = Field(default_factory=dict)
    #: Why this device's limits are looser than its rule pack's table (required for that).
    limits_reason: Annotated[str, Field(min_length=3, max_length=500)] | None = None
    max_gap: Annotated[int, Field(ge=0, le=100)] = 8
    refusal_recheck: Annotated[float, Field(gt=0, le=86_400)] = DEFAULT_REFUSAL_RECHECK
    #: Last calibration (标校): a date (local midnight of the site's timezone) or a date-time.
    calibrated_at: str | None = None

    @field_validator("calibrated_at", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, dt.date):  # YAML reads 2026-11-20 as a date (and a datetime)
            return value.isoformat()
        if isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    "not a date (2026-11-20) or date-time (2026-11-20T09:30, "
                    "2026-11-20T09:30+08:00)"
                ) from None
        return value

    @field_validator("id")
    @classmethod
    def _not_a_topic_name(cls, device_id: str) -> str:
        if device_id in RESERVED_DEVICE_IDS:
            raise ValueError(
                f"device id {device_id!r} is reserved: P/{device_id}/ is a topic of the gateway's "
                f"own (reserved: {', '.join(sorted(RESERVED_DEVICE_IDS))})"
            )
        return device_id

    @field_validator("tags")
    @classmethod
    def _reserved_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        clash = RESERVED_TAGS & tags.keys()
        if clash:
            raise ValueError(f"tag names {sorted(clash)} are reserved by the gateway")
        area = tags.get("area")
        if area is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", area):
            raise ValueError(
                f"tags.area {area!r} names the MQTT topic P/interlock/{{area}}: use 1-64 of "
                "A-Z a-z 0-9 _ . -"
            )
        return tags


DEFAULT_TIMEZONE = "Asia/Shanghai"


class SiteInfo(_Frozen):
    id: Annotated[str, Field(pattern=DEVICE_ID_RE, max_length=64)]
    name: str = ""
    #: IANA time zone of the site: the daily report's day runs from local midnight to midnight.
    timezone: str = DEFAULT_TIMEZONE

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "not an IANA time zone name (such as 'Asia/Shanghai' or 'Europe/Berlin')"
            ) from None
        return name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class TlsConfig(_Frozen):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


MqttUrl = Annotated[str, Field(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$")]


class MqttConfig(_Frozen):
    url: MqttUrl = "mqtt://127.0.0.1:1883"
    #: Broker nodes of a cluster, tried in order: on a lost or refused connection the gateway
    #: moves to the next node, backing off once it has been round all of them.
    urls: Annotated[list[MqttUrl], Field(min_length=1, max_length=32)] | None = None
    #: topic levels joined by '/': no leading, trailing or doubled '/' (no empty level)
    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")] = "hazard"
    telemetry_qos: Literal[0, 1] = 0
    username_env: str | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    client_id: str | None = None
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30

    @model_validator(mode="after")
    def _one_broker_key(self) -> MqttConfig:
        if self.urls is not None and "url" in self.model_fields_set:
            raise ValueError("give `url` (one broker) or `urls` (cluster nodes in order), not both")
        return self

    @property
    def brokers(self) -> tuple[str, ...]:
        """The broker URLs to connect to, in failover order (``urls``, else ``url``)."""
        return tuple(self.urls) if self.urls is not None else (self.url,)


class InfluxConfig(_Frozen):
    url: Annotated[str, Field(pattern=r"^https?://")]
    org: str
    bucket: str
    token_env: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    flush_interval: Annotated[float, Field(ge=MIN_FLUSH_INTERVAL_S, le=60)] = 1.0


class MetricsConfig(_Frozen):
    """``metrics: {listen: host:port}``: serve Prometheus metrics there (absent: no endpoint)."""

    listen: Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}$")]

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, v: str) -> str:
        if not 0 < int(v.rsplit(":", 1)[1]) < 65536:
            raise ValueError("port must be 1-65535")
        return v

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class OutboxConfig(_Frozen):
    """The durable outbox. On unless ``enabled: false``; without ``path``, see
    :func:`default_outbox_path`. In a :class:`SiteConfig` the path is always resolved."""

    enabled: bool = True
    path: Annotated[str, Field(min_length=1)] | None = None
    max_mb: Annotated[float, Field(gt=0)] = 256.0


STATE_DIR_ENV = "STATE_DIRECTORY"
"""Set by systemd (``StateDirectory=``): where a service keeps its state."""
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Where the gateway keeps state when the site file does not say: ``$STATE_DIRECTORY`` (its
    first entry; systemd may list several, colon-separated), else ``$XDG_STATE_HOME/hazardgw``,
    else ``~/.local/state/hazardgw``."""
    env = os.environ if environ is None else environ
    systemd = env.get(STATE_DIR_ENV, "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / "hazardgw"


def default_outbox_path(site_id: str, environ: Mapping[str, str] | None = None) -> Path:
    """The outbox of a site whose file gives no ``outbox.path``: one file per site id."""
    return state_directory(environ) / f"outbox-{site_id}.sqlite3"


class ExposureConfig(_Frozen):
    """Occupational exposure rules (``exposure`` rule packs): the shift calendar and where the
    exposure state is kept across restarts."""

    #: Shift start times, local ``HH:MM`` in ``site.timezone``, every day.
    shifts: Annotated[list[str], Field(min_length=1, max_length=24)] = Field(
        default_factory=lambda: list(DEFAULT_SHIFT_STARTS)
    )
    #: The state file (doses, shift, excursions). Without it ``exposure-{site id}.npz`` in the
    #: state directory (:func:`state_directory`); a relative path is taken relative to the site
    #: file. In a :class:`SiteConfig` it is always resolved.
    state_file: Annotated[str | None, Field(min_length=1)] = None
    #: Seconds between saves of the state (and one at shutdown).
    save_interval: Annotated[float, Field(ge=5, le=3600)] = 60.0

    @field_validator("shifts")
    @classmethod
    def _shift_times(cls, starts: list[str]) -> list[str]:
        ShiftSchedule(tuple(starts), "UTC")  # raises ValueError naming the bad time
        return starts

    def schedule(self, timezone: str) -> ShiftSchedule:
        return ShiftSchedule(tuple(self.shifts), timezone)


class RescueConfig(_Frozen):
    """Targets of elevator rescue records (``P/rescue/{device}``), in minutes from the trapped
    alarm; ``release_within_min`` absent: release time not judged."""

    arrive_within_min: Annotated[float, Field(gt=0, le=1440)] = 30.0
    release_within_min: Annotated[float, Field(gt=0, le=1440)] | None = None


class SiteFile(_Frozen):
    site: SiteInfo
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    influx: InfluxConfig | None = None
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    shutdown_timeout: Annotated[float, Field(gt=0, le=600)] = DEFAULT_SHUTDOWN_TIMEOUT
    metrics: MetricsConfig | None = None
    exposure: ExposureConfig = Field(default_factory=ExposureConfig)
    rescue: RescueConfig = Field(default_factory=RescueConfig)
    rules: list[str] = Field(default_factory=list)
    devices: list[DeviceFile] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """The whole, checked site: what the gateway, simulators and checks run from."""

    site: SiteInfo
    mqtt: MqttConfig
    influx: InfluxConfig | None
    outbox: OutboxConfig | None
    """None: turned off (``outbox: {enabled: false}``); else ``path`` is set."""
    rules: tuple[Path, ...]
    devices: tuple[Device, ...]
    source: Path | None = None
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    metrics: MetricsConfig | None = None
    exposure: ExposureConfig = field(default_factory=ExposureConfig)
    rescue: RescueConfig = field(default_factory=RescueConfig)

    def device(self, device_id: str) -> Device:
        for dev in self.devices:
            if dev.id == device_id:
                return dev
        raise KeyError(device_id)


# --------------------------------------------------------------------------- error formatting


def _loc_to_path(loc: Iterable[int | str], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"tcp", "rtu", "rtu-over-tcp"} or part.startswith("function-"):
            continue  # pydantic's discriminator / validator tags are not keys in the file
        else:
            path += f".{part}" if path and not path.endswith(":") else part
    return path


def _issues_from_validation(exc: ValidationError, prefix: str = "") -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        path = _loc_to_path(err["loc"], prefix)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against docs/config.md)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "union_tag_invalid":
            msg = "transport must be one of 'tcp', 'rtu', 'rtu-over-tcp'"
        elif err["type"] == "union_tag_not_found":
            msg = "connection needs a 'transport': one of 'tcp', 'rtu', 'rtu-over-tcp'"
        elif err["type"] == "string_pattern_mismatch":
            pattern = err.get("ctx", {}).get("pattern", "")
            msg = f"does not match {pattern}"
        value = None if err["type"] == "missing" else err.get("input")
        issues.append(ConfigIssue(path or "(top level)", msg, value))
    return issues


# --------------------------------------------------------------------------- point checks


def _merge_point(base: Point | None, spec: PointSpec, path: str) -> Point | ConfigIssue:
    """A new point from ``spec``, or the profile's point ``base`` with the keys ``spec`` gives."""
    given = spec.model_dump(exclude_none=True, by_alias=True)
    if base is None:
        for key in ("register", "address"):
            if key not in given:
                return ConfigIssue(f"{path}.{key}", "required key is missing for a new point", None)
        register = given["register"]
        given.setdefault("type", "bool" if register in BIT_KINDS else "uint16")
        return Point(**given)  # type: ignore[arg-type]
    return dataclasses.replace(base, **given)


def check_point(point: Point, path: str) -> list[ConfigIssue]:
    """Cross-field checks for one point, driven by the tables above."""
    issues: list[ConfigIssue] = []
    if point.register in BIT_KINDS:
        if point.type != "bool":
            issues.append(
                ConfigIssue(
                    f"{path}.type",
                    f"a {point.register} point carries one bit: type must be 'bool'",
                    point.type,
                )
            )
        if point.bit is not None:
            issues.append(
                ConfigIssue(
                    f"{path}.bit",
                    f"'bit' selects a bit of a 16-bit register; a {point.register} is one bit",
                    point.bit,
                )
            )
    elif point.type == "bool" and point.bit is None:
        issues.append(
            ConfigIssue(
                f"{path}.bit",
                "a bool on a holding/input register needs 'bit' (0-15): which bit of the word",
                None,
            )
        )
    elif point.bit is not None and point.type != "bool":
        issues.append(
            ConfigIssue(f"{path}.type", "a point with 'bit' must have type 'bool'", point.type)
        )
    if point.address + point.width - 1 > MAX_ADDRESS:
        issues.append(
            ConfigIssue(
                f"{path}.address",
                f"a {point.type} spans {point.width} registers and runs past address {MAX_ADDRESS}",
                point.address,
            )
        )
    if point.scale == 0:
        issues.append(ConfigIssue(f"{path}.scale", "scale 0 would make every value 0", 0.0))
    return issues


def _resolve_points(
    base: Sequence[Point], specs: Sequence[PointSpec], path: str, base_path: str
) -> tuple[tuple[Point, ...], list[ConfigIssue]]:
    issues: list[ConfigIssue] = []
    points: dict[str, Point] = {p.name: p for p in base}
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        ppath = f"{path}[{i}]"
        if spec.name in seen:
            issues.append(ConfigIssue(f"{ppath}.name", "duplicate point name", spec.name))
            continue
        seen.add(spec.name)
        result = _merge_point(points.get(spec.name), spec, ppath)
        if isinstance(result, ConfigIssue):
            issues.append(result)
            continue
        issues.extend(check_point(result, ppath))
        points[spec.name] = result
    for i, point in enumerate(base):
        if point.name not in seen:
            issues.extend(check_point(point, f"{base_path}[{i}]"))
    return tuple(points.values()), issues


# --------------------------------------------------------------------------- profiles


#: Largest site file read (bytes); a 5 MB device list loads in seconds.
MAX_SITE_BYTES = 8 * 2**20
#: Largest device profile read (bytes); the built-in ones are under 10 kB.
MAX_PROFILE_BYTES = 2**20


def _read_yaml(path: Path, what: str, max_bytes: int) -> Any:
    """Parse a regular file of at most ``max_bytes`` (see :mod:`rules.yamlfile`)."""
    try:
        return load_yaml(read_text_file(path, what, max_bytes), path)
    except YamlFileError as exc:
        where = str(path)
        if exc.where.startswith("line "):  # "line 6 column 1" -> path:6:1
            line, _, column = exc.where.removeprefix("line ").partition(" column ")
            where = f"{path}:{line}:{column}"
        message = exc.problem if exc.allowed in ("valid YAML", "a readable file") else str(exc)
        raise ConfigError([ConfigIssue(where, message, None)]) from None


def load_profile(name_or_path: str, base_dir: Path | None = None) -> Profile:
    """Load a built-in profile by name, or a profile YAML by path (relative to ``base_dir``)."""
    if name_or_path in BUILTIN_PROFILES:
        path = BUILTIN_PROFILES[name_or_path]
        name = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        name = path.stem
    raw = _read_yaml(path, "profile", MAX_PROFILE_BYTES)
    if not isinstance(raw, dict) or not raw.keys() & ProfileFile.model_fields.keys():
        # not a profile at all (say /etc/shadow): name the file, never echo what it holds
        shape = type(raw).__name__ if not isinstance(raw, dict) else "mapping without kind:"
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    f"not a device profile (a mapping with kind: and points:; got a {shape})",
                    None,
                )
            ]
        )
    try:
        pf = ProfileFile.model_validate(raw)
    except ValidationError as exc:
        issues = _issues_from_validation(exc, f"{path}:")
        # an unknown key is named; its value, from a file of another kind, is not echoed
        raise ConfigError(
            [
                ConfigIssue(i.path, i.message, None) if "unknown key" in i.message else i
                for i in issues
            ]
        ) from None
    points, issues = _resolve_points((), pf.points, f"{path}:points", f"{path}:points")
    if issues:
        raise ConfigError(issues)
    return Profile(
        name=name,
        kind=pf.kind,
        measurement=pf.measurement or pf.kind,
        description=pf.description,
        points=points,
        source=path,
    )


# --------------------------------------------------------------------------- site


class _HostAddresses:
    """The addresses a host name stands for, resolved once per name (the name itself, lower
    case, when it does not resolve here: the gateway may run where the check does not)."""

    def __init__(self) -> None:
        self._known: dict[str, frozenset[str]] = {}

    def __call__(self, host: str) -> frozenset[str]:
        found = self._known.get(host)
        if found is None:
            found = self._known[host] = _resolve(host)
        return found


def _resolve(host: str) -> frozenset[str]:
    try:
        return frozenset({str(ipaddress.ip_address(host))})
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return frozenset({host.lower()})
    return frozenset(str(info[4][0]) for info in infos) or frozenset({host.lower()})


def parse_site(raw: Any, base_dir: Path | None = None, source: Path | None = None) -> SiteConfig:
    """Check a parsed YAML document and resolve it into a :class:`SiteConfig`.

    Every problem of the devices, the rule pack paths and the MQTT credentials and files is
    collected first, in the order of the file, and raised together as one :class:`ConfigError`.
    """
    sf = _site_file(raw)
    devices, issues = _resolve_devices(sf.devices, sf.site.zone, base_dir)
    rules, rule_issues = _find_rule_packs(sf.rules, base_dir)
    issues += rule_issues
    issues += _check_mqtt_env_names(sf.mqtt)
    issues += _check_tls_files(sf.mqtt.tls, base_dir)
    if issues:
        raise ConfigError(issues)
    return SiteConfig(
        site=sf.site,
        mqtt=sf.mqtt,
        influx=sf.influx,
        outbox=_resolve_outbox(sf.outbox, sf.site.id, base_dir),
        rules=rules,
        devices=devices,
        source=source,
        shutdown_timeout=sf.shutdown_timeout,
        metrics=sf.metrics,
        exposure=_resolve_exposure(sf.exposure, sf.site.id, base_dir),
        rescue=sf.rescue,
    )


def _site_file(raw: Any) -> SiteFile:
    """The document's structure checked by the file models (every problem at once)."""
    if not isinstance(raw, dict):
        raise ConfigError(
            [ConfigIssue("(top level)", "a site file is a mapping with site:, devices:, ...", raw)]
        )
    try:
        return SiteFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_issues_from_validation(exc)) from None


def _resolve_devices(
    device_files: Sequence[DeviceFile], zone: dt.tzinfo, base_dir: Path | None
) -> tuple[tuple[Device, ...], list[ConfigIssue]]:
    """Each device with its profile loaded and its points merged and checked."""
    issues: list[ConfigIssue] = []
    devices: list[Device] = []
    seen = _SeenDevices()
    profiles = _ProfileLoader(base_dir)
    for i, dev in enumerate(device_files):
        path = f"devices[{i}]"
        issues += seen.clashes(dev, i)
        profile = profiles.load(dev.profile, f"{path}.profile")
        if not isinstance(profile, Profile):
            issues += profile
            continue
        points, point_issues = _resolve_points(
            profile.points, dev.points, f"{path}.points", f"{path}.profile({profile.name})"
        )
        issues += point_issues
        devices.append(_device(dev, profile, points, zone))
    return tuple(devices), issues


def _device(
    dev: DeviceFile, profile: Profile, points: tuple[Point, ...], zone: dt.tzinfo
) -> Device:
    """The field model's device: its file entry with the profile and points resolved."""
    return Device(
        id=dev.id,
        profile=profile,
        connection=connection_from_file(dev.connection),
        unit=dev.unit,
        poll_interval=dev.poll_interval,
        timeout=dev.timeout,
        tags=dict(dev.tags),
        points=points,
        limits={k: dict(v) for k, v in dev.limits.items()},
        max_gap=dev.max_gap,
        refusal_recheck=dev.refusal_recheck,
        limits_reason=dev.limits_reason,
        calibrated_at=_epoch(dev.calibrated_at, zone),
    )


_Endpoint = tuple[str, str, int, int]  # transport, host address or serial port, TCP port, unit


class _SeenDevices:
    """The devices met so far: a later device may not reuse an id, nor a connection and unit."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._endpoints: dict[_Endpoint, int] = {}
        self._addresses = _HostAddresses()

    def clashes(self, dev: DeviceFile, index: int) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        path = f"devices[{index}]"
        first = self._ids.setdefault(dev.id, index)
        if first != index:
            issues.append(
                ConfigIssue(f"{path}.id", f"duplicate device id (also devices[{first}])", dev.id)
            )
        endpoints = self._endpoints_of(dev)
        clash = next((self._endpoints[e] for e in endpoints if e in self._endpoints), None)
        if clash is not None:
            issues.append(
                ConfigIssue(
                    f"{path}.unit",
                    f"devices[{clash}] already uses this connection and unit",
                    dev.unit,
                )
            )
        for e in endpoints:
            self._endpoints.setdefault(e, index)
        return issues

    def _endpoints_of(self, dev: DeviceFile) -> list[_Endpoint]:
        # one device under two spellings of its host (localhost / 127.0.0.1) is still one device
        conn = dev.connection
        if isinstance(conn, RtuConnectionFile):
            return [(conn.transport, conn.port, 0, dev.unit)]
        return [(conn.transport, a, conn.port, dev.unit) for a in self._addresses(conn.host)]


class _ProfileLoader:
    """The profiles the devices name, each loaded once (a profile that fails to load is tried,
    and reported, again for every device that names it)."""

    def __init__(self, base_dir: Path | None) -> None:
        self._base_dir = base_dir
        self._loaded: dict[str, Profile] = {}

    def load(self, name: str, path: str) -> Profile | list[ConfigIssue]:
        """The profile, or its problems under ``path`` (the device's ``profile`` key)."""
        found = self._loaded.get(name)
        if found is not None:
            return found
        try:
            found = self._loaded[name] = load_profile(name, self._base_dir)
        except ConfigError as exc:
            hint = ""
            if name not in BUILTIN_PROFILES and not name.endswith((".yaml", ".yml")):
                hint = f"; built-in profiles: {', '.join(sorted(BUILTIN_PROFILES))}"
            return [
                ConfigIssue(
                    path,
                    f"{issue.path}: {issue.message}{hint}" if issue.path != path else issue.message,
                    name,
                )
                for issue in exc.issues
            ]
        return found


#: Where a relative rule pack path is looked for after the site file's directory: the project
#: root, so ``rules/packs/...`` works from any site file.
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _find_rule_packs(
    paths: Sequence[str], base_dir: Path | None
) -> tuple[tuple[Path, ...], list[ConfigIssue]]:
    """Each rule pack file, relative to the site file's directory, else the project root."""
    found: list[Path] = []
    issues: list[ConfigIssue] = []
    for i, rule_path in enumerate(paths):
        path = Path(rule_path)
        candidates = [path] if path.is_absolute() else [(base_dir or Path.cwd()) / path]
        if not path.is_absolute():
            candidates.append(_PROJECT_ROOT / path)
        pack = next((c for c in candidates if c.exists()), None)
        if pack is None:
            issues.append(ConfigIssue(f"rules[{i}]", "rule pack file not found", rule_path))
        elif not pack.is_file():  # /dev/zero, a FIFO, a directory: never opened
            issues.append(
                ConfigIssue(f"rules[{i}]", "not a regular file: a rule pack is a file", rule_path)
            )
        else:
            found.append(pack)
    return tuple(found), issues


def _check_mqtt_env_names(mqtt: MqttConfig) -> list[ConfigIssue]:
    """The environment variables named for the MQTT user name and password are valid names."""
    return [
        ConfigIssue(key, "not a valid environment variable name", name)
        for key, name in (
            ("mqtt.username_env", mqtt.username_env),
            ("mqtt.password_env", mqtt.password_env),
        )
        if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
    ]


def _check_tls_files(tls: TlsConfig | None, base_dir: Path | None) -> list[ConfigIssue]:
    """The TLS files exist (a relative path is relative to the site file)."""
    if tls is None:
        return []
    issues: list[ConfigIssue] = []
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(tls, key)
        if value is not None:
            p = Path(value)
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            if not p.is_file():
                issues.append(ConfigIssue(f"mqtt.tls.{key}", "file not found", value))
    return issues


def _resolve_outbox(cfg: OutboxConfig, site_id: str, base_dir: Path | None) -> OutboxConfig | None:
    """None when turned off; else the config with an absolute ``path`` (a relative one is taken
    relative to the site file, like every other file it names)."""
    if not cfg.enabled:
        return None
    if cfg.path is None:
        path = default_outbox_path(site_id)
    else:
        path = Path(cfg.path).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
    return cfg.model_copy(update={"path": str(path)})


def _resolve_exposure(cfg: ExposureConfig, site_id: str, base_dir: Path | None) -> ExposureConfig:
    """The exposure config with an absolute ``state_file``: the state directory's
    ``exposure-{site id}.npz`` by default (beside the outbox, so a service started from ``/``
    keeps its doses where it keeps its outbox); a relative path is relative to the site file."""
    if cfg.state_file is None:
        path = state_directory() / f"exposure-{site_id}.npz"
    else:
        path = Path(cfg.state_file).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
    return cfg.model_copy(update={"state_file": str(path)})


def _epoch(iso: str | None, zone: dt.tzinfo) -> float | None:
    """Epoch seconds of an ISO date (its local midnight) or date-time (local when naive)."""
    if iso is None:
        return None
    when = dt.datetime.fromisoformat(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.timestamp()


def load_site(path: str | os.PathLike[str]) -> SiteConfig:
    """Read, check and resolve a site file. Raises :class:`ConfigError` listing every problem."""
    p = Path(path)
    raw = _read_yaml(p, "site config", MAX_SITE_BYTES)
    return parse_site(raw, base_dir=p.resolve().parent, source=p)

"""``ingest.yaml``: where the stream is, where the database is, which site files to read.

::

    nats:
      urls: [nats://nats-1:4222, nats://nats-2:4222, nats://nats-3:4222]
      stream: $MQTT_msgs        # the MQTT layer's QoS 1 store (default), or a stream name:
                                # created when missing, over the subjects {topic_prefix}.>
      consumer: ingest          # the durable pull consumer every worker shares
      replicas: 3               # default: the cluster's node count, at most 3
      ack_wait: 30              # seconds before a message a worker took is given to another
      max_ack_pending: 50000
    topic_prefix: hazard        # the sites' mqtt.topic_prefix
    influx: {url: http://influxdb:8086, org: safety, bucket: hazard, token_env: INFLUX_TOKEN,
             batch_size: 5000}
    sites: [sites/*.yaml]       # site files (globs, relative to this file): measurement,
                                # device tags and field types of every site's devices

``hazardgw ingest --nats URL,URL --stream NAME`` overrides ``nats.urls`` and ``nats.stream``.
Errors name the key path, the value and what is allowed, like the site file's.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.config import (
    MAX_SITE_BYTES,
    InfluxConfig,
    SiteConfig,
    _issues_from_validation,
    _read_yaml,
    load_site,
)
from gateway.errors import ConfigError, ConfigIssue

__all__ = ["IngestConfig", "IngestFile", "NatsConfig", "load_ingest", "parse_ingest"]

NatsUrl = Annotated[str, Field(pattern=r"^(nats|tls)://[^/]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NatsConfig(_Frozen):
    urls: Annotated[list[NatsUrl], Field(min_length=1)] = ["nats://127.0.0.1:4222"]
    #: ``$MQTT_msgs``: the cluster's own store of QoS 1 MQTT publishes (lossless; see
    #: gateway.ingest.worker); any other name: a stream over ``{topic_prefix}.>``, created when
    #: missing (takes QoS 0 too, but can miss messages while a node dies).
    stream: Annotated[str, Field(pattern=r"^\$?[A-Za-z0-9_-]+$")] = "$MQTT_msgs"
    consumer: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "ingest"
    replicas: Annotated[int, Field(ge=1, le=5)] | None = None
    ack_wait: Annotated[float, Field(gt=0, le=3600)] = 30.0
    max_ack_pending: Annotated[int, Field(ge=1)] = 50_000
    max_bytes_mb: Annotated[float, Field(gt=0)] | None = None


class IngestFile(_Frozen):
    nats: NatsConfig = Field(default_factory=NatsConfig)
    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")] = "hazard"
    influx: InfluxConfig
    sites: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """The checked ingest file with its site files loaded."""

    nats: NatsConfig
    topic_prefix: str
    influx: InfluxConfig
    sites: tuple[SiteConfig, ...]
    source: Path | None = None


def parse_ingest(
    raw: Any,
    base_dir: Path | None = None,
    source: Path | None = None,
    *,
    nats_urls: list[str] | None = None,
    stream: str | None = None,
) -> IngestConfig:
    """Check a parsed ``ingest.yaml`` (with the command line's overrides) and load its sites."""
    if not isinstance(raw, dict):
        raise ConfigError(
            [ConfigIssue("(top level)", "an ingest file is a mapping: influx:, nats:, ...", raw)]
        )
    doc = dict(raw)
    nats = doc.get("nats") or {}
    if isinstance(nats, dict):  # (anything else is reported by the model below)
        nats = dict(nats)
        if nats_urls is not None:
            nats["urls"] = nats_urls
        if stream is not None:
            nats["stream"] = stream
        doc["nats"] = nats
    try:
        f = IngestFile.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_issues_from_validation(exc)) from None
    base = base_dir or Path.cwd()
    sites: list[SiteConfig] = []
    issues: list[ConfigIssue] = []
    seen: dict[str, str] = {}
    for i, pattern in enumerate(f.sites):
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        paths = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
        if not paths:
            issues.append(ConfigIssue(f"sites[{i}]", "no site file matches", pattern))
        for path in paths:
            try:
                site = load_site(path)
            except ConfigError as exc:
                issues.extend(
                    ConfigIssue(f"sites[{i}] {path}: {e.path}", e.message, e.value)
                    for e in exc.issues
                )
                continue
            if site.site.id in seen:
                issues.append(
                    ConfigIssue(
                        f"sites[{i}]",
                        f"site id {site.site.id!r} also in {seen[site.site.id]}",
                        path,
                    )
                )
                continue
            seen[site.site.id] = path
            sites.append(site)
    if issues:
        raise ConfigError(issues)
    return IngestConfig(f.nats, f.topic_prefix, f.influx, tuple(sites), source)


def load_ingest(
    path: str | Path, *, nats_urls: list[str] | None = None, stream: str | None = None
) -> IngestConfig:
    """Read and check an ingest file. Raises :class:`ConfigError` listing every problem."""
    p = Path(path)
    raw = _read_yaml(p, "ingest config", MAX_SITE_BYTES)
    return parse_ingest(
        raw, base_dir=p.resolve().parent, source=p, nats_urls=nats_urls, stream=stream
    )

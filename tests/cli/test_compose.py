"""docker-compose.yml, its .env.example and the compose site file hold together.

No container engine runs in the test environment: `docker-compose config` validates the file
(and `docker compose config`, when that plugin is installed); the rest is checked by reading.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_site
from tests.harness.paths import ROOT

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_SITE = ROOT / "deploy" / "site.compose.yaml"
EXAMPLE_SITE = ROOT / "hazardgw" / "examples" / "site.yaml"


def compose_commands() -> list[list[str]]:
    commands = []
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            commands.append(["docker", "compose"])
    return commands


def env_without_stack_vars() -> dict[str, str]:
    names = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line}
    return {k: v for k, v in os.environ.items() if k not in names}


def run_config(
    cmd: list[str], env_file: Path | None, *extra: str, profile: str | None = None
) -> subprocess.CompletedProcess[str]:
    args = [*cmd, "-f", str(COMPOSE), "--project-directory", str(ROOT)]
    if profile is not None:
        args += ["--profile", profile]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    return subprocess.run(
        [*args, "config", *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env_without_stack_vars(),
        check=False,
        timeout=60,
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    target = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, target)
    return target


@pytest.mark.parametrize("cmd", compose_commands() or [None], ids=lambda c: " ".join(c or ["none"]))
def test_compose_config_is_valid(cmd: list[str] | None, env_file: Path) -> None:
    if cmd is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    result = run_config(cmd, env_file, "-q")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(run_config(cmd, env_file).stdout)
    base = {n for n, svc in resolved["services"].items() if not svc.get("profiles")}
    assert base == {
        "mosquitto",
        "influxdb",
        "grafana",
        "simulators",
        "gateway",
        "console",
    }
    token = resolved["services"]["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert resolved["services"]["gateway"]["environment"]["INFLUX_TOKEN"] == token
    assert resolved["services"]["grafana"]["environment"]["INFLUX_TOKEN"] == token
    console = resolved["services"]["console"]["environment"]
    env = env_example()
    assert console["CONSOLE_OPERATOR_PASSWORD"] == env["CONSOLE_OPERATOR_PASSWORD"]
    assert console["HAZARDGW_CONSOLE_SECRET"] == env["CONSOLE_SESSION_SECRET"]


@pytest.mark.parametrize("cmd", compose_commands() or [None], ids=lambda c: " ".join(c or ["none"]))
def test_compose_without_env_names_the_missing_secret(cmd: list[str] | None) -> None:
    if cmd is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    result = run_config(cmd, None, "-q")
    assert result.returncode != 0
    assert "in .env" in result.stderr


def compose_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def test_bind_mounts_exist_and_grafana_reads_the_provisioned_path() -> None:
    services = compose_doc()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    provider = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/hazard.yaml").read_text()
    )["providers"][0]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./dashboards"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards" / Path(home).name).is_file()


def test_grafana_gets_every_variable_the_datasource_uses() -> None:
    text = (ROOT / "dashboards/provisioning/datasources/influxdb.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    assert used == {"INFLUX_URL", "INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_TOKEN"}
    assert used <= set(compose_doc()["services"]["grafana"]["environment"])


def test_compose_site_matches_the_example_and_the_env() -> None:
    site = load_site(COMPOSE_SITE)
    example = load_site(EXAMPLE_SITE)
    assert site.site == example.site
    assert [d.id for d in site.devices] == [d.id for d in example.devices]
    for ours, theirs in zip(site.devices, example.devices, strict=True):
        assert ours.profile.name == theirs.profile.name
        assert ours.unit == theirs.unit
        assert ours.poll_interval == theirs.poll_interval
        assert dict(ours.tags) == dict(theirs.tags)
        assert ours.connection.port == theirs.connection.port
        assert getattr(ours.connection, "host", None) == "simulators"
    assert [p.name for p in site.rules] == [p.name for p in example.rules]
    assert site.mqtt.url == "mqtt://mosquitto:1883"
    assert site.influx is not None
    env = env_example()
    assert site.influx.url == "http://influxdb:8086"
    assert site.influx.org == env["INFLUX_ORG"]
    assert site.influx.bucket == env["INFLUX_BUCKET"]
    assert site.influx.token_env == "INFLUX_TOKEN"
    gateway = compose_doc()["services"]["gateway"]
    assert "INFLUX_TOKEN" in gateway["environment"]
    assert str(COMPOSE_SITE.relative_to(ROOT)) in gateway["command"]


def test_console_service_makes_its_first_operator_and_serves_the_broker() -> None:
    """The console's command, run by a shell in the image: the first operator from .env (kept
    afterwards), then the console on the compose broker; the image holds the package."""
    service = compose_doc()["services"]["console"]
    script = service["command"][-1]
    assert "hazardgw console adduser" in script and "--if-missing" in script
    assert "--password-stdin" in script and "printenv CONSOLE_OPERATOR_PASSWORD" in script
    assert "--mqtt mqtt://mosquitto:1883" in script and "--listen 0.0.0.0:8080" in script
    users = "/var/lib/hazardgw/console-users"
    assert script.count(f"--users {users}") == 2
    assert any(v.endswith(":/var/lib/hazardgw") for v in service["volumes"])
    assert "COPY console ./console" in (ROOT / "Dockerfile").read_text()
    assert service["ports"] == ["${CONSOLE_PORT:-8080}:8080"]


PLATFORM = {
    "nats-1",
    "nats-2",
    "nats-3",
    "platform-sim-1",
    "platform-sim-2",
    "platform-gateway-1",
    "platform-gateway-2",
    "ingest-1",
    "ingest-2",
    "platform-console",
}


@pytest.mark.parametrize("cmd", compose_commands() or [None], ids=lambda c: " ".join(c or ["none"]))
def test_platform_profile_is_valid(cmd: list[str] | None, env_file: Path) -> None:
    if cmd is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    result = run_config(cmd, env_file, profile="platform")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {n for n, svc in services.items() if svc.get("profiles") == ["platform"]} == PLATFORM
    token = services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert services["ingest-1"]["environment"]["INFLUX_TOKEN"] == token
    assert services["ingest-2"]["environment"]["INFLUX_TOKEN"] == token


def test_platform_pieces_hold_together() -> None:
    """Three NATS nodes with JetStream, MQTT and routes to each other; sites that report to all
    three at QoS 1 without a database token, each served by its own simulator; workers that read
    every platform site's file and write to the stack's InfluxDB; a console on the cluster."""
    from gateway.ingest.config import load_ingest

    services = compose_doc()["services"]
    conf = (ROOT / "deploy/nats/nats.conf").read_text()
    assert "server_name: $NATS_NAME" in conf and "jetstream" in conf and "mqtt {" in conf
    nodes = [f"nats-{i}" for i in (1, 2, 3)]
    for node in nodes:
        assert f"nats-route://{node}:6222" in conf
        assert services[node]["environment"]["NATS_NAME"] == node
        assert services[node]["image"].startswith("nats:2.9")
    cfg = load_ingest(ROOT / "deploy/platform/ingest.yaml")
    assert cfg.nats.urls == [f"nats://{n}:4222" for n in nodes]
    assert cfg.influx.url == "http://influxdb:8086" and cfg.influx.token_env == "INFLUX_TOKEN"
    env = env_example()
    assert (cfg.influx.org, cfg.influx.bucket) == (env["INFLUX_ORG"], env["INFLUX_BUCKET"])
    example = load_site(EXAMPLE_SITE)
    for i, site in enumerate(cfg.sites, 1):
        assert site.influx is None, "platform sites hold no database token"
        assert site.mqtt.telemetry_qos == 1
        assert sorted(site.mqtt.brokers) == [f"mqtt://{n}:1883" for n in nodes]
        assert [d.id for d in site.devices] == [d.id for d in example.devices]
        assert {getattr(d.connection, "host", None) for d in site.devices} == {f"platform-sim-{i}"}
        assert f"deploy/platform/site-{i}.yaml" in services[f"platform-sim-{i}"]["command"]
        assert f"deploy/platform/site-{i}.yaml" in services[f"platform-gateway-{i}"]["command"]
    assert len({s.site.id for s in cfg.sites}) == 2
    for worker in ("ingest-1", "ingest-2"):
        assert "deploy/platform/ingest.yaml" in services[worker]["command"]
    assert "--mqtt mqtt://nats-1:1883" in services["platform-console"]["command"][-1]
    assert 'pip install ".[platform]"' in (ROOT / "Dockerfile").read_text()

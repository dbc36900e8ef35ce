"""``ingest.yaml`` and ``hazardgw ingest``'s command line: errors name the key, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.ingest.config import load_ingest, parse_ingest
from hazardgw.demo import EXAMPLE_SITE
from tests.harness.paths import ROOT

INFLUX = {"url": "http://db:8086", "org": "city", "bucket": "hazard"}


def test_defaults_and_overrides() -> None:
    cfg = parse_ingest({"influx": INFLUX, "sites": [str(EXAMPLE_SITE)]})
    assert cfg.nats.stream == "$MQTT_msgs" and cfg.nats.consumer == "ingest"
    assert [s.site.id for s in cfg.sites] == ["demo-site-01"]
    over = parse_ingest(
        {"influx": INFLUX, "nats": {"stream": "X"}},
        nats_urls=["nats://a:4222", "nats://b:4222"],
        stream="HAZARD",
    )
    assert over.nats.urls == ["nats://a:4222", "nats://b:4222"] and over.nats.stream == "HAZARD"


def test_site_globs_relative_to_the_file(tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    text = (
        (ROOT / "hazardgw" / "examples" / "site.yaml")
        .read_text()
        .replace("rules/packs", str(ROOT / "rules/packs"))
    )
    for i in (1, 2):
        (sites / f"s{i}.yaml").write_text(text.replace("demo-site-01", f"site-{i}"))
    path = tmp_path / "ingest.yaml"
    path.write_text(f"influx: {INFLUX}\nsites: [sites/*.yaml]\n".replace("'", '"'))
    assert [s.site.id for s in load_ingest(path).sites] == ["site-1", "site-2"]


@pytest.mark.parametrize(
    ("doc", "where", "what"),
    [
        ({"influx": INFLUX, "nats": {"urls": ["http://x"]}}, "nats.urls[0]", "http://x"),
        ({"influx": INFLUX, "nats": {"ack_wait": 0}}, "nats.ack_wait", "0"),
        ({"influx": {"url": "db:8086", "org": "o", "bucket": "b"}}, "influx.url", "db:8086"),
        ({"nats": {}}, "influx", "required key is missing"),
        ({"influx": INFLUX, "sites": ["/nonexistent/*.yaml"]}, "sites[0]", "no site file"),
        ({"influx": INFLUX, "sites": ["/nonexistent/a.yaml"]}, "sites[0]", "not found"),
        ({"influx": INFLUX, "bogus": 1}, "bogus", "unknown key"),
    ],
)
def test_bad_ingest_files_name_the_key(doc: dict[str, object], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_ingest(doc)
    text = str(err.value)
    assert where in text and what in text, text


def test_cli_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "ingest.yaml"
    path.write_text("influx: {url: 'ftp://db', org: o, bucket: b}\nnats: {consumer: 'a b'}\n")
    run = subprocess.run(
        [sys.executable, "-m", "hazardgw", "ingest", "-c", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "influx.url" in run.stderr and "nats.consumer" in run.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "hazardgw", "ingest", "-c", str(tmp_path / "none.yaml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "not found" in missing.stderr

"""Durable by default: a site without ``outbox`` keeps one, where the docs say; ``check`` and the
start-up log say where; ``outbox: {enabled: false}`` is said loudly."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import ConfigError, load_site, parse_site, state_directory
from hazardgw.cli import main
from tests.harness.ports import free_port


def _site(**extra: Any) -> dict[str, Any]:
    return {
        "site": {"id": "mine-7"},
        "mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}"},
        "devices": [
            {
                "id": "face1-gas",
                "profile": "gas_detector",
                "connection": {"transport": "tcp", "port": free_port()},
            }
        ],
        **extra,
    }


def test_no_outbox_key_means_an_outbox_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    site = parse_site(_site())
    assert site.outbox is not None
    assert site.outbox.path == str(tmp_path / "a" / "outbox-mine-7.sqlite3")
    assert site.outbox.max_mb == 256.0
    assert site.shutdown_timeout == 10.0


def test_without_systemd_the_outbox_goes_under_xdg_state_home_or_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_directory() == tmp_path / "xdg" / "hazardgw"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    site = parse_site(_site())
    assert site.outbox is not None
    expected = tmp_path / "home" / ".local" / "state" / "hazardgw" / "outbox-mine-7.sqlite3"
    assert site.outbox.path == str(expected)


def test_a_relative_outbox_path_is_relative_to_the_site_file(tmp_path: Path) -> None:
    site = parse_site(_site(outbox={"path": "var/ob.sqlite3"}), base_dir=tmp_path)
    assert site.outbox is not None
    assert site.outbox.path == str(tmp_path / "var" / "ob.sqlite3")


def test_outbox_enabled_false_turns_it_off() -> None:
    assert parse_site(_site(outbox={"enabled": False})).outbox is None


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"shutdown_timeout": 0}, "shutdown_timeout"),
        ({"shutdown_timeout": "soon"}, "shutdown_timeout"),
        ({"outbox": {"enabled": "perhaps"}}, "outbox.enabled"),
        ({"outbox": {"path": ""}}, "outbox.path"),
    ],
)
def test_bad_values_name_their_key(extra: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_site(_site(**extra))
    assert [i.path for i in info.value.issues] == [path]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: mine-7}\n"
        + text
        + "devices:\n"
        + "  - {id: g1, profile: gas_detector, connection: {transport: tcp, port: 1502}}\n"
    )
    return path


def test_check_shows_where_the_outbox_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "-c", str(_write(tmp_path, ""))]) == 0
    out = capsys.readouterr().out
    assert f"outbox {tmp_path / 'state' / 'outbox-mine-7.sqlite3'} (bound 256 MB)" in out
    assert "shutdown_timeout 10 s" in out
    assert main(["check", "-c", str(_write(tmp_path, "outbox: {enabled: false}\n"))]) == 0
    assert "outbox OFF (outbox.enabled: false)" in capsys.readouterr().out


@pytest.mark.parametrize("enabled", [True, False])
def test_the_start_log_says_where_the_outbox_is_or_warns_it_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, enabled: bool
) -> None:
    site = load_site(
        _write(tmp_path, f"outbox: {{enabled: {str(enabled).lower()}}}\nshutdown_timeout: 0.3\n")
    )

    async def run() -> None:
        stop = asyncio.Event()
        stop.set()  # stop at once: the broker is not there, the drain gives up after 0.3 s
        await Gateway(site, backoff_max=0.2).run(stop)

    with caplog.at_level(logging.INFO, logger="gateway"):
        asyncio.run(run())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    off = [w for w in warnings if w.startswith("outbox off (outbox.enabled: false)")]
    if enabled:
        assert site.outbox is not None
        assert f"outbox {site.outbox.path} (bound 256 MB)" in infos
        assert not off
        assert Path(site.outbox.path or "").exists()
    else:
        assert len(off) == 1
        assert not any(i.startswith("outbox /") for i in infos)


def test_the_exposure_state_lives_in_the_state_directory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in whatever directory the service was started from: a systemd unit starts in `/`."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    assert parse_site(_site()).exposure.state_file == str(
        tmp_path / "state" / "exposure-mine-7.npz"
    )
    site_dir = tmp_path / "etc"
    site_dir.mkdir()
    named = parse_site(_site(exposure={"state_file": "doses.npz"}), base_dir=site_dir)
    assert named.exposure.state_file == str(site_dir / "doses.npz")

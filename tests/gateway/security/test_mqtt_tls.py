"""mqtts against a real Mosquitto TLS listener with certificates made by the test: the server is
verified against the configured CA, a client certificate is offered when configured, and the
username/password come from the environment variables the config names. A refused connection
keeps the gateway up and disconnected, logs why, and never logs the password."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway
from gateway.config import SiteConfig, parse_site
from simulators import SiteSimulator
from tests.gateway.security.pki import Pki, SecureMosquitto, make_pki, openssl_binary
from tests.harness.mosquitto import mosquitto_binary
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

PASSWORD = "pw-7Qx!rT9@zz"
USER = "hazardgw"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if openssl_binary() is None or mosquitto_binary() is None:
        pytest.skip("needs the openssl CLI and mosquitto")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def secure_broker(
    tmp_path: Path, pki: Pki, request: pytest.FixtureRequest
) -> Iterator[SecureMosquitto]:
    options: dict[str, Any] = getattr(request, "param", {})
    broker = SecureMosquitto(tmp_path, pki, **options).start()
    try:
        yield broker
    finally:
        broker.stop()


def site(url: str, tls: dict[str, str] | None, port: int, *, auth: bool = False) -> SiteConfig:
    mqtt: dict[str, Any] = {"url": url, "topic_prefix": "sec"}
    if tls is not None:
        mqtt["tls"] = tls
    if auth:
        mqtt |= {"username_env": "HZ_TEST_MQTT_USER", "password_env": "HZ_TEST_MQTT_PASSWORD"}
    return parse_site(
        {
            "site": {"id": "tls-site"},
            "mqtt": mqtt,
            "devices": [
                {
                    "id": "face1-gas",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                    "poll_interval": 0.5,
                    "timeout": 0.5,
                }
            ],
        }
    )


@asynccontextmanager
async def running(cfg: SiteConfig) -> AsyncIterator[Gateway]:
    async with SiteSimulator(cfg, "static"):
        gw = Gateway(cfg, backoff_max=0.5)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            yield gw
            assert not task.done(), "the gateway stopped by itself"
        finally:
            stop.set()
            async with asyncio.timeout(15):
                await task


async def first_telemetry(broker: SecureMosquitto, auth: bool = False) -> dict[str, Any]:
    """Read, over the plain listener, what the gateway published over TLS."""
    user, password = (USER, PASSWORD) if auth else (None, None)
    async with aiomqtt.Client("127.0.0.1", broker.port, username=user, password=password) as client:
        await client.subscribe("sec/tls-site/face1-gas/telemetry", qos=1)
        async with asyncio.timeout(15):
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                doc = json.loads(msg.payload)
                assert isinstance(doc, dict)
                return doc
    raise AssertionError("unreachable")


def mqtt_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.mqtt" and r.levelno >= logging.ERROR
    ]


async def refused(gw: Gateway, caplog: pytest.LogCaptureFixture, seconds: float = 20.0) -> str:
    """The gateway stays up and disconnected until it logs why the broker refused it.

    (With TLS 1.3 a server that requires a client certificate says so only after the
    handshake; the client then notices at its 10 s connect timeout.)"""
    for _ in range(int(seconds / 0.1)):
        assert not gw.publisher.stats.connected
        if errors := mqtt_errors(caplog):
            await asyncio.sleep(1.0)  # and keeps running, retrying with backoff
            assert not gw.publisher.stats.connected
            return errors[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no error logged by gateway.mqtt within {seconds} s")


async def test_publishes_over_mqtts_verified_against_the_ca(
    secure_broker: SecureMosquitto, pki: Pki
) -> None:
    cfg = site(secure_broker.tls_url, {"ca_file": str(pki.ca)}, free_port())
    async with running(cfg) as gw:
        await gw.publisher.wait_connected(15)
        doc = await first_telemetry(secure_broker)
    assert doc["quality"]["ch4"] == "good"
    assert f"on port {secure_broker.tls_port}" in secure_broker.log_text()


async def test_hostname_in_the_url_is_checked_against_the_certificate(
    secure_broker: SecureMosquitto, pki: Pki
) -> None:
    cfg = site(f"mqtts://localhost:{secure_broker.tls_port}", {"ca_file": str(pki.ca)}, free_port())
    async with running(cfg) as gw:
        await gw.publisher.wait_connected(15)


@pytest.mark.parametrize("secure_broker", [{"other_name": True}], indirect=True)
async def test_a_certificate_for_another_host_name_is_refused(
    secure_broker: SecureMosquitto, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker's certificate is valid (our CA) but names other.example: the host-name check
    alone refuses it. With the check off this test fails (see the next one)."""
    caplog.set_level(logging.INFO)
    for host in ("localhost", "127.0.0.1"):
        caplog.clear()
        cfg = site(
            f"mqtts://{host}:{secure_broker.tls_port}", {"ca_file": str(pki.ca)}, free_port()
        )
        async with running(cfg) as gw:
            error = await refused(gw, caplog)
        assert "certificate verify failed" in error.lower(), error
        assert "mismatch" in error.lower(), error  # "Hostname mismatch" / "IP address mismatch"


@pytest.mark.parametrize("secure_broker", [{"other_name": True}], indirect=True)
async def test_insecure_turns_the_host_name_check_off(
    secure_broker: SecureMosquitto, pki: Pki
) -> None:
    """The same broker with ``tls.insecure: true``: the refusal above is the host-name check."""
    cfg = site(
        f"mqtts://localhost:{secure_broker.tls_port}",
        {"ca_file": str(pki.ca), "insecure": True},  # type: ignore[dict-item]
        free_port(),
    )
    async with running(cfg) as gw:
        await gw.publisher.wait_connected(15)
        await first_telemetry(secure_broker)


async def test_wrong_ca_is_refused_logged_and_survived(
    secure_broker: SecureMosquitto, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = site(secure_broker.tls_url, {"ca_file": str(pki.wrong_ca)}, free_port())
    async with running(cfg) as gw:
        error = await refused(gw, caplog)
    assert "certificate verify failed" in error.lower(), error


async def test_no_ca_file_means_the_system_store_which_refuses_a_private_ca(
    secure_broker: SecureMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(site(secure_broker.tls_url, None, free_port())) as gw:
        error = await refused(gw, caplog)
    assert "certificate verify failed" in error.lower(), error


@pytest.mark.parametrize("secure_broker", [{"require_certificate": True}], indirect=True)
async def test_client_certificate_required_works_with_one(
    secure_broker: SecureMosquitto, pki: Pki
) -> None:
    tls = {
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
    }
    async with running(site(secure_broker.tls_url, tls, free_port())) as gw:
        await gw.publisher.wait_connected(15)
        await first_telemetry(secure_broker)


@pytest.mark.parametrize("secure_broker", [{"require_certificate": True}], indirect=True)
async def test_client_certificate_required_refused_without_one(
    secure_broker: SecureMosquitto, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(site(secure_broker.tls_url, {"ca_file": str(pki.ca)}, free_port())) as gw:
        error = await refused(gw, caplog)
    # TLS 1.3: the server's refusal comes after the handshake; the client sees its connect time
    # out (TLS 1.2 would name the alert). The broker says why.
    assert "certificate required" in error.lower() or "timed out" in error.lower(), error
    assert "peer did not return a certificate" in secure_broker.log_text()


@pytest.mark.parametrize("secure_broker", [{"passwords": {USER: PASSWORD}}], indirect=True)
async def test_password_from_the_environment(
    secure_broker: SecureMosquitto, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HZ_TEST_MQTT_USER", USER)
    monkeypatch.setenv("HZ_TEST_MQTT_PASSWORD", PASSWORD)
    cfg = site(secure_broker.tls_url, {"ca_file": str(pki.ca)}, free_port(), auth=True)
    async with running(cfg) as gw:
        await gw.publisher.wait_connected(15)
        await first_telemetry(secure_broker, auth=True)


@pytest.mark.parametrize("secure_broker", [{"passwords": {USER: PASSWORD}}], indirect=True)
async def test_wrong_password_refused_and_logged_without_the_password(
    secure_broker: SecureMosquitto,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "not-the-pw-Zk38#"
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HZ_TEST_MQTT_USER", USER)
    monkeypatch.setenv("HZ_TEST_MQTT_PASSWORD", wrong)
    cfg = site(secure_broker.tls_url, {"ca_file": str(pki.ca)}, free_port(), auth=True)
    async with running(cfg) as gw:
        error = await refused(gw, caplog)
    assert "authori" in error.lower(), error
    assert wrong not in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("secure_broker", [{"passwords": {USER: PASSWORD}}], indirect=True)
async def test_unset_password_variable_is_refused_not_a_crash(
    secure_broker: SecureMosquitto,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("HZ_TEST_MQTT_USER", USER)
    monkeypatch.delenv("HZ_TEST_MQTT_PASSWORD", raising=False)
    cfg = site(secure_broker.tls_url, {"ca_file": str(pki.ca)}, free_port(), auth=True)
    async with running(cfg) as gw:
        error = await refused(gw, caplog)
    assert "not authorized" in error.lower(), error  # no password sent: refused by the broker

"""Known secrets are masked in every log line and every published payload, whatever their
source: here an InfluxDB endpoint (or a proxy in front of it) that reflects the request headers
in its error body, which the sink logs — ``Authorization: Token …`` included."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web

from gateway.app import Gateway
from gateway.config import parse_site
from gateway.messages import OutboundMessage
from gateway.redact import MASK, SecretMask
from tests.harness.mosquitto import Mosquitto
from tests.harness.mqtt import listening
from tests.harness.ports import free_port

TOKEN = "influx-token-7hJk2LmN0pQ"
PASSWORD = "mqtt-pw-Xq93!fL"


# ------------------------------------------------------------------ the mask itself


@pytest.fixture
def mask() -> Iterator[SecretMask]:
    m = SecretMask()
    m.install()
    try:
        yield m
    finally:
        m.uninstall()


def test_a_secret_is_masked_in_messages_arguments_and_tracebacks(
    mask: SecretMask, caplog: pytest.LogCaptureFixture
) -> None:
    mask.add(TOKEN)
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("anything.at.all")
    log.error("header Authorization: Token %s", TOKEN)
    log.warning(f"inline {TOKEN}")
    log.info("as a repr %r", {"headers": {"Authorization": f"Token {TOKEN}"}})
    try:
        raise RuntimeError(f"body: Authorization: Token {TOKEN}")
    except RuntimeError:
        log.exception("failed")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in text
    assert text.count(MASK) >= 5


def test_short_values_are_not_secrets_worth_masking(mask: SecretMask) -> None:
    mask.add("")
    mask.add("ab")
    assert mask.mask("a b ab abc") == "a b ab abc"


def test_url_encoded_and_json_escaped_forms_are_masked_too(mask: SecretMask) -> None:
    mask.add(PASSWORD)
    assert PASSWORD not in mask.mask(f"pw={PASSWORD}")
    assert "mqtt-pw-Xq93%21fL" not in mask.mask("pw=mqtt-pw-Xq93%21fL")
    mask.add('quo"te\\back')
    escaped = json.dumps({"e": 'x quo"te\\back y'})
    assert 'quo\\"te\\\\back' not in mask.mask(escaped)
    assert json.loads(mask.mask(escaped)) == {"e": f"x {MASK} y"}


def test_the_publisher_masks_every_payload(mask: SecretMask) -> None:
    mask.add(TOKEN)
    msg = OutboundMessage("t/x/status", json.dumps({"error": f"Token {TOKEN}"}).encode())
    masked = mask.message(msg)
    assert TOKEN.encode() not in masked.payload and masked.topic == msg.topic
    assert mask.message(OutboundMessage("t", b"clean")) == OutboundMessage("t", b"clean")


# ------------------------------------------------------------------ end to end


async def reflecting_influx(port: int) -> web.AppRunner:
    """An endpoint that answers every write 401 with the request headers in the body."""

    async def write(request: web.Request) -> web.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        return web.Response(status=401, text=f"unauthorized; you sent:\n{headers}")

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.mark.integration
async def test_a_reflected_token_never_reaches_the_log_or_the_broker(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HZ_INFLUX_TOKEN", TOKEN)
    influx_port = free_port()
    runner = await reflecting_influx(influx_port)
    site = parse_site(
        {
            "site": {"id": "mask-site"},
            "mqtt": {"url": mosquitto.url, "topic_prefix": "mask"},
            "influx": {
                "url": f"http://127.0.0.1:{influx_port}",
                "org": "safety",
                "bucket": "hazard",
                "token_env": "HZ_INFLUX_TOKEN",
                "flush_interval": 0.1,
            },
            "devices": [
                {
                    "id": "face1-gas",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": free_port()},
                    "poll_interval": 0.2,
                    "timeout": 0.2,
                }
            ],
        }
    )
    caplog.set_level(logging.DEBUG)
    gw = Gateway(site, backoff_max=0.5, stats_interval=0.3)
    stop = asyncio.Event()
    try:
        async with listening(mosquitto.port, "mask/#") as heard:
            task = asyncio.create_task(gw.run(stop))
            async with asyncio.timeout(20):
                while "you sent" not in caplog.text:  # noqa: ASYNC110 (the sink logs it)
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # statuses, retries
            stop.set()
            async with asyncio.timeout(20):
                await task
        payloads = [m.payload for m in heard.messages]
    finally:
        await runner.cleanup()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert f"Token {MASK}" in logged  # the body was logged, the token in it masked
    assert TOKEN not in logged
    assert payloads and all(TOKEN.encode() not in p for p in payloads)

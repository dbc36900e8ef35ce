"""The broker ACL of docs/security.md against a real Mosquitto: read from the docs, so the block
a reader copies is the block tested. The gateway's user publishes only under its prefix and reads
only its command topics; a viewer cannot acknowledge an alarm, an operator can."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway
from gateway.config import parse_site
from simulators import SiteSimulator
from tests.harness.mosquitto import Mosquitto, mosquitto_binary, password_file
from tests.harness.paths import ROOT
from tests.harness.ports import free_port

pytestmark = pytest.mark.integration

SITE = "xinmi-mine-01"
BASE = f"hazard/{SITE}"
GATEWAY, OPERATOR, VIEWER, ADMIN = (
    f"hazardgw-{SITE}",
    f"operator-{SITE}",
    f"viewer-{SITE}",
    "test-admin",
)
PASSWORD = {GATEWAY: "gw-pw-83hd", OPERATOR: "op-pw-19sk", VIEWER: "vw-pw-55qa", ADMIN: "ad-pw-0x"}


def documented_acl() -> str:
    """The ACL block of docs/security.md ("Mosquitto ACL to copy")."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("### Mosquitto ACL to copy", 1)[1]
    match = re.search(r"```\n(.*?)```", section, re.S)
    assert match, "docs/security.md: no ACL block under 'Mosquitto ACL to copy'"
    return match.group(1)


class AclMosquitto(Mosquitto):
    """Mosquitto with logins and the documented ACL (plus a test admin that may do anything)."""

    def __init__(self, workdir: Path) -> None:
        pw = password_file(workdir, PASSWORD)
        acl = workdir / "acl"
        acl.write_text(documented_acl() + f"\nuser {ADMIN}\ntopic readwrite #\n")
        acl.chmod(0o600)
        extra = f"allow_anonymous false\npassword_file {pw}\nacl_file {acl}\n"
        super().__init__(workdir, extra=extra)

    def client(self, user: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            username=user,
            password=PASSWORD[user],
            identifier=f"{user}-{uuid.uuid4().hex[:6]}",
        )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[AclMosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    b = AclMosquitto(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


async def _until(client: aiomqtt.Client, topic: str, timeout: float = 10.0) -> list[str]:
    """Topics received, in order, up to and including the first on ``topic``."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        async for msg in client.messages:
            seen.append(str(msg.topic))
            if str(msg.topic) == topic:
                return seen
    raise AssertionError("unreachable")


async def test_the_gateway_user_publishes_only_under_its_prefix(broker: AclMosquitto) -> None:
    marker = f"{BASE}/gateway/marker"
    async with broker.client(ADMIN) as admin:
        await admin.subscribe("#", qos=1)
        for topic in (
            "hazard/other-site/face1-gas/telemetry",
            f"hazard/{SITE}0/face1-gas/telemetry",  # a sibling prefix, not its own
            "hazard/alarms",
            f"other/{SITE}/face1-gas/telemetry",
        ):
            # dropped (Mosquitto may also drop the connection for it: one connection each)
            with contextlib.suppress(aiomqtt.MqttError):
                async with broker.client(GATEWAY) as gw:
                    await gw.publish(topic, b"{}", qos=1)
        async with broker.client(GATEWAY) as gw:
            await gw.publish(f"{BASE}/face1-gas/telemetry", b"{}", qos=1)
            await gw.publish(marker, b"{}", qos=1)  # after the others: they would come first
        seen = await _until(admin, marker)
    assert seen == [f"{BASE}/face1-gas/telemetry", marker]


async def test_the_gateway_user_reads_only_its_command_topics(broker: AclMosquitto) -> None:
    marker = f"{BASE}/cmd/alarm/marker"
    async with broker.client(ADMIN) as admin, broker.client(GATEWAY) as gw:
        await gw.subscribe("#", qos=1)
        await gw.subscribe(f"{BASE}/#", qos=1)
        for topic in (
            f"{BASE}/face1-gas/telemetry",
            f"{BASE}/alarms/face1-gas/ch4/ch4_face",
            "hazard/other-site/cmd/alarm/ack",
            f"{BASE}/cmd/alarm/ack",
        ):
            await admin.publish(topic, b"{}", qos=1)
        await admin.publish(marker, b"{}", qos=1)
        seen = await _until(gw, marker)
    # one subscription or two overlapping: a message is delivered once or twice, nothing else
    assert set(seen) == {f"{BASE}/cmd/alarm/ack", marker}


def _site(broker: AclMosquitto, port: int) -> Any:
    return parse_site(
        {
            "site": {"id": SITE},
            "mqtt": {
                "url": broker.url,
                "username_env": "HZ_ACL_USER",
                "password_env": "HZ_ACL_PASSWORD",
            },
            "outbox": {"enabled": False},
            "rules": ["rules/packs/coal_mine.yaml"],
            "devices": [
                {
                    "id": "face1-gas",
                    "profile": "gas_detector",
                    "connection": {"transport": "tcp", "host": "127.0.0.1", "port": port},
                    "tags": {"position": "T1", "area": "face-1"},
                    "poll_interval": 0.5,
                }
            ],
        },
        base_dir=ROOT,
    )


async def _alarm_state(admin: aiomqtt.Client, alarm_topic: str) -> str:
    """The retained state of one alarm (a fresh subscription gets the retained message)."""
    await admin.subscribe(alarm_topic, qos=1)
    try:
        async with asyncio.timeout(10):
            async for msg in admin.messages:
                if str(msg.topic) == alarm_topic and msg.payload:
                    assert isinstance(msg.payload, bytes)
                    return str(json.loads(msg.payload)["state"])
    finally:
        await admin.unsubscribe(alarm_topic)
    raise AssertionError("unreachable")


async def test_a_viewer_cannot_ack_an_alarm_an_operator_can(
    broker: AclMosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HZ_ACL_USER", GATEWAY)
    monkeypatch.setenv("HZ_ACL_PASSWORD", PASSWORD[GATEWAY])
    site = _site(broker, free_port())
    async with SiteSimulator(site, "normal") as sim:
        sim.model("face1-gas").set(ch4_base=2.0)  # over the coal face's power-off limit
        gw = Gateway(site, backoff_max=0.5)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        try:
            await gw.publisher.wait_connected(15)
            async with broker.client(ADMIN) as admin:
                # the gateway, logged in as its user, publishes its alarms
                await admin.subscribe(f"{BASE}/alarms/face1-gas/ch4/#", qos=1)
                async with asyncio.timeout(30):
                    async for msg in admin.messages:
                        assert isinstance(msg.payload, bytes)
                        if msg.payload and json.loads(msg.payload)["state"] == "UNACK_ACTIVE":
                            alarm_topic = str(msg.topic)
                            break
                await admin.unsubscribe(f"{BASE}/alarms/face1-gas/ch4/#")
                alarm_id = alarm_topic.removeprefix(f"{BASE}/alarms/")
                await admin.subscribe(f"{BASE}/cmd/reply", qos=1)
                ack = json.dumps({"id": alarm_id, "user": "someone"}).encode()
                # dropped by the broker (which may also drop the viewer's connection for it)
                with contextlib.suppress(aiomqtt.MqttError):
                    async with broker.client(VIEWER) as viewer:
                        await viewer.publish(f"{BASE}/cmd/alarm/ack", ack, qos=1)
                # a command after it, from a user who may: its reply comes after the viewer's
                # would have
                probe = json.dumps({"id": "no/such/alarm", "user": "test"}).encode()
                await admin.publish(f"{BASE}/cmd/alarm/ack", probe, qos=1)
                replies: list[dict[str, Any]] = []
                async with asyncio.timeout(15):
                    async for msg in admin.messages:
                        assert isinstance(msg.payload, bytes)
                        replies.append(json.loads(msg.payload))
                        if "no/such/alarm" in str(replies[-1].get("request")):
                            break
                assert [r["ok"] for r in replies] == [False], replies
                assert await _alarm_state(admin, alarm_topic) == "UNACK_ACTIVE"
                # an operator may
                async with broker.client(OPERATOR) as operator:
                    await operator.subscribe(f"{BASE}/cmd/reply", qos=1)
                    await operator.publish(f"{BASE}/cmd/alarm/ack", ack, qos=1)
                    async with asyncio.timeout(15):
                        async for msg in operator.messages:
                            assert isinstance(msg.payload, bytes)
                            reply = json.loads(msg.payload)
                            break
                assert reply["ok"] is True, reply
                assert await _alarm_state(admin, alarm_topic) == "ACK_ACTIVE"
        finally:
            stop.set()
            async with asyncio.timeout(20):
                await task

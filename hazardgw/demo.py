"""``hazardgw demo``: the whole chain on one machine, with no services installed.

Simulators run a scenario (``gas-leak`` by default) for every device of the example site
(``hazardgw/examples/site.yaml``, package data) on free loopback ports, an embedded MQTT broker
(amqtt) stands in unless ``--mqtt`` is given, the gateway polls and publishes, and a live
terminal view subscribes like a control room would: devices, values, quality, alarms and the
newest MQTT messages. Press ``a`` to acknowledge every unacknowledged alarm (an ack command over
MQTT), ``q`` or Ctrl-C to quit.

The live view needs ``rich`` and the embedded broker ``amqtt``: the ``demo`` extra
(``pip install 'hazard-gateway[demo]'``). Both are imported only when the demo runs, so
:func:`demo_site` (the example site on free ports, used by tests) needs neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.app import Gateway
from gateway.config import SiteConfig, load_site
from gateway.mqtt import broker_address
from gateway.topics import ALARMS, CMD_REPLY, GATEWAY_STATUS, TELEMETRY, Topics

__all__ = ["DemoView", "demo_site", "run_demo"]

log = logging.getLogger(__name__)

#: Times the simulators are started on new free ports when another program took one first.
PORT_ATTEMPTS = 3
#: The example site (package data: the demo works from an installed wheel).
EXAMPLE_SITE = Path(__file__).resolve().parent / "examples" / "site.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_site(path: Path = EXAMPLE_SITE, mqtt_url: str | None = None) -> SiteConfig:
    """The example site with every device endpoint moved to a free loopback port."""
    site = load_site(path)
    remap: dict[int, int] = {}
    devices = []
    for dev in site.devices:
        conn = dev.connection
        if conn.transport == "rtu":
            continue  # serial lines need a pty pair; the demo keeps to TCP
        port = remap.setdefault(int(conn.port), _free_port())
        new_conn = dataclasses.replace(conn, host="127.0.0.1", port=port)
        devices.append(dataclasses.replace(dev, connection=new_conn))
    mqtt = site.mqtt.model_copy(update={"url": mqtt_url, "urls": None}) if mqtt_url else site.mqtt
    return dataclasses.replace(site, devices=tuple(devices), mqtt=mqtt)


@contextlib.asynccontextmanager
async def embedded_broker(port: int) -> AsyncIterator[str]:
    """An amqtt broker on 127.0.0.1:port, for machines with no broker installed."""
    from amqtt.broker import Broker  # noqa: PLC0415  (only the demo needs it)

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()


class DemoView:
    """What a control room sees: built only from MQTT messages."""

    def __init__(self, site: SiteConfig, topics: Topics) -> None:
        self.site = site
        self.topics = topics
        self.values: dict[str, dict[str, Any]] = {}
        self.quality: dict[str, dict[str, str]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.alarms: dict[str, dict[str, Any]] = {}
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=8)
        self.gateway: dict[str, Any] = {}
        self.replies: deque[str] = deque(maxlen=3)
        self.messages = 0
        self.started = time.monotonic()

    def on_message(self, topic: str, payload: bytes) -> None:
        self.messages += 1
        rel = topic.removeprefix(self.topics.base + "/")
        text = payload.decode("utf-8", "replace")
        self.recent.appendleft((time.time(), rel, text[:110]))
        try:
            doc = json.loads(payload) if payload else None
        except json.JSONDecodeError:
            return
        parts = rel.split("/")
        if parts[0] == ALARMS and len(parts) == 4:
            alarm_id = "/".join(parts[1:])
            if doc is None or doc.get("state") == "NORMAL":
                self.alarms.pop(alarm_id, None)
            else:
                self.alarms[alarm_id] = doc
        elif rel == GATEWAY_STATUS and isinstance(doc, dict):
            self.gateway = doc
        elif rel == CMD_REPLY and isinstance(doc, dict):
            self.replies.appendleft("ok" if doc.get("ok") else f"error: {doc.get('error')}")
        elif len(parts) == 2 and isinstance(doc, dict):
            device, leaf = parts
            if leaf == TELEMETRY:
                self.values[device] = doc.get("values", {})
                self.quality[device] = doc.get("quality", {})
            elif leaf == "status":
                self.status[device] = doc

    def unacked(self) -> list[str]:
        return [
            a for a, d in self.alarms.items() if d.get("state") in ("UNACK_ACTIVE", "RTN_UNACK")
        ]


@contextlib.contextmanager
def _cbreak() -> Iterator[bool]:
    """Single-key input when stdin is a terminal; otherwise no keys."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios  # noqa: PLC0415
    import tty  # noqa: PLC0415

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


async def _watch(
    site: SiteConfig,
    topics: Topics,
    view: DemoView,
    keys: asyncio.Queue[str],
    quit_event: asyncio.Event,
) -> None:
    host, port, _ = broker_address(site.mqtt.url)
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier=f"demo-view-{os.getpid()}") as client:
                await client.subscribe(f"{topics.base}/#", qos=1)

                async def keys_loop(client: aiomqtt.Client = client) -> None:
                    while True:
                        key = await keys.get()
                        if key in ("q", "Q"):
                            quit_event.set()
                        elif key in ("a", "A"):
                            for alarm_id in view.unacked():
                                body = json.dumps({"id": alarm_id, "user": "demo-operator"})
                                await client.publish(topics.cmd_ack, body, qos=1)

                task = asyncio.create_task(keys_loop())
                try:
                    async for msg in client.messages:
                        payload = msg.payload if isinstance(msg.payload, bytes) else b""
                        view.on_message(str(msg.topic), payload)
                finally:
                    task.cancel()
        except aiomqtt.MqttError:
            await asyncio.sleep(0.5)


async def run_demo(
    *,
    seconds: float | None = None,
    mqtt_url: str | None = None,
    scenario: str = "gas-leak",
    site_path: Path = EXAMPLE_SITE,
    seed: int = 1,
    speed: float = 3.0,
) -> int:
    """Run simulators, broker (embedded unless ``mqtt_url``), gateway and the live view."""
    from rich.live import Live  # noqa: PLC0415  (the demo extra)

    from hazardgw.live_view import render_view  # noqa: PLC0415
    from simulators import EndpointError, SiteSimulator  # noqa: PLC0415

    async with contextlib.AsyncExitStack() as stack:
        if mqtt_url is None:
            mqtt_url = await stack.enter_async_context(embedded_broker(_free_port()))
        demo_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hazardgw-")))
        # The scenario plays `speed` times faster than the wall clock, so a viewer sees the
        # alarms rise, get acknowledged and clear within a few minutes; polling stays real time.
        t0 = time.monotonic()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            site = demo_site(site_path, mqtt_url)
            if site.outbox is not None:  # a show, not a site: its outbox goes with it
                outbox = site.outbox.model_copy(update={"path": str(demo_dir / "outbox.sqlite3")})
                site = dataclasses.replace(site, outbox=outbox)
            sim = SiteSimulator(
                site,
                scenario=scenario,
                seed=seed,
                clock=lambda: t0 + (time.monotonic() - t0) * speed,
            )
            try:
                await stack.enter_async_context(sim)
                break
            except EndpointError:  # another program took a free port first: pick new ones
                if attempt == PORT_ATTEMPTS:
                    raise
        topics = Topics(site.mqtt.topic_prefix, site.site.id)
        gateway = Gateway(site, backoff_max=5.0, stats_interval=2.0)
        view = DemoView(site, topics)
        stop = asyncio.Event()
        keys: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        with _cbreak() as interactive:
            if interactive:
                loop.add_reader(sys.stdin.fileno(), lambda: keys.put_nowait(sys.stdin.read(1)))
            try:
                async with asyncio.TaskGroup() as tg:
                    gw_task = tg.create_task(gateway.run(stop), name="gateway")
                    watch = tg.create_task(_watch(site, topics, view, keys, stop), name="view")
                    with Live(render_view(view), refresh_per_second=4, screen=False) as live:
                        deadline = None if seconds is None else loop.time() + seconds
                        while not stop.is_set() and (deadline is None or loop.time() < deadline):
                            await asyncio.sleep(0.25)
                            live.update(render_view(view))
                    stop.set()
                    await gw_task
                    watch.cancel()
            except* asyncio.CancelledError:
                pass
            finally:
                if interactive:
                    loop.remove_reader(sys.stdin.fileno())
        print(
            f"demo finished: {view.messages} MQTT messages, "
            f"{len(view.alarms)} alarms active at the end"
        )
    return 0

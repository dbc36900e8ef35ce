"""Run the console: the broker link and the web server (uvicorn) in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import uvicorn

from console._board import AlarmBoard, TitleBook, builtin_packs
from console._link import BrokerLink, Hub
from console._users import UserFile
from console._web import create_app

__all__ = ["ConsoleSettings", "parse_listen", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """What ``hazardgw console`` was asked to run (secrets are values here, never logged)."""

    mqtt_url: str
    prefix: str
    sites: frozenset[str]
    host: str
    port: int
    users: Path
    secret: str
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    rule_packs: tuple[Path, ...] = ()


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6); raises ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen: expected host:port such as 127.0.0.1:8080, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_mqtt_url(text: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of ``mqtt://host[:port]`` or ``mqtts://…`` (ValueError otherwise)."""
    url = urlparse(text)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ValueError(f"--mqtt: expected mqtt://host:port or mqtts://host:port, got {text!r}")
    if url.username or url.password:
        raise ValueError("--mqtt: put no credentials in the URL; use --mqtt-username-env")
    tls = url.scheme == "mqtts"
    return url.hostname, url.port or (8883 if tls else 1883), tls


async def serve(settings: ConsoleSettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set."""
    host, port, tls = parse_mqtt_url(settings.mqtt_url)
    packs = list(settings.rule_packs) or builtin_packs()
    board = AlarmBoard(settings.prefix, settings.sites, TitleBook.from_packs(packs))
    hub = Hub()
    context = None
    if tls:
        context = ssl.create_default_context(
            cafile=str(settings.mqtt_ca) if settings.mqtt_ca else None
        )
    link = BrokerLink(
        board,
        hub,
        host=host,
        port=port,
        tls_context=context,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
    )
    https = settings.tls_cert is not None
    users = UserFile(settings.users)
    app = create_app(board, hub, link, users, secret=settings.secret, https_only=https)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    watched = ", ".join(sorted(settings.sites)) or "every site"
    log.info(
        "console on %s://%s:%d, broker %s:%d, prefix %s, %s",
        "https" if https else "http",
        settings.host,
        settings.port,
        host,
        port,
        settings.prefix,
        watched,
    )
    async with asyncio.TaskGroup() as tg:
        link_task = tg.create_task(link.run(), name="console-broker-link")
        web_task = tg.create_task(server.serve(), name="console-web")
        await _first(stop, web_task)
        hub.end_all()  # open event streams would hold the server's shutdown
        server.should_exit = True
        link_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await link_task


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the CLI's handler sets ``stop``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _first(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def site_list(text: str | None) -> frozenset[str]:
    return frozenset(s.strip() for s in (text or "").split(",") if s.strip())


def pack_paths(paths: Sequence[str] | None) -> tuple[Path, ...]:
    return tuple(Path(p) for p in paths or ())

"""The InfluxDB v2 write API over HTTP: one request per body, its failures classified.

:class:`ClientWriter` sends one body of newline-separated lines (precision ms) with
influxdb-client's async write API and turns every way it can fail into an
:class:`InfluxWriteError`: ``retryable`` False when the server refused the data itself (HTTP
400/422: a malformed line, a field type conflict; sending it again cannot help), ``status`` 413
when the body was too large (write it in parts), retryable otherwise (refused, reset, timed out,
unauthorized, overloaded). :func:`influx_token` reads the API token from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final, Protocol, cast

from aiohttp import ClientError
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from gateway.config import InfluxConfig
from gateway.errors import GatewayError
from gateway.redact import SECRETS

__all__ = [
    "REJECTED_STATUS",
    "TOO_LARGE",
    "ClientWriter",
    "InfluxSinkError",
    "InfluxWriteError",
    "LineWriter",
    "describe",
    "influx_token",
]

REJECTED_STATUS: Final = frozenset({400, 422})
"""HTTP statuses of data the server refuses for good (malformed, type conflict)."""
TOO_LARGE: Final = 413
"""HTTP status of a body over the server's size limit: write it in parts."""


class InfluxSinkError(GatewayError):
    """The sink is misconfigured (e.g. the token's environment variable is not set)."""


class InfluxWriteError(GatewayError):
    """A write did not reach the database.

    ``retryable`` is False when the server refused the data itself (HTTP 400/422: malformed
    line, field type conflict) and sending it again cannot help. ``status`` is the HTTP status,
    or None when there was no answer (refused, reset, timed out).
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        self.retryable = retryable
        self.status = status
        self.retry_after: float | None = None  # set by InfluxWriter.write: its backoff delay
        super().__init__(message)


class LineWriter(Protocol):
    """Sends one body of newline-separated lines (precision ms).

    Raises :class:`InfluxWriteError` when the lines did not reach the database.
    """

    async def __call__(self, body: str) -> None: ...


def influx_token(config: InfluxConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The token from the environment variable ``config.token_env`` names (None without one).

    Raises :class:`InfluxSinkError` when the variable is named but not set. The token itself is
    never logged nor put into an error message.
    """
    if config.token_env is None:
        return None
    env = os.environ if environ is None else environ
    token = env.get(config.token_env)
    SECRETS.add(token)  # masked in every log line and payload from now on
    if not token:
        raise InfluxSinkError(
            f"influx.token_env names the environment variable {config.token_env!r}, "
            "which is not set (or empty): export the InfluxDB API token in it"
        )
    return token


def describe(exc: BaseException) -> str:
    """An exception as ``Type: first line of its message``."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class ClientWriter:
    """:class:`LineWriter` over influxdb-client's async write API."""

    def __init__(self, config: InfluxConfig, token: str | None, timeout_s: float) -> None:
        self._bucket = config.bucket
        self._org = config.org
        self._precision = cast(WritePrecision, WritePrecision.MS)
        self._client = InfluxDBClientAsync(
            url=config.url, token=token or "", org=config.org, timeout=int(timeout_s * 1000)
        )
        self._api = self._client.write_api()

    async def __call__(self, body: str) -> None:
        try:
            ok = await self._api.write(
                bucket=self._bucket,
                org=self._org,
                record=body.encode(),
                write_precision=self._precision,
            )
        except ApiException as exc:
            status = int(exc.status) if exc.status is not None else None
            message = _api_message(exc)
            raise InfluxWriteError(
                f"HTTP {status} {exc.reason or ''}: {message}".strip(),
                retryable=status not in REJECTED_STATUS,
                status=status,
            ) from exc
        except (ClientError, OSError, TimeoutError, InfluxDBError) as exc:
            raise InfluxWriteError(describe(exc), retryable=True) from exc
        if not ok:
            raise InfluxWriteError("unexpected HTTP status from the write API", retryable=True)

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip().replace("\n", " ")
    return text[:300]

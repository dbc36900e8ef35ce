"""Secrets masked in every log line and every published payload, whatever their source.

Secrets (the MQTT password, the InfluxDB token) live in environment variables the site file
names; :func:`secret_from_env` reads one and registers its value with :data:`SECRETS`, the
process's one :class:`SecretMask`. Once installed (the gateway does it at start), the mask
rewrites every log record as it is created — message, arguments, traceback and stack — for
every logger of every library, and :class:`~gateway.mqtt.MqttPublisher` passes every outbound
payload through it. So a secret that comes back from outside (an InfluxDB endpoint or a proxy
that reflects ``Authorization: Token …`` in an error body, an exception that quotes a URL) is
printed as ``***``. The value is masked as written, URL-encoded and JSON-escaped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote, quote_plus

from gateway.messages import OutboundMessage

__all__ = ["MASK", "MIN_SECRET_CHARS", "SECRETS", "SecretMask", "secret_from_env"]

MASK: Final = "***"
#: Shorter values are not masked: masking every "ab" in the log would hide more than it protects.
MIN_SECRET_CHARS: Final = 4


class SecretMask:
    """A set of secret values and the ways to hide them in text, bytes, messages and logs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()
        self._bforms: tuple[bytes, ...] = ()
        self._previous: Callable[..., logging.LogRecord] | None = None
        self._factory: Callable[..., logging.LogRecord] | None = None

    def add(self, secret: str | None) -> None:
        """Mask ``secret`` from now on (values shorter than MIN_SECRET_CHARS are ignored)."""
        if not secret or len(secret) < MIN_SECRET_CHARS:
            return
        forms = {
            secret,
            quote(secret, safe=""),
            quote_plus(secret),
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
        }
        with self._lock:
            every = sorted(set(self._forms) | forms, key=len, reverse=True)  # longest first
            self._forms = tuple(every)
            self._bforms = tuple(f.encode() for f in every)

    def mask(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        for form in self._bforms:
            if form in data:
                data = data.replace(form, MASK.encode())
        return data

    def message(self, msg: OutboundMessage) -> OutboundMessage:
        """``msg`` with its payload masked (the same object when it holds no secret)."""
        if not any(form in msg.payload for form in self._bforms):
            return msg
        return dataclasses.replace(msg, payload=self.mask_bytes(msg.payload))

    # ------------------------------------------------------------------ logging

    def install(self) -> None:
        """Mask every log record from now on, whichever logger and handler it goes through."""
        with self._lock:
            if self._factory is not None:
                return
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                if self._forms:
                    self._scrub(record)
                return record

            self._previous, self._factory = previous, factory
            logging.setLogRecordFactory(factory)

    def uninstall(self) -> None:
        with self._lock:
            if self._factory is not None and logging.getLogRecordFactory() is self._factory:
                assert self._previous is not None
                logging.setLogRecordFactory(self._previous)
            self._factory = self._previous = None

    def _scrub(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format: the handler reports it, with the secret masked
            message = self.mask(f"{record.msg!r} % {record.args!r}")
            record.msg, record.args = message, ()
            return
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.mask(text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)


#: The process's secrets: every value :func:`secret_from_env` read.
SECRETS: Final = SecretMask()


def secret_from_env(name: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of environment variable ``name`` (None if unnamed or unset), masked from now on
    in logs and payloads."""
    if name is None:
        return None
    value = (os.environ if environ is None else environ).get(name)
    SECRETS.add(value)
    return value

"""Exceptions raised by the rules engine.

The tree is shallow on purpose::

    RulesError
    ├── RulesConfigError      a rule pack or an override is invalid (raised at load / construction)
    └── AlarmCommandError     an operator command was refused; nothing changed
        ├── UnknownAlarm      no alarm has that id
        ├── UnknownDevice     no device has that id (maintenance commands)
        └── InvalidCommand    the alarm or device exists but the command does not apply (or bad
                              arguments)
"""

from __future__ import annotations

from typing import Any

from .yamlfile import short_repr

__all__ = [
    "AlarmCommandError",
    "InvalidCommand",
    "RulesConfigError",
    "RulesError",
    "UnknownAlarm",
    "UnknownDevice",
]


class RulesError(Exception):
    """Base class of every error the rules engine raises."""


class RulesConfigError(RulesError, ValueError):
    """A rule pack or a site override is invalid.

    Carries the file (or ``"overrides"``), the key path inside it, the offending value and what is
    allowed, so the message can be shown to the person who wrote the file without a traceback.
    """

    def __init__(self, source: str, path: str, value: Any, allowed: str) -> None:
        self.source = source
        self.path = path
        self.value = value
        self.allowed = allowed
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: got {short_repr(value)}; {allowed}")


class AlarmCommandError(RulesError):
    """An operator command (acknowledge, shelve) was refused and changed nothing."""

    def __init__(self, alarm_id: str, reason: str) -> None:
        self.alarm_id = alarm_id
        self.reason = reason
        super().__init__(f"{reason}: {alarm_id!r}")


class UnknownAlarm(AlarmCommandError):
    """No alarm with this id exists in the engine."""

    def __init__(self, alarm_id: str) -> None:
        super().__init__(alarm_id, "unknown alarm")


class UnknownDevice(AlarmCommandError):
    """No device with this id is known to the engine."""

    def __init__(self, device: str) -> None:
        super().__init__(device, "unknown device")


class InvalidCommand(AlarmCommandError):
    """The alarm exists but the command does not apply to it, or an argument is out of range."""

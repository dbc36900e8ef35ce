"""The console's users file: one ``name:role:argon2-hash`` line per user.

Made and changed with ``hazardgw console adduser``; the console reads it at every login, so a
user added or demoted takes effect without a restart. Passwords are hashed with argon2id
(argon2-cffi's defaults, RFC 9106's second recommended parameter set); the file holds no password.
Roles: ``operator`` may act on alarms, ``viewer`` may only look.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["ROLES", "User", "UserFile", "UserFileError"]

ROLES: Final = ("operator", "viewer")
NAME_RE: Final = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH: Final = _hasher.hash("not a password of anyone")


class UserFileError(Exception):
    """A users file or a new user that is not acceptable; the message says what and where."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    hash: str


class UserFile:
    """The users file at ``path`` (it need not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, User]:
        """Every user in the file (raises :class:`UserFileError` naming the bad line)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise UserFileError(f"{self.path}: cannot read: {exc}") from None
        users: dict[str, User] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(":")
            if len(parts) != 3:
                raise UserFileError(f"{self.path}:{n}: expected name:role:hash")
            name, role, hashed = parts
            if not NAME_RE.match(name):
                raise UserFileError(f"{self.path}:{n}: bad user name {name!r}")
            if role not in ROLES:
                raise UserFileError(
                    f"{self.path}:{n}: role {role!r} of {name!r} is not one of {', '.join(ROLES)}"
                )
            if not hashed.startswith("$argon2"):
                raise UserFileError(f"{self.path}:{n}: the hash of {name!r} is not argon2")
            users[name] = User(name, role, hashed)
        return users

    def add(self, name: str, role: str, password: str) -> bool:
        """Add or replace ``name``; True if it was new. The file is written with mode 0600."""
        if not NAME_RE.match(name):
            raise UserFileError(
                f"user name {name!r}: use 1-64 letters, digits and . _ @ - (no colon or space)"
            )
        if role not in ROLES:
            raise UserFileError(f"--role {role!r}: must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise UserFileError("the password must have at least 8 characters")
        users = self.read()
        new = name not in users
        users[name] = User(name, role, _hasher.hash(password))
        body = "".join(f"{u.name}:{u.role}:{u.hash}\n" for u in users.values())
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, self.path)
        return new

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (unknown names cost the same time)."""
        user = self.read().get(name)
        try:
            _hasher.verify(user.hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

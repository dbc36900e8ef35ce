"""The console's users file and ``hazardgw console adduser``."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from console import UserFile, UserFileError
from hazardgw.cli import main


def test_adduser_writes_an_argon2_hash_only_its_owner_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    assert main(["console", "adduser", "wang", "--users", str(path), "--password-stdin"]) == 0
    assert "added wang (operator)" in capsys.readouterr().out
    text = path.read_text()
    assert text.startswith("wang:operator:$argon2id$") and "s3cret-pass" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = UserFile(path)
    assert users.verify("wang", "s3cret-pass") is not None
    assert users.verify("wang", "wrong-pass") is None
    assert users.verify("nobody", "s3cret-pass") is None


def test_adduser_replaces_a_user_and_changes_the_role(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users")
    assert users.add("li", "operator", "first-password")
    assert not users.add("li", "viewer", "second-password")
    assert users.verify("li", "first-password") is None
    user = users.verify("li", "second-password")
    assert user is not None and user.role == "viewer"


@pytest.mark.parametrize(
    ("name", "role", "password", "error"),
    [
        ("bad:name", "operator", "long-enough", "user name 'bad:name'"),
        ("li", "admin", "long-enough", "--role 'admin'"),
        ("li", "viewer", "short", "at least 8 characters"),
    ],
)
def test_bad_users_are_refused(
    tmp_path: Path, name: str, role: str, password: str, error: str
) -> None:
    with pytest.raises(UserFileError, match=error):
        UserFile(tmp_path / "users").add(name, role, password)


def test_a_damaged_users_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# users\nwang:operator:$argon2id$x\nli:root:$argon2id$y\n")
    with pytest.raises(UserFileError, match=r"users:3: role 'root' of 'li'"):
        UserFile(path).read()


def test_console_verb_reports_bad_options_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "--mqtt", "http://x", "--listen", "nohost"]) == 2
    err = capsys.readouterr().err
    assert "--mqtt: expected mqtt://host:port" in err
    assert "--users: required" in err
    assert "--listen: expected host:port" in err


def test_adduser_if_missing_keeps_an_existing_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users"
    UserFile(path).add("operator", "operator", "changed-later")
    monkeypatch.setattr("sys.stdin", io.StringIO("first-start-password\n"))
    argv = ["console", "adduser", "operator", "--users", str(path), "--password-stdin"]
    assert main([*argv, "--if-missing"]) == 0
    assert "left as it is" in capsys.readouterr().out
    assert UserFile(path).verify("operator", "changed-later") is not None

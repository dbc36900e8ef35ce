"""Site files, profiles and rule packs that attack the reader: alias bombs, huge files, files that
are not regular files (``/dev/zero``, a FIFO), and files that are not YAML of the expected shape
(``/etc/shadow``), whose content must never be echoed in an error."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.config import MAX_PROFILE_BYTES, MAX_SITE_BYTES, load_site
from gateway.errors import ConfigError, ConfigIssue
from rules import RulesConfigError, load_packs
from rules._pack import MAX_PACK_BYTES
from rules.yamlfile import MAX_ALIAS_NODES, short_repr


def device(profile: str) -> str:
    return f"{{id: g1, profile: {profile}, connection: {{transport: tcp, port: 5020}}}}"


#: nine levels of nine aliases: 9**9 = 387,420,489 strings once expanded
BOMB_ANCHORS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)
#: a shadow-like file: every line is something an error message must never print
SECRET_LINES = [
    "root:$6$Zq1secretSALT$hashhashhashROOT:19700:0:99999:7:::",
    "alice:$6$Aa9otherSALT$hashhashhashALICE:19701:0:99999:7:::",
    "password: hunter2-field-secret",
]


def _limit_memory() -> None:  # a bomb that gets through must not take the machine with it
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))


def check(path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL,
    )


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_site(path)
    return str(info.value)


# ------------------------------------------------------------------ alias bombs (#15.2)


@pytest.mark.parametrize(
    "where",
    [
        "site: {id: s1, name: *a8}\ndevices: [" + device("gas_detector") + "]",
        "site: {id: s1}\ndevices: [{id: g1, profile: gas_detector, tags: *a8,"
        " connection: {transport: tcp, port: 5020}}]",
        "site: {id: s1}\nbogus: *a8\ndevices: [" + device("gas_detector") + "]",
    ],
    ids=["site.name", "tags", "unknown key"],
)
def test_an_alias_bomb_is_refused_fast_without_a_traceback(tmp_path: Path, where: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(f"{BOMB_ANCHORS}\n{where}\n", encoding="utf-8")
    proc = check(path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "aliases" in proc.stderr and str(MAX_ALIAS_NODES) in proc.stderr.replace(",", "")


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(
        "site: {id: s1, name: &me [*me]}\ndevices: [" + device("gas_detector") + "]\n",
        encoding="utf-8",
    )
    assert "refers to itself" in refused(path)


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "site: {id: s1}\ndevices:\n"
        "  - {id: g1, profile: gas_detector, connection: &c {transport: tcp, port: 5020}}\n"
        "  - {id: g2, profile: gas_detector, unit: 2, connection: *c}\n",
        encoding="utf-8",
    )
    assert [d.id for d in load_site(path).devices] == ["g1", "g2"]


class Leaf:
    calls = 0

    def __repr__(self) -> str:
        Leaf.calls += 1
        return "leaf"


def test_an_error_message_never_formats_more_than_it_prints() -> None:
    value: object = [Leaf()] * 9
    for _ in range(8):
        value = [value] * 9  # 9**9 leaves, shared
    Leaf.calls = 0
    text = str(ConfigIssue("site.name", "Input should be a valid string", value))
    assert len(text) < 200 and Leaf.calls <= 20
    assert len(short_repr("x" * 10**7)) <= 80


def test_a_rule_pack_error_never_formats_more_than_it_prints() -> None:
    value: object = [Leaf()] * 9
    for _ in range(8):
        value = [value] * 9
    Leaf.calls = 0
    assert len(str(RulesConfigError("pack.yaml", "title", value, "a string"))) < 300
    assert Leaf.calls <= 20


# ------------------------------------------------------------------ size bounds (#15.2)


def test_a_site_file_over_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("site: {id: s1}\ndevices: [" + device("gas_detector") + "]\n")
        fh.write(("# padding " + "x" * 90 + "\n") * (MAX_SITE_BYTES // 100 + 10))
    text = refused(path)
    assert "larger than" in text and "MiB" in text and str(path) in text


def test_the_c_loader_reads_site_files_when_libyaml_is_there() -> None:
    from rules import yamlfile

    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    assert yamlfile.Loader is yaml.CSafeLoader


# ------------------------------------------------------------------ profile: and rules: (#15.3)


def site_with_profile(tmp_path: Path, profile: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text("site: {id: s1}\ndevices: [" + device(profile) + "]\n", encoding="utf-8")
    return path


def site_with_rules(tmp_path: Path, pack: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(
        f"site: {{id: s1}}\nrules: [{pack}]\ndevices: [" + device("gas_detector") + "]\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("make", ["site_with_profile", "site_with_rules"])
def test_dev_zero_is_not_read(tmp_path: Path, make: str) -> None:
    proc = check(globals()[make](tmp_path, "/dev/zero"), timeout=30)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    assert "/dev/zero" in proc.stderr and "not a regular file" in proc.stderr


@pytest.mark.parametrize("make", ["site_with_profile", "site_with_rules"])
def test_a_fifo_is_not_opened(tmp_path: Path, make: str) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever (like /dev/stdin)
    proc = check(globals()[make](tmp_path, str(fifo)), timeout=30)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(fifo) in proc.stderr and "not a regular file" in proc.stderr


@pytest.mark.parametrize("make", ["site_with_profile", "site_with_rules"])
@pytest.mark.parametrize("lines", [SECRET_LINES[:2], SECRET_LINES[2:], SECRET_LINES])
def test_a_file_of_another_kind_is_named_never_echoed(
    tmp_path: Path, make: str, lines: list[str]
) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = check(globals()[make](tmp_path, str(secret)), timeout=30)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(secret) in proc.stderr
    for secret_part in ("SALT", "hashhash", "hunter2", "password", "alice"):
        assert secret_part not in proc.stderr, proc.stderr


def test_a_profile_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    profile = tmp_path / "big_profile.yaml"
    profile.write_text("# x\n" * (MAX_PROFILE_BYTES // 4 + 10), encoding="utf-8")
    text = refused(site_with_profile(tmp_path, str(profile)))
    assert "larger than" in text and "big_profile.yaml" in text


def test_a_rule_pack_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    pack = tmp_path / "big_pack.yaml"
    pack.write_text("# x\n" * (MAX_PACK_BYTES // 4 + 10), encoding="utf-8")
    with pytest.raises(RulesConfigError) as info:
        load_packs([pack])
    assert "larger than" in str(info.value) and "big_pack.yaml" in str(info.value)

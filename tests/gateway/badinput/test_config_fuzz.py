"""Broken site configs, generated: a valid document mutated (wrong types, unknown keys,
out-of-range numbers, missing keys, bad enums, nested garbage) is refused with a ConfigError whose
issues name a key path — never another exception — and ``hazardgw check`` exits 2 without a
traceback."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import load_site, parse_site
from gateway.errors import ConfigError

Doc = dict[str, Any]
Key = str | int

VALID: Doc = {
    "site": {"id": "fuzz-mine", "name": "Fuzz mine"},
    "mqtt": {
        "url": "mqtt://127.0.0.1:1883",
        "topic_prefix": "hazard",
        "telemetry_qos": 0,
        "username_env": "MQTT_USER",
        "password_env": "MQTT_PASSWORD",
        "keepalive": 30,
    },
    "influx": {
        "url": "http://127.0.0.1:8086",
        "org": "safety",
        "bucket": "hazard",
        "token_env": "INFLUX_TOKEN",
        "batch_size": 5000,
        "flush_interval": 1.0,
    },
    "outbox": {"path": "outbox.sqlite3", "max_mb": 64.0},
    "rules": ["rules/packs/coal_mine.yaml"],
    "devices": [
        {
            "id": "face1-gas",
            "profile": "gas_detector",
            "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 5020},
            "unit": 1,
            "poll_interval": 1.0,
            "timeout": 1.0,
            "tags": {"position": "T1", "area": "face-1"},
            "points": [
                {"name": "ch4", "register": "holding", "address": 10, "type": "float32"},
                {
                    "name": "extra_word",
                    "register": "input",
                    "address": 40,
                    "type": "uint16",
                    "order": "BADC",
                    "scale": 0.1,
                    "offset": -5.0,
                    "unit": "kPa",
                },
                {"name": "flag", "register": "holding", "address": 41, "type": "bool", "bit": 3},
            ],
            "limits": {"ch4_face": {"H": 1.0, "HH": 1.5}},
        },
        {
            "id": "tank-1",
            "profile": "tank_gauge",
            "connection": {"transport": "rtu-over-tcp", "host": "10.0.0.7", "port": 4001},
            "unit": 2,
        },
        {
            "id": "lift-1",
            "profile": "elevator",
            "connection": {
                "transport": "rtu",
                "port": "/dev/ttyUSB0",
                "baudrate": 9600,
                "parity": "N",
                "stopbits": 1,
            },
            "unit": 3,
            "poll_interval": 0.5,
        },
    ],
}

# -- mutations --------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
garbage = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
bad_numbers = st.sampled_from(
    [-1, 0, -(10**6), 65536, 10**9, 10**400, -(10**400), math.nan, math.inf, -math.inf, 1e308]
)
bad_enums = st.sampled_from(["", "TCP", "float", "abcd", "holding ", "coils", "Z", "tcp\x00"])


def node_paths(node: Any, prefix: tuple[Key, ...] = ()) -> list[tuple[Key, ...]]:
    """Every path below the root, to containers and leaves alike."""
    out: list[tuple[Key, ...]] = []
    items: list[tuple[Key, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    for key, child in items:
        path = (*prefix, key)
        out.append(path)
        out.extend(node_paths(child, path))
    return out


ALL_PATHS = node_paths(VALID)


def _parent(doc: Any, path: tuple[Key, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutation(draw: st.DrawFn, doc: Doc) -> str:
    """Apply one mutation to ``doc`` in place; return the top-level key it touches."""
    paths = node_paths(doc)
    path = draw(st.sampled_from(paths))
    parent = _parent(doc, path)
    key = path[-1]
    current = parent[key]
    kind = draw(st.sampled_from(["replace", "delete", "unknown_key", "number", "enum"]))
    if kind == "delete":
        del parent[key]
    elif kind == "unknown_key":
        target = current if isinstance(current, dict) else parent
        if isinstance(target, dict):
            name = draw(st.sampled_from(["colour", "Port", "tls_verify", "typo", "x-y"]))
            target[name] = draw(garbage)
            if target is doc:
                return name
        else:
            parent[key] = draw(garbage)
    elif kind == "number" and isinstance(current, int | float):
        parent[key] = draw(bad_numbers)
    elif kind == "enum" and isinstance(current, str):
        parent[key] = draw(bad_enums)
    else:
        parent[key] = draw(garbage)
    return str(path[0])


@st.composite
def broken_docs(draw: st.DrawFn) -> tuple[Doc, list[str]]:
    doc = copy.deepcopy(VALID)
    roots = [draw(mutation(doc)) for _ in range(draw(st.integers(1, 3)))]
    return doc, roots


def check_refused(doc: Doc, roots: list[str]) -> ConfigError | None:
    """Parse ``doc``; a refusal must be a ConfigError naming a key path under a mutated key."""
    error: ConfigError | None = None
    try:
        parse_site(doc, base_dir=Path.cwd())
    except ConfigError as exc:
        error = exc
    if error is None:
        return None  # some mutations leave a valid document (e.g. a new site name)
    assert error.issues, "a ConfigError lists its issues"
    for issue in error.issues:
        assert isinstance(issue.path, str) and issue.path
        assert str(issue)  # formatting never fails, whatever the value
    assert any(
        i.path.startswith(r) or i.path == "(top level)" for i in error.issues for r in roots
    ), f"no issue under {roots}: {[str(i) for i in error.issues]}"
    return error


# -- tests ------------------------------------------------------------------------------------


def test_the_unmutated_document_is_valid() -> None:
    site = parse_site(copy.deepcopy(VALID), base_dir=Path.cwd())
    assert [d.id for d in site.devices] == ["face1-gas", "tank-1", "lift-1"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_docs())
def test_mutated_site_gives_config_error_naming_a_key_path(case: tuple[Doc, list[str]]) -> None:
    check_refused(*case)


@settings(max_examples=100, deadline=None)
@given(garbage)
def test_a_site_that_is_not_a_mapping_is_refused_at_the_top_level(raw: Any) -> None:
    if isinstance(raw, dict):
        raw = [raw]
    with pytest.raises(ConfigError) as info:
        parse_site(raw)
    assert info.value.issues[0].path == "(top level)"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_a_site_file(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("bytes") / "site.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_site(path)
    assert all(i.path for i in info.value.issues)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xfe\x00s\x00i\x00t\x00e", "is not UTF-8 text"),
        (b"site: {id: a}\ndevices: [\n", "YAML syntax error"),
        (b"- 1\n- 2\n", "(top level)"),
        (b"site: {id: a}\ndevices: []\n", "devices"),
    ],
    ids=["utf16", "unclosed", "list", "no-devices"],
)
def test_hand_written_broken_files(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_site(path)
    assert expected in str(info.value)


def test_profile_path_with_a_nul_byte_names_the_profile_key() -> None:
    doc = copy.deepcopy(VALID)
    doc["devices"][1]["profile"] = "profiles/tank\x00.yaml"
    with pytest.raises(ConfigError) as info:
        parse_site(doc, base_dir=Path.cwd())
    assert [i.path for i in info.value.issues] == ["devices[1].profile"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_docs())
def test_check_cli_exits_2_without_traceback(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[Doc, list[str]]
) -> None:
    doc, roots = case
    error = check_refused(doc, roots)
    if error is None:
        return
    path = tmp_path_factory.mktemp("cli") / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        reread = load_site(path)
    except ConfigError:
        pass
    else:  # the YAML round trip can heal a mutation (e.g. a tuple becomes a list)
        assert reread is not None
        return
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert any(r in proc.stderr for r in roots) or "(top level)" in proc.stderr

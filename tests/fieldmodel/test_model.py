"""The resolved field model: what a site file turns into, and the package's independence."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from fieldmodel.model import (
    Device,
    Point,
    Profile,
    RtuConnection,
    RtuOverTcpConnection,
    TcpConnection,
)
from fieldmodel.registers import REGISTER_WIDTH
from gateway.config import parse_site


def _site(*connections: dict[str, object]) -> dict[str, object]:
    return {
        "site": {"id": "s1"},
        "outbox": {"enabled": False},
        "devices": [
            {"id": f"d{i}", "profile": "gas_detector", "unit": i + 1, "connection": c}
            for i, c in enumerate(connections)
        ],
    }


def test_a_site_file_resolves_into_the_field_model() -> None:
    site = parse_site(
        _site(
            {"transport": "tcp", "host": "10.0.0.5", "port": 1502},
            {"transport": "rtu-over-tcp", "host": "10.0.0.7", "port": 4001, "frame_gap": 0.01},
            {"transport": "rtu", "port": "/dev/ttyS1", "baudrate": 19200, "parity": "E"},
        )
    )
    tcp, rot, rtu = (d.connection for d in site.devices)
    assert tcp == TcpConnection(host="10.0.0.5", port=1502)
    assert rot == RtuOverTcpConnection(host="10.0.0.7", port=4001, frame_gap=0.01)
    assert rtu == RtuConnection(port="/dev/ttyS1", baudrate=19200, parity="E")
    assert (rtu.stopbits, rtu.bytesize, rtu.frame_gap) == (1, 8, None)
    dev = site.devices[0]
    assert type(dev) is Device
    assert type(dev.profile) is Profile
    assert all(type(p) is Point for p in dev.points)
    assert dev.kind == dev.profile.kind == "gas"


def test_model_objects_are_frozen() -> None:
    point = Point("ch4", "holding", 0, "int16", scale=0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.scale = 1.0  # type: ignore[misc]
    conn = TcpConnection(port=502)
    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.port = 503  # type: ignore[misc]


@pytest.mark.parametrize("type_name", sorted(REGISTER_WIDTH))
def test_point_width_follows_the_register_table_on_word_kinds(type_name: str) -> None:
    bit = 3 if type_name == "bool" else None
    point = Point("p", "holding", 10, type_name, bit=bit)  # type: ignore[arg-type]
    assert point.width == REGISTER_WIDTH[type_name]


@pytest.mark.parametrize("kind", ["coil", "discrete"])
def test_a_bit_point_spans_one_bit(kind: str) -> None:
    assert Point("p", kind, 7, "bool").width == 1  # type: ignore[arg-type]


def test_fieldmodel_imports_no_other_project_package() -> None:
    code = (
        "import sys, fieldmodel.model, fieldmodel.codec, fieldmodel.quality, "
        "fieldmodel.registers\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'gateway', 'rules', 'simulators', 'console', 'hazardgw', 'pydantic', 'yaml'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""

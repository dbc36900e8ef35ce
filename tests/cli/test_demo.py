"""``hazardgw demo``: runs from the package's own example site; without the ``demo`` extra it
says what to install (exit 2, no traceback); the other packages import without the extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from hazardgw.demo import EXAMPLE_SITE

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


HIDE = "import sys\nfor name in sys.argv[1:]:\n    sys.modules[name] = None  # import fails\n"


@pytest.mark.parametrize(
    ("hidden", "argv", "named"),
    [
        (["rich"], ["demo", "--seconds", "1"], "rich"),
        (["amqtt"], ["demo", "--seconds", "1"], "amqtt"),
        (["rich", "amqtt"], ["demo"], "rich and amqtt"),
        (["rich"], ["demo", "--mqtt", "mqtt://127.0.0.1:9"], "rich"),
    ],
)
def test_demo_without_the_extra_says_what_to_install(
    hidden: list[str], argv: list[str], named: str
) -> None:
    code = HIDE + f"from hazardgw.cli import main\nraise SystemExit(main({argv!r}))\n"
    proc = run_python(code, *hidden)
    assert proc.returncode == 2, proc.stderr
    assert f"hazardgw demo needs {named}," in proc.stderr
    assert "pip install 'hazard-gateway[demo]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_other_module_imports_without_rich_and_amqtt() -> None:
    """Only the demo needs the extra: the gateway, rules, simulators, console and the rest of
    the command line import (and ``hazardgw --help`` runs) with both missing."""
    code = HIDE + textwrap.dedent(
        """
        import importlib, pkgutil
        skip = {"hazardgw.__main__", "hazardgw.live_view"}
        count = 0
        for top in ("gateway", "rules", "simulators", "console", "hazardgw"):
            package = importlib.import_module(top)
            for info in pkgutil.walk_packages(package.__path__, top + "."):
                if info.name not in skip:
                    importlib.import_module(info.name)
                    count += 1
        from hazardgw.cli import main
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0
        print("imported", count)
        """
    )
    proc = run_python(code, "rich", "amqtt")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.rsplit("imported ", 1)[1]) > 50
    assert "hazardgw.demo" not in proc.stderr


def test_the_wheel_carries_the_example_site(tmp_path: Path) -> None:
    """The demo's site file is package data: it is in the wheel, beside the CLI."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("hazard_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"hazardgw/examples/site.yaml", "hazardgw/cli.py", "hazardgw/py.typed"} <= names
    assert "rules/packs/coal_mine.yaml" in names  # the packs the example site names
    assert EXAMPLE_SITE.relative_to(ROOT).as_posix() in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Provides-Extra: demo" in text
    assert 'Requires-Dist: rich>=13; extra == "demo"' in text
    assert not any(
        line.startswith("Requires-Dist: rich") and "extra" not in line for line in text.splitlines()
    )


def test_a_short_demo_run_shows_messages() -> None:
    """Simulators, the embedded broker, the gateway and the view, for a few seconds."""
    proc = subprocess.run(
        [sys.executable, "-m", "hazardgw", "demo", "--seconds", "6", "--speed", "10"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    finished = proc.stdout.rsplit("demo finished: ", 1)[1]
    assert int(finished.split()[0]) > 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr


def test_an_unknown_scenario_is_named_with_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hazardgw.cli import main

    assert main(["demo", "--scenario", "no-such-scenario", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert "--scenario: unknown scenario 'no-such-scenario'; known: " in err
    assert "gas-leak" in err

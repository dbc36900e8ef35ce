"""``python -m simulators -c SITE.yaml [--scenario NAME] [--seed N] [--shard i/n] [--import M]``.

The same as ``hazardgw simulate``, for testers without the gateway's command line. ``--import``
loads a module (dotted name or ``.py`` file) that registers more scenarios first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

from gateway.config import ConfigError, load_site
from simulators.cli import parse_shard, run_simulator
from simulators.errors import SimulatorError
from simulators.scenarios import SCENARIOS


def import_scenarios(name: str) -> None:
    """Import a module of scenarios by dotted name or by ``.py`` path."""
    if name.endswith(".py"):
        path = Path(name)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SimulatorError(f"cannot import scenarios from {name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve until interrupted; exit 2 on a bad config or scenario."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("-c", "--config", help="site config YAML")
    parser.add_argument("--scenario", default="normal", help="a registered scenario name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=parse_shard, default=None, help="i/n")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="module or .py file registering scenarios (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        for name in args.imports:
            import_scenarios(name)
        if args.list:
            for name, entry in sorted(SCENARIOS.items()):
                print(f"{name:18} {entry.description}")
            return 0
        if args.config is None:
            parser.error("-c/--config is required")
        site = load_site(args.config)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulator(site, args.scenario, args.seed, args.shard))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SimulatorError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m simulators -c SITE.yaml [--scenario NAME] [--seed N] [--shard i/n]``.

The same as ``hazardgw simulate``, for testers without the gateway's command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from gateway.config import ConfigError, load_site
from simulators.cli import parse_shard, run_simulator
from simulators.errors import SimulatorError
from simulators.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve until interrupted; exit 2 on a bad config or scenario."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="site config YAML")
    parser.add_argument("--scenario", default="normal", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=parse_shard, default=None, help="i/n")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
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

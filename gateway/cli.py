"""``hazardgw``: run the gateway, simulate a site, check a config, run the demo.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or a bad config file (every problem is
printed with its key path; never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.config import SiteConfig, load_site
from gateway.errors import ConfigError

__all__ = ["main"]

log = logging.getLogger("hazardgw")
EXIT_CONFIG = 2


def _load(path: str) -> SiteConfig:
    try:
        return load_site(path)
    except ConfigError as exc:
        n = len(exc.issues)
        print(f"{path}: {n} problem{'s' if n != 1 else ''}:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/", 1))
    except ValueError:
        raise SystemExit(f"--shard: expected i/n such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise SystemExit(f"--shard: need 0 <= i < n, got {text!r}")
    return i, n


async def _run_until_signal(coro_factory: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await coro_factory(stop)  # type: ignore[operator]


# ---------------------------------------------------------------------------- verbs


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.drivers.modbus.planner import plan_reads

    site = _load(args.config)
    n_points = sum(len(d.points) for d in site.devices)
    print(f"site {site.site.id} ({site.site.name or 'no name'}): OK")
    print(f"  MQTT {site.mqtt.url} prefix {site.mqtt.topic_prefix}/{site.site.id}")
    print(f"  InfluxDB {site.influx.url if site.influx else '(none)'}")
    print(f"  rule packs: {', '.join(p.name for p in site.rules) or '(none)'}")
    print(f"  {len(site.devices)} devices, {n_points} points")
    total_requests = 0
    for dev in site.devices:
        plan = plan_reads(dev.points, max_gap=dev.max_gap)
        total_requests += len(plan.requests)
        conn = dev.connection
        where = getattr(conn, "host", None)
        endpoint = f"{where}:{conn.port}" if where else str(conn.port)
        print(
            f"  - {dev.id}: {dev.profile.name} ({dev.kind}) {conn.transport} {endpoint} "
            f"unit {dev.unit}, every {dev.poll_interval:g} s, {len(dev.points)} points, "
            f"{len(plan.requests)} requests"
        )
        for line in plan.describe(dev.points):
            print(f"      {line}")
    print(f"  read plan: {total_requests} requests per cycle")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import Gateway

    site = _load(args.config)
    _setup_logging(args.log_level)
    mqtt = site.mqtt.model_copy(update={"url": args.mqtt}) if args.mqtt else None
    gw = Gateway(site, mqtt=mqtt)
    asyncio.run(_run_until_signal(gw.run))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators import SCENARIOS, run_simulator

    site = _load(args.config)
    if args.scenario not in SCENARIOS:
        print(
            f"--scenario: unknown scenario {args.scenario!r}; "
            f"known: {', '.join(sorted(SCENARIOS))}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    _setup_logging(args.log_level)
    shard = _parse_shard(args.shard)

    async def go(stop: asyncio.Event) -> None:
        await run_simulator(site, args.scenario, args.seed, shard=shard, stop=stop)

    asyncio.run(_run_until_signal(go))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    _setup_logging("WARNING")
    return int(
        asyncio.run(run_demo(seconds=args.seconds, mqtt_url=args.mqtt, scenario=args.scenario))
    )


def cmd_dashboards(args: argparse.Namespace) -> int:
    from gateway.dashboards import push_dashboards

    token = os.environ.get(args.token_env)
    if not token:
        print(f"--token-env: environment variable {args.token_env} is not set", file=sys.stderr)
        return EXIT_CONFIG
    for uid in push_dashboards(args.url, token, args.folder):
        print(f"pushed {uid}")
    return 0


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hazardgw", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"hazardgw {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config", required=True, help="site config YAML")

    sp = sub.add_parser("run", help="run the gateway")
    with_config(sp)
    sp.add_argument("--mqtt", help="override mqtt.url (mqtt://host:port)")
    sp.add_argument("--log-level", default="INFO")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("simulate", help="serve every device of a site from simulators")
    with_config(sp)
    sp.add_argument("--scenario", default="normal")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--shard", help="serve only devices i, i+n, ... (i/n)")
    sp.add_argument("--log-level", default="INFO")
    sp.set_defaults(func=cmd_simulate)

    sp = sub.add_parser("check", help="validate a site config and print the read plan")
    with_config(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("demo", help="simulators + broker + gateway + live view")
    sp.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    sp.add_argument("--mqtt", help="use this broker instead of the embedded one")
    sp.add_argument("--scenario", default="gas-leak")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("dashboards", help="Grafana boards")
    dsub = sp.add_subparsers(dest="action", required=True)
    push = dsub.add_parser("push", help="upload the boards through the Grafana API")
    push.add_argument("--url", required=True)
    push.add_argument("--token-env", required=True, help="environment variable with the token")
    push.add_argument("--folder", default="Hazard gateway")
    push.set_defaults(func=cmd_dashboards)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``hazardgw``: run the gateway, simulate a site, check a config, run the demo, probe a line.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or a bad config file (every problem is
printed with its key path; never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

from fieldmodel.registers import REGISTER_KINDS, REGISTER_WIDTH, WORD_KINDS
from gateway import __version__
from gateway.config import SiteConfig, load_site
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.drivers.modbus.link import ModbusLink
    from rules import RuleEngine

__all__ = ["main"]

log = logging.getLogger("hazardgw")
EXIT_CONFIG = 2


def _load(path: str, *, check_rules: bool = True) -> SiteConfig:
    """Load and check a site file and its rule packs; on any problem print them and exit 2.

    ``check_rules=False`` leaves binding the packs to the caller (the gateway binds them itself;
    compiling them twice would double a large site's start-up)."""
    try:
        site = load_site(path)
    except ConfigError as exc:
        n = len(exc.issues)
        print(f"{path}: {n} problem{'s' if n != 1 else ''}:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    if site.rules and check_rules:
        _bind_rules(path, site)
    return site


def _bind_rules(path: str, site: SiteConfig) -> RuleEngine:
    """The site's rules bound to its points; on a rule problem print it and exit 2."""
    from gateway.alarm_service import build_engine
    from gateway.points import PointTable
    from rules import RulesConfigError

    try:
        return build_engine(site, PointTable(site.devices))
    except RulesConfigError as exc:
        _rules_error(path, exc)


def _rules_error(path: str, exc: Exception) -> NoReturn:
    print(f"{path}: rules: {exc}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )


async def _run_until_signal(coro_factory: object) -> None:
    """Run ``coro_factory(stop)``; SIGINT or SIGTERM sets ``stop`` (an orderly stop), a second
    one cancels the run (stop now, delivering nothing more)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    forced = False

    def on_signal() -> None:
        nonlocal forced
        if not stop.is_set():
            stop.set()
        elif main is not None and not forced:
            forced = True
            log.warning("second stop signal: stopping now, without waiting for deliveries")
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    try:
        await coro_factory(stop)  # type: ignore[operator]
    except asyncio.CancelledError:
        if not forced:
            raise


# ---------------------------------------------------------------------------- verbs


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.drivers.modbus.planner import plan_reads

    site = _load(args.config, check_rules=False)
    engine = _bind_rules(args.config, site) if site.rules else None
    n_points = sum(len(d.points) for d in site.devices)
    print(f"site {site.site.id} ({site.site.name or 'no name'}): OK")
    print(f"  MQTT {' '.join(site.mqtt.brokers)} prefix {site.mqtt.topic_prefix}/{site.site.id}")
    print(f"  InfluxDB {site.influx.url if site.influx else '(none)'}")
    if site.outbox is not None:
        print(f"  outbox {site.outbox.path} (bound {site.outbox.max_mb:g} MB)")
    else:
        print("  outbox OFF (outbox.enabled: false): undelivered messages are lost on a stop")
    print(f"  shutdown_timeout {site.shutdown_timeout:g} s")
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
    if engine is not None:
        _print_rule_gaps(engine)
    if args.probe:
        return _check_probe(site)
    return 0


def _print_rule_gaps(engine: RuleEngine) -> None:
    """What the gateway logs at start as WARNING and lists in its status: looser limits and
    rules whose alarm does not exist on a device for want of a point."""
    plan = engine.plan
    for lo in plan.loosened:
        print(
            f"  WARNING {lo.device}: {lo.rule} {lo.level} {lo.key} {lo.value:g} is looser than "
            f"the table's {lo.table:g} (limits_reason: {lo.reason})"
        )
    if plan.missing_points:
        print(f"  WARNING {len(plan.missing_points)} alarms do not exist (device lacks a point):")
    for gap in plan.missing_points:
        print(f"    - {gap.device}: rule {gap.rule} needs {', '.join(gap.points)}")


def _check_probe(site: SiteConfig) -> int:
    """Connect to every device, learn what it refuses, print the learned plans."""
    from gateway.drivers.modbus.probe import discover_site

    print("probing devices (adaptive read plans):")
    found = asyncio.run(discover_site(site))
    failed = 0
    for d in found:
        if d.error is not None:
            failed += 1
            print(f"  - {d.device.id}: FAILED: {d.error}")
            continue
        plan = d.reader.plan
        refused = d.reader.describe_refused()
        print(f"  - {d.device.id}: OK, {len(plan.requests)} requests, refuses {refused}")
        for line in plan.describe(d.device.points):
            print(f"      {line}")
    print(f"  {len(found) - failed} of {len(found)} devices answered")
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import Gateway
    from rules import RulesConfigError

    site = _load(args.config, check_rules=False)
    _setup_logging(args.log_level)
    mqtt = site.mqtt.model_copy(update={"url": args.mqtt, "urls": None}) if args.mqtt else None
    try:
        gw = Gateway(site, mqtt=mqtt)
    except RulesConfigError as exc:
        _rules_error(args.config, exc)
    asyncio.run(_run_until_signal(gw.run))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators import SCENARIOS, run_simulator
    from simulators.cli import parse_shard

    site = _load(args.config)
    if args.scenario not in SCENARIOS:
        print(
            f"--scenario: unknown scenario {args.scenario!r}; "
            f"known: {', '.join(sorted(SCENARIOS))}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        shard = None if args.shard is None else parse_shard(args.shard)
    except ValueError as exc:
        print(f"--shard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(args.log_level)

    async def go(stop: asyncio.Event) -> None:
        await run_simulator(site, args.scenario, args.seed, shard=shard, stop=stop)

    asyncio.run(_run_until_signal(go))
    return 0


#: What ``hazardgw demo`` needs beyond the gateway: the live view, and the embedded broker when
#: no ``--mqtt`` is given (the ``demo`` extra).
DEMO_EXTRA: Final = ("rich", "amqtt")


def missing_modules(names: Sequence[str]) -> list[str]:
    """The modules of ``names`` that cannot be imported here."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def cmd_demo(args: argparse.Namespace) -> int:
    needed = [m for m in DEMO_EXTRA if not (m == "amqtt" and args.mqtt)]
    missing = missing_modules(needed)
    if missing:
        print(
            f"hazardgw demo needs {' and '.join(missing)}, which are not installed: "
            "pip install 'hazard-gateway[demo]' (or `make demo` in a checkout)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from hazardgw.demo import run_demo
    from simulators import SCENARIOS, EndpointError

    if args.scenario not in SCENARIOS:
        print(
            f"--scenario: unknown scenario {args.scenario!r}; "
            f"known: {', '.join(sorted(SCENARIOS))}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    _setup_logging("WARNING")
    try:
        return int(
            asyncio.run(
                run_demo(
                    seconds=args.seconds,
                    mqtt_url=args.mqtt,
                    scenario=args.scenario,
                    speed=args.speed,
                )
            )
        )
    except EndpointError as exc:  # every free port taken by others, PORT_ATTEMPTS times
        print(f"hazardgw demo: {exc}", file=sys.stderr)
        return 1


def cmd_dashboards(args: argparse.Namespace) -> int:
    from gateway.dashboards import DashboardsError, push_dashboards

    token = os.environ.get(args.token_env)
    if not token:
        print(f"--token-env: environment variable {args.token_env} is not set", file=sys.stderr)
        return EXIT_CONFIG
    try:
        uids = push_dashboards(args.url, token, args.folder)
    except DashboardsError as exc:
        print(f"dashboards push: {exc}", file=sys.stderr)
        return 1
    for uid in uids:
        print(f"pushed {uid}")
    return 0


def _line_link(args: argparse.Namespace) -> ModbusLink:
    from gateway.drivers.modbus.link import ModbusLink
    from gateway.drivers.modbus.probe import build_connection

    conn = build_connection(
        host=args.host,
        port=args.port,
        serial=args.serial,
        baudrate=args.baudrate,
        parity=args.parity,
        stopbits=args.stopbits,
        rtu_over_tcp=args.rtu_over_tcp,
        frame_gap=args.frame_gap,
    )
    return ModbusLink(conn, timeout=args.timeout)


def cmd_probe(args: argparse.Namespace) -> int:
    from gateway.drivers.modbus.probe import describe_connection, format_probe, probe
    from gateway.errors import DeviceError

    if args.type == "bool" and args.register in WORD_KINDS:
        print("--type bool: read coils or discrete inputs with --register", file=sys.stderr)
        return EXIT_CONFIG
    try:
        link = _line_link(args)
    except ValueError as exc:
        print(f"hazardgw probe: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def go() -> int:
        where = describe_connection(link.conn)
        try:
            result = await probe(
                link,
                unit=args.unit,
                kind=args.register,
                address=args.address,
                count=args.count,
                timeout=args.timeout,
            )
        except ValueError as exc:
            print(f"hazardgw probe: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except DeviceError as exc:
            print(f"{where}: {exc}", file=sys.stderr)
            return 1
        finally:
            link.close()
        print(f"{where} unit {args.unit}: {args.register} {args.address}+{args.count}")
        for line in format_probe(result, type_name=args.type, order=args.order):
            print(line)
        return 0

    return asyncio.run(go())


def cmd_scan(args: argparse.Namespace) -> int:
    from gateway.drivers.modbus.probe import describe_connection, parse_units, scan
    from gateway.errors import DeviceError

    try:
        units = parse_units(args.units)
        link = _line_link(args)
    except ValueError as exc:
        print(f"hazardgw scan: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def go() -> int:
        where = describe_connection(link.conn)
        try:
            await link.connect("scan", max(args.timeout, 1.0))
        except DeviceError as exc:
            link.close()
            print(f"{where}: {exc}", file=sys.stderr)
            return 1
        print(f"scanning {where}, units {args.units}, {args.timeout:g} s each")
        try:
            hits = await scan(
                link, units, kind=args.register, address=args.address, timeout=args.timeout
            )
        finally:
            link.close()
        for hit in hits:
            print(f"  unit {hit.unit}: {hit.answer}")
        found = ", ".join(str(h.unit) for h in hits) or "none"
        print(f"{len(hits)} unit(s) answer: {found}")
        return 0 if hits else 1

    return asyncio.run(go())


def cmd_ingest(args: argparse.Namespace) -> int:
    """A platform ingest worker: the NATS JetStream stream -> the time-series database."""
    try:
        from gateway.ingest.worker import IngestWorker, run_event_loop
    except ImportError as exc:  # nats-py is the `platform` extra
        print(
            f"hazardgw ingest needs nats-py ({exc}): pip install 'hazard-gateway[platform]'",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from gateway.ingest.config import load_ingest
    from gateway.sinks.influx import InfluxSinkError, influx_token

    urls = [u.strip() for u in args.nats.split(",") if u.strip()] if args.nats else None
    try:
        cfg = load_ingest(args.config, nats_urls=urls, stream=args.stream)
        token = influx_token(cfg.influx)
    except ConfigError as exc:
        n = len(exc.issues)
        print(f"{args.config}: {n} problem{'s' if n != 1 else ''}:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_CONFIG
    except InfluxSinkError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(args.log_level)
    name = args.name or f"ingest-{socket.gethostname()}-{os.getpid()}"
    worker = IngestWorker(cfg, token=token, name=name, stats_interval=args.stats_interval)
    run_event_loop(_run_until_signal(worker.run))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    """Serve the alarm console (``console`` is imported only here: the gateway never needs it)."""
    from console._serve import (
        ConsoleSettings,
        pack_paths,
        parse_listen,
        parse_mqtt_url,
        serve,
        site_list,
    )

    problems = []
    if not args.mqtt:
        problems.append("--mqtt: required (mqtt://host:port)")
    if not args.users:
        problems.append("--users: required (made with `hazardgw console adduser`)")
    host, port = "", 0
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        if args.mqtt:
            parse_mqtt_url(args.mqtt)
    except ValueError as exc:
        problems.append(str(exc))
    if bool(args.tls_cert) != bool(args.tls_key):
        problems.append("--tls-cert and --tls-key go together")
    for option, name in (
        ("--mqtt-username-env", args.mqtt_username_env),
        ("--mqtt-password-env", args.mqtt_password_env),
    ):
        if name and name not in os.environ:
            problems.append(f"{option}: environment variable {name} is not set")
    if problems:
        for problem in problems:
            print(f"hazardgw console: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    secret = os.environ.get(args.secret_env, "")
    _setup_logging(args.log_level)
    if not secret:
        import secrets

        log.warning(
            "%s is not set: sessions are signed with a key made now and end on restart",
            args.secret_env,
        )
        secret = secrets.token_urlsafe(32)
    settings = ConsoleSettings(
        mqtt_url=args.mqtt,
        prefix=args.prefix,
        sites=site_list(args.sites),
        host=host,
        port=port,
        users=Path(args.users),
        secret=secret,
        mqtt_username=os.environ.get(args.mqtt_username_env or "") or None,
        mqtt_password=os.environ.get(args.mqtt_password_env or "") or None,
        mqtt_ca=Path(args.mqtt_ca) if args.mqtt_ca else None,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        rule_packs=pack_paths(args.rules),
    )

    async def go(stop: asyncio.Event) -> None:
        await serve(settings, stop)

    asyncio.run(_run_until_signal(go))
    return 0


def cmd_console_adduser(args: argparse.Namespace) -> int:
    import getpass

    from console import UserFile, UserFileError

    users = UserFile(Path(args.users))
    if args.if_missing:
        try:
            if args.name in users.read():
                print(f"{args.name} is already in {args.users}: left as it is")
                return 0
        except UserFileError as exc:
            print(f"hazardgw console adduser: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("hazardgw console adduser: the passwords differ", file=sys.stderr)
            return EXIT_CONFIG
    try:
        new = users.add(args.name, args.role, password)
    except UserFileError as exc:
        print(f"hazardgw console adduser: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{'added' if new else 'updated'} {args.name} ({args.role}) in {args.users}")
    return 0


# ---------------------------------------------------------------------------- parser


def _with_line(sp: argparse.ArgumentParser, timeout: float) -> None:
    """Connection options of ``probe`` and ``scan``."""
    g = sp.add_argument_group("connection (--host for TCP / serial servers, --serial for RTU)")
    g.add_argument("--host", help="Modbus TCP device or serial server")
    g.add_argument("--port", type=int, help="TCP port (default 502)")
    g.add_argument("--rtu-over-tcp", action="store_true", help="raw RTU frames over TCP")
    g.add_argument("--serial", metavar="DEV", help="serial port, e.g. /dev/ttyUSB0")
    g.add_argument("--baudrate", type=int, default=9600)
    g.add_argument("--parity", choices=("N", "E", "O"), default="N")
    g.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
    g.add_argument("--frame-gap", type=float, help="seconds between frames (default 3.5 chars)")
    g.add_argument("--timeout", type=float, default=timeout, help=f"seconds (default {timeout:g})")
    sp.add_argument("--register", choices=REGISTER_KINDS, default="holding")
    sp.add_argument("--address", type=int, default=0, help="0-based protocol address")


def cmd_report_daily(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from gateway.report import DailyStore, report_directory, write_report

    site = _load(args.config, check_rules=False)
    try:
        day = dt.date.fromisoformat(args.date) if args.date else None
    except ValueError:
        print(f"--date: expected YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return EXIT_CONFIG
    directory = report_directory(site)
    store = DailyStore(directory)
    if day is None:  # the day before today in the site's time zone
        day = dt.datetime.now(site.site.zone).date() - dt.timedelta(days=1)
    try:
        stats = store.load_day(day)
    except (OSError, ValueError, KeyError) as exc:
        print(f"{directory}: cannot read the data of {day}: {exc}", file=sys.stderr)
        return 1
    if stats is None:
        kept = ", ".join(d.isoformat() for d in store.days()) or "none"
        print(f"no daily report data for {day} in {directory} (days kept: {kept})", file=sys.stderr)
        return 1
    out = Path(args.out)
    try:
        csv_path, html_path = write_report(stats, site, out)
    except OSError as exc:
        print(f"--out: cannot write the report into {out}: {exc}", file=sys.stderr)
        return 1
    note = "" if stats.complete else " (the day is not over: the report shows it so far)"
    print(f"daily report {day} of {site.site.id}{note}:\n  {csv_path}\n  {html_path}")
    return 0


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
    sp.add_argument(
        "--probe", action="store_true", help="connect to each device and learn its read plan"
    )
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("probe", help="read raw registers from one unit and decode them")
    _with_line(sp, timeout=1.0)
    sp.add_argument("--unit", type=int, default=1, help="Modbus unit id (default 1)")
    sp.add_argument("--count", type=int, default=2, help="registers or bits to read (default 2)")
    sp.add_argument("--type", choices=sorted(REGISTER_WIDTH), help="decode as this type")
    sp.add_argument("--order", choices=("ABCD", "CDAB", "BADC", "DCBA"), help="default: all four")
    sp.set_defaults(func=cmd_probe)

    sp = sub.add_parser("scan", help="list the unit ids that answer on a line")
    _with_line(sp, timeout=0.2)
    sp.add_argument("--units", default="1-247", help="unit ids, e.g. 1-247 or 1,2,5-9")
    sp.set_defaults(func=cmd_scan)

    sp = sub.add_parser("demo", help="simulators + broker + gateway + live view")
    sp.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    sp.add_argument("--mqtt", help="use this broker instead of the embedded one")
    sp.add_argument("--scenario", default="gas-leak")
    sp.add_argument(
        "--speed", type=float, default=3.0, help="scenario time per wall-clock second (default 3)"
    )
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser(
        "ingest", help="platform worker: every site's messages from NATS JetStream to InfluxDB"
    )
    sp.add_argument("-c", "--config", required=True, help="ingest config YAML")
    sp.add_argument("--nats", help="NATS servers, comma-separated (overrides nats.urls)")
    sp.add_argument("--stream", help="JetStream stream name (overrides nats.stream)")
    sp.add_argument("--name", help="worker name in logs and NATS (default: host and pid)")
    sp.add_argument(
        "--stats-interval", type=float, default=10.0, help="seconds between stats log lines"
    )
    sp.add_argument("--log-level", default="INFO")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("dashboards", help="Grafana boards")
    dsub = sp.add_subparsers(dest="action", required=True)
    push = dsub.add_parser("push", help="upload the boards through the Grafana API")
    push.add_argument("--url", required=True)
    push.add_argument("--token-env", required=True, help="environment variable with the token")
    push.add_argument("--folder", default="Hazard gateway")
    push.set_defaults(func=cmd_dashboards)

    sp = sub.add_parser("report", help="reports from the data the gateway keeps")
    rsub = sp.add_subparsers(dest="report", required=True)
    daily = rsub.add_parser(
        "daily", help="the 24-hour report of one day: a CSV and a self-contained HTML page"
    )
    with_config(daily)
    daily.add_argument("--date", help="the local day, YYYY-MM-DD (default: yesterday)")
    daily.add_argument("--out", required=True, help="directory to write the report into")
    daily.set_defaults(func=cmd_report_daily)

    sp = sub.add_parser("console", help="the control room's alarm console (a web page)")
    sp.add_argument("--mqtt", help="broker URL, mqtt://host:port or mqtts://host:port")
    sp.add_argument("--prefix", default="hazard", help="topic prefix (default hazard)")
    sp.add_argument("--sites", help="site ids to watch, a,b,c (default: every site)")
    sp.add_argument("--listen", default="127.0.0.1:8080", help="host:port (default 127.0.0.1:8080)")
    sp.add_argument("--users", help="users file (made with `hazardgw console adduser`)")
    sp.add_argument(
        "--secret-env",
        default="HAZARDGW_CONSOLE_SECRET",
        help="environment variable with the session signing key (default HAZARDGW_CONSOLE_SECRET)",
    )
    sp.add_argument("--mqtt-username-env", help="environment variable with the broker user")
    sp.add_argument("--mqtt-password-env", help="environment variable with the broker password")
    sp.add_argument("--mqtt-ca", help="CA file for mqtts://")
    sp.add_argument("--tls-cert", help="serve HTTPS with this certificate (and --tls-key)")
    sp.add_argument("--tls-key", help="private key of --tls-cert")
    sp.add_argument("--rules", nargs="*", help="rule packs for titles (default: the built-in ones)")
    sp.add_argument("--log-level", default="INFO")
    sp.set_defaults(func=cmd_console)
    csub = sp.add_subparsers(dest="console_action")
    add = csub.add_parser("adduser", help="add or update a console user")
    add.add_argument("name", help="user name (letters, digits, . _ @ -)")
    add.add_argument("--users", required=True, help="users file (created if missing)")
    add.add_argument("--role", choices=("operator", "viewer"), default="operator")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.add_argument(
        "--if-missing", action="store_true", help="leave an existing user as it is (first start)"
    )
    add.set_defaults(func=cmd_console_adduser)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hazardgw check ... | head`: the reader left; not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (stdout must stay open at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``homewatch`` command line (SPEC §1)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from gateway.config import ConfigError, Settings, load_settings, parse_duration
from gateway.storage.db import Database, migrate

__all__ = ["main"]

log = logging.getLogger("homewatch")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """Every command that touches the database brings it to the latest migration first."""
    keyring = settings.keyring()
    if keyring.is_development:
        log.warning(
            "no HOMEWATCH_SECRET_KEY or HOMEWATCH_DATA_KEY: personal data is encrypted under "
            "the public development key until `homewatch run` re-encrypts it"
        )
    await migrate(settings.database_url, keyring)
    db = Database(settings.database_url, keyring=keyring)
    try:
        yield db
    finally:
        await db.dispose()


# -- run ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import run_gateway

    settings = _settings(args)
    asyncio.run(run_gateway(settings, run_migrations=not args.no_migrate))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(migrate(settings.database_url, settings.keyring()))
    print("database is at the latest migration")
    return 0


# -- provision ----------------------------------------------------------------------------


def cmd_provision(args: argparse.Namespace) -> int:
    from gateway.register.apply import apply_provisioning
    from gateway.register.provisioning import ProvisioningError, parse_provisioning

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        print(f"cannot read {path}: {error}", file=sys.stderr)
        return 2
    try:
        doc = parse_provisioning(text, source=str(path))
    except ProvisioningError as error:
        print(f"{path}: refused, nothing was changed:\n{error}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"{path}: valid ({len(doc.persons)} persons, {len(doc.helpers)} helpers)")
        return 0
    settings = _settings(args)

    async def apply() -> list[str]:
        async with _database(settings) as db:
            report = await apply_provisioning(db, doc, datetime.now(UTC))
        return report.lines()

    for line in asyncio.run(apply()):
        print(line)
    return 0


# -- users --------------------------------------------------------------------------------


def cmd_user_add(args: argparse.Namespace) -> int:
    from gateway.register.phones import normalize_phone
    from gateway.register.service import RecordRefusedError, RegisterService
    from gateway.register.vocabulary import Role
    from gateway.storage.models import Helper, Village

    try:
        role = Role(args.role)
    except ValueError:
        print(f"--role must be one of {', '.join(r.value for r in Role)}", file=sys.stderr)
        return 2
    password = (
        getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    )
    settings = _settings(args)

    async def add() -> int:
        async with _database(settings) as db, db.session() as session, session.begin():
            register = RegisterService(session, actor="cli", now=datetime.now(UTC))
            village_id = helper_id = None
            if role is Role.VILLAGE_OFFICER:
                if not args.village:
                    print("a village_officer needs --village", file=sys.stderr)
                    return 2
                village = (
                    await session.execute(select(Village).where(Village.name == args.village))
                ).scalar_one_or_none()
                if village is None:
                    print(f"no village {args.village!r} in the register", file=sys.stderr)
                    return 2
                village_id = village.id
            if role is Role.HELPER:
                if not args.phone:
                    print("a helper user needs --phone (the helper's phone)", file=sys.stderr)
                    return 2
                phone = normalize_phone(args.phone)
                helper = (
                    await session.execute(select(Helper).where(Helper.phone_bidx == phone))
                ).scalar_one_or_none()
                if helper is None:
                    print(f"no helper with phone {phone}", file=sys.stderr)
                    return 2
                helper_id = helper.id
            values = {"role": role.value, "village_id": village_id, "helper_id": helper_id}
            try:
                outcome = await register.set_user(args.username, values, password=password)
            except RecordRefusedError as error:
                print(error.message, file=sys.stderr)
                return 2
            print(f"user {args.username} {'created' if outcome == 'created' else 'updated'}")
        return 0

    return asyncio.run(add())


# -- register (台账) ------------------------------------------------------------------------


def cmd_register_export(args: argparse.Namespace) -> int:
    from gateway.register.ledger_io import export_ledger

    settings = _settings(args)

    async def run() -> int:
        async with _database(settings) as db:
            result = await export_ledger(
                db,
                village=args.village,
                month=args.month,
                output=Path(args.output),
                tz=settings.tz,
            )
            await audit_export(db, "register", args.village, {"month": args.month})
            return result

    return asyncio.run(run())


def cmd_register_import(args: argparse.Namespace) -> int:
    from gateway.register.ledger_io import import_ledger

    settings = _settings(args)

    async def run() -> int:
        async with _database(settings) as db:
            return await import_ledger(
                db, Path(args.file), village=args.village, dry_run=args.dry_run
            )

    return asyncio.run(run())


def cmd_register_annual(args: argparse.Namespace) -> int:
    from gateway.register.annual_io import annual_workbook

    settings = _settings(args)

    async def run() -> bytes:
        async with _database(settings) as db:
            async with db.session() as session:
                data = await annual_workbook(session, args.year, settings.tz)
            await audit_export(db, "annual_summary", args.year, {})
            return data

    output = Path(args.output)
    output.write_bytes(asyncio.run(run()))
    print(f"{output}: annual summary {args.year}")
    return 0


async def audit_export(
    db: Database, entity: str, entity_id: object, detail: dict[str, object]
) -> None:
    from gateway.audit import record_now

    await record_now(
        db,
        now=datetime.now(UTC),
        actor="cli",
        action="export",
        entity=entity,
        entity_id=str(entity_id),
        detail=detail,
    )


# -- simulate / demo ------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.cli import run as run_simulator

    return run_simulator(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import DemoError, DemoOptions, run_demo

    # The demo narrates on stdout; routine INFO logs would drown the SMS and calls.
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    options = DemoOptions(
        speed=args.speed,
        port=args.port if args.port is not None else 8080,
        port_fallback=args.port is None,
        mqtt_port=args.mqtt_port,
        households=args.households,
        directory=args.dir,
        duration=args.duration,
        config=args.config,
        seed=args.seed,
    )
    try:
        return asyncio.run(run_demo(options))
    except DemoError as error:
        print(f"homewatch demo: {error}", file=sys.stderr)
        return 2


# -- replay -------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.register.provisioning import ProvisioningError
    from gateway.replay import ReplayError, ReplayRequest, run_replay

    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    settings = _settings(args)
    request = ReplayRequest(
        output=Path(args.output),
        register_file=Path(args.register) if args.register else None,
        events_file=Path(args.events) if args.events else None,
        from_db=args.from_db,
        since=args.since,
        resolve_after=args.resolve_after or None,
    )
    try:
        rows = asyncio.run(run_replay(request, settings))
    except (ReplayError, ProvisioningError) as error:
        print(f"homewatch replay: {error}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["type"]] = counts.get(row["type"], 0) + 1
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none"
    print(f"{args.output}: {len(rows)} alerts ({summary})")
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(kind: type[float] | type[int]) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return convert


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _global_options(parser: argparse.ArgumentParser, *, given_only: bool) -> None:
    """``--config`` and ``-v``, accepted before and after the subcommand.

    A subparser writes its defaults over the namespace the main parser filled, so in the
    subcommands (``given_only``) the options default to "absent": ``homewatch --config
    x.yaml run`` keeps ``x.yaml`` instead of silently losing it to ``run``'s default.
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration (or HOMEWATCH_CONFIG)",
        default=argparse.SUPPRESS if given_only else None,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging",
        default=argparse.SUPPRESS if given_only else False,
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, given_only=True)
    parser = argparse.ArgumentParser(
        prog="homewatch", description="Homewatch (智慧看家) smart home-watch gateway"
    )
    _global_options(parser, given_only=False)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", parents=[common], help="the production gateway")
    run.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    run.set_defaults(func=cmd_run)

    mig = commands.add_parser("migrate", parents=[common], help="apply database migrations")
    mig.set_defaults(func=cmd_migrate)

    prov = commands.add_parser("provision", parents=[common], help="load a provisioning file")
    prov.add_argument("file", metavar="FILE.yaml")
    prov.add_argument("--dry-run", action="store_true", help="validate only")
    prov.set_defaults(func=cmd_provision)

    user = commands.add_parser("user", parents=[common], help="manage API users")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", parents=[common], help="add or update a user")
    add.add_argument("username")
    add.add_argument("--role", required=True)
    add.add_argument("--village")
    add.add_argument("--phone", help="a helper user's phone (must be a registered helper)")
    add.set_defaults(func=cmd_user_add)

    register = commands.add_parser("register", parents=[common], help="the 台账 workbook")
    register_commands = register.add_subparsers(dest="register_command", required=True)
    export = register_commands.add_parser("export", parents=[common])
    export.add_argument("--village", help="one village (default: every village, a sheet each)")
    export.add_argument("--month", help="YYYY-MM: the register as of the end of that month")
    export.add_argument("-o", "--output", required=True, metavar="FILE.xlsx")
    export.set_defaults(func=cmd_register_export)
    imp = register_commands.add_parser("import", parents=[common])
    imp.add_argument("file", metavar="FILE.xlsx")
    imp.add_argument("--village", required=True)
    imp.add_argument("--dry-run", action="store_true", help="report what would change")
    imp.set_defaults(func=cmd_register_import)
    annual = register_commands.add_parser(
        "annual", parents=[common], help="the year's summary (对象、走访、告警统计)"
    )
    annual.add_argument("--year", type=int, required=True)
    annual.add_argument("-o", "--output", required=True, metavar="FILE.xlsx")
    annual.set_defaults(func=cmd_register_annual)

    simulate = commands.add_parser("simulate", parents=[common], help="simulated homes")
    try:
        from simulator.cli import configure_parser
    except ImportError:  # pragma: no cover - the simulator ships with the gateway
        pass
    else:
        configure_parser(simulate)
    simulate.set_defaults(func=cmd_simulate)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="the whole system on this machine: broker, database, homes, API",
        description="Embedded MQTT broker, SQLite file, the town's demo register, simulated "
        "homes and the gateway with its API, in one process. Ctrl-C stops it.",
    )
    demo.add_argument(
        "--speed",
        type=_positive(float),
        default=60.0,
        metavar="N",
        help="simulated time runs N times faster (default 60: an hour a minute)",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="P",
        help="HTTP port (default 8080, or a free one when 8080 is taken)",
    )
    demo.add_argument(
        "--mqtt-port",
        type=int,
        default=None,
        metavar="P",
        help="embedded MQTT broker's port (default: a free one)",
    )
    demo.add_argument(
        "--households",
        type=_positive(int),
        default=12,
        metavar="N",
        help="simulated homes with sensors, the pilot village 坝芒村 first (default 12)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, metavar="S", help="same seed, same homes and people"
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the SQLite file and the demo's files go (default ./homewatch-demo)",
    )
    demo.add_argument(
        "--duration",
        type=_duration,
        default=None,
        metavar="D",
        help="stop by itself after D of real time (90s, 5m; default: until Ctrl-C)",
    )
    demo.set_defaults(func=cmd_demo)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="what-if: the rules over a recorded event log, nothing sent (SPEC §12)",
        description="Runs the gateway's adapters and rules over recorded MQTT messages (or a "
        "database's stored events) with a simulated clock and writes the alerts that would "
        "have been raised, one JSON object a line. Nothing is sent.",
    )
    replay.add_argument("--register", metavar="FILE.yaml", help="provisioning file (§4)")
    replay.add_argument("--events", metavar="FILE.jsonl", help="recorded messages, in order")
    replay.add_argument(
        "--from-db",
        action="store_true",
        help="replay the stored events and register of HOMEWATCH_DATABASE_URL (read only)",
    )
    replay.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="with --from-db")
    replay.add_argument(
        "--resolve-after",
        type=_duration,
        default=timedelta(hours=1),
        metavar="D",
        help="an emergency or wellbeing alert nobody closed counts as resolved by its helper "
        "after D (default 1h; 0 keeps it open)",
    )
    replay.add_argument("-o", "--output", required=True, metavar="ALERTS.jsonl")
    replay.set_defaults(func=cmd_replay)

    from gateway.cli_trust import add_trust_commands

    add_trust_commands(commands, user_commands, common)
    return parser


def _only_applied_migrations(record: logging.LogRecord) -> bool:
    """Alembic's INFO lines on every command ("Context impl SQLiteImpl", "Will assume
    transactional DDL") say nothing; a migration actually applied is worth a line."""
    return record.levelno > logging.INFO or record.getMessage().startswith("Running upgrade")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("alembic.runtime.migration").addFilter(_only_applied_migrations)
    try:
        result: int = args.func(args)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())

"""Command-line verbs of SPEC §10: ``rotate-key``, ``user disable``, ``mqtt-credentials``.

Kept out of gateway/cli.py so that file only gains the line that registers them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.devices import DeviceSpec

__all__ = ["add_trust_commands"]


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from gateway.cli import _database, _settings
    from gateway.storage.rekey import rotate_keys

    settings = _settings(args)

    async def rotate() -> int:
        async with _database(settings) as db:
            report = await rotate_keys(db, batch_size=args.batch_size)
        for table, rows in sorted(report.rows.items()):
            print(f"{table}: {rows} rows re-encrypted")
        print(f"everything is now encrypted under key {report.kid} ({report.total} rows changed)")
        return 0

    return asyncio.run(rotate())


def cmd_user_disable(args: argparse.Namespace) -> int:
    """Disable (or, with ``enable``, re-enable) a user; disabling ends her tokens."""
    from sqlalchemy import select

    from gateway.cli import _database, _settings
    from gateway.storage.models import User

    settings = _settings(args)
    disable = args.user_command == "disable"

    async def change() -> int:
        async with _database(settings) as db, db.session() as session, session.begin():
            user = (
                await session.execute(select(User).where(User.username == args.username))
            ).scalar_one_or_none()
            if user is None:
                print(f"no user {args.username!r}", file=sys.stderr)
                return 2
            # Audited by the flush hook (gateway.storage.models), as every user change is.
            session.info["actor"] = "cli"
            if disable and user.disabled_at is None:
                user.disabled_at = datetime.now(UTC)
            elif not disable:
                user.disabled_at = None
        print(f"user {args.username} {'disabled' if disable else 'enabled'}")
        return 0

    return asyncio.run(change())


def cmd_mqtt_credentials(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.cli import _database, _settings
    from gateway.mqtt_credentials import register_devices, write_credentials

    settings = _settings(args)
    out = Path(args.out)

    async def load() -> list[DeviceSpec]:
        async with _database(settings) as db:
            return await register_devices(db)

    report = write_credentials(
        asyncio.run(load()),
        out,
        gateway_username=settings.mqtt_username or settings.mqtt_client_id,
        status_topic_prefix=settings.mqtt_topic_prefix,
    )
    for line in report.lines():
        print(line)
    print(f"wrote {out}/passwd, acl, devices.csv, gateway.env (readable by the owner only)")
    return 0


def add_trust_commands(commands: Any, user_commands: Any, common: argparse.ArgumentParser) -> None:
    """Register the trust verbs on the ``homewatch`` parser (``commands``: its subparsers;
    ``user_commands``: those of ``homewatch user``)."""
    rotate = commands.add_parser(
        "rotate-key",
        parents=[common],
        help="re-encrypt personal data under the current data key",
        description="Re-encrypts every ID number, phone and health record not yet under the "
        "current key (HOMEWATCH_DATA_KEY, else HOMEWATCH_SECRET_KEY); the old key must be in "
        "HOMEWATCH_RETIRED_DATA_KEYS meanwhile. Resumable, in batches.",
    )
    rotate.add_argument("--batch-size", type=int, default=500)
    rotate.set_defaults(func=cmd_rotate_key)

    for verb, what in (
        ("disable", "disable a user: no login, her tokens and sessions end"),
        ("enable", "let a disabled user log in again"),
    ):
        parser = user_commands.add_parser(verb, parents=[common], help=what)
        parser.add_argument("username")
        parser.set_defaults(func=cmd_user_disable)

    creds = commands.add_parser(
        "mqtt-credentials",
        parents=[common],
        help="per-device Mosquitto password file and ACL from the register",
    )
    creds.add_argument("--out", required=True, metavar="DIR")
    creds.set_defaults(func=cmd_mqtt_credentials)

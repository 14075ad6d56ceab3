"""Command-line verbs of SPEC §10: ``rotate-key``, ``user disable``, ``mqtt-credentials``.

Kept out of gateway/cli.py so that file only gains the line that registers them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

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
    from gateway.register.history import audit_entity
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
            now = datetime.now(UTC)
            before = {"disabled_at": _iso(user.disabled_at)}
            user.disabled_at = now if disable else None
            audit_entity(
                session,
                now=now,
                actor="cli",
                entity="user",
                entity_id=user.username,
                action="disable" if disable else "enable",
                before=before,
                after={"disabled_at": _iso(user.disabled_at)},
            )
        print(f"user {args.username} {'disabled' if disable else 'enabled'}")
        return 0

    return asyncio.run(change())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


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

"""Command-line verbs of SPEC §10: ``rotate-key``, ``user disable``, ``mqtt-credentials``.

Kept out of gateway/cli.py so that file only gains the line that registers them.
"""

from __future__ import annotations

import argparse
import asyncio
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

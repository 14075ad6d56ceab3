"""Re-encrypt personal data under the current key (``homewatch rotate-key``, SPEC §10).

Every column typed :class:`EncryptedText` / :class:`EncryptedJSON` is found from the models,
so a column added later is rotated without touching this file. Rows are handled in batches,
each its own transaction: an interrupted rotation resumes where it stopped, and the gateway
keeps reading meanwhile (retired keys still decrypt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlalchemy as sa

from gateway.crypto import DEVELOPMENT_SECRET, DataKey
from gateway.storage.db import Database
from gateway.storage.models import BLIND_INDEXED, Base
from gateway.storage.types import BlindIndex, EncryptedJSON, EncryptedText

__all__ = ["RotationReport", "rotate_keys"]

log = logging.getLogger(__name__)


@dataclass
class RotationReport:
    """Rows re-encrypted, per table."""

    kid: str
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _encrypted_columns(table: sa.Table) -> list[tuple[str, str]]:
    """(column, AEAD context) of the table's encrypted columns."""
    found = []
    for column in table.columns:
        if isinstance(column.type, EncryptedText | EncryptedJSON):
            found.append((column.name, column.type.context))
    return found


def _blind_indexes(table: sa.Table) -> list[tuple[str, str, str]]:
    """(plain column, index column, purpose) of the table's blind indexes."""
    for model, pairs in BLIND_INDEXED.items():
        if model.__table__ is table:
            found = []
            for plain, index in pairs:
                index_type = table.columns[index].type
                assert isinstance(index_type, BlindIndex)
                found.append((plain, index, index_type.purpose))
            return found
    return []


async def rotate_keys(
    db: Database, *, batch_size: int = 500, only_development: bool = False
) -> RotationReport:
    """Re-encrypt every value not under the current key (and recompute its row's blind
    indexes, which depend on the key). ``only_development``: just the values a keyless
    command wrote under the public development key (what `run` does at start)."""
    keyring = db.keyring
    report = RotationReport(keyring.current.kid)
    development_kid = DataKey.from_secret(DEVELOPMENT_SECRET).kid
    if only_development and keyring.is_development:
        return report
    for table in Base.metadata.sorted_tables:
        encrypted = _encrypted_columns(table)
        if not encrypted:
            continue
        indexes = _blind_indexes(table)
        names = [name for name, _ in encrypted]
        raw = sa.table(
            table.name,
            sa.column("id"),
            *(sa.column(name, sa.Text) for name in names),
            *(sa.column(index, sa.Text) for _, index, _ in indexes),
        )
        if only_development:
            stale = [raw.c[name].startswith(f"v1:{development_kid}:") for name in names]
        else:
            stale = [
                sa.and_(raw.c[name] != "", ~raw.c[name].startswith(f"v1:{keyring.current.kid}:"))
                for name in names
            ]
        written = names + [index for _, index, _ in indexes]
        last_id = None
        done = 0
        while True:
            query = sa.select(raw.c.id, *(raw.c[name] for name in names)).where(sa.or_(*stale))
            if last_id is not None:
                query = query.where(raw.c.id > last_id)
            async with db.session() as session, session.begin():
                rows = (await session.execute(query.order_by(raw.c.id).limit(batch_size))).all()
                if not rows:
                    break
                updates = []
                for row in rows:
                    values: dict[str, str | None] = {}
                    plain: dict[str, str | None] = {}
                    for (name, context), value in zip(encrypted, row[1:], strict=True):
                        if value is None or value == "":
                            values[name] = plain[name] = value
                            continue
                        plain[name] = keyring.decrypt(value, context)
                        values[name] = keyring.encrypt(plain[name] or "", context)
                    for source, index, purpose in indexes:
                        value = plain[source]
                        values[index] = (
                            None if value is None else keyring.blind_index(value, purpose)
                        )
                    updates.append({"row_id": row[0], **{f"v_{k}": v for k, v in values.items()}})
                await session.execute(
                    sa.update(raw)
                    .where(raw.c.id == sa.bindparam("row_id"))
                    .values({k: sa.bindparam(f"v_{k}") for k in written}),
                    updates,
                )
            last_id = rows[-1][0]
            done += len(rows)
        if done:
            report.rows[table.name] = done
            log.info("re-encrypted %d rows of %s under key %s", done, table.name, report.kid)
    return report

"""Many rows of one table in one round trip, for the register service's batch commands.

An ORM flush asks each new row's id back, and on SQLite that is one INSERT per row: for a
county's 30,000 persons, 100,000 devices and their audit rows, most of a provisioning run.
Here rows go in with one executemany and, where their ids are needed, are read back by a
unique key in a few ``IN`` queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from gateway.storage.models import BLIND_INDEXED, Base

__all__ = ["insert_many", "read_back"]

_Model = TypeVar("_Model", bound=Base)
#: Keys per ``IN (...)`` when reading rows back (SQLite allows 32,766 variables).
_CHUNK = 5_000
#: A blind index is looked up by the plain value it hashes.
_PLAIN = {"id_number_bidx": "id_number", "phone_bidx": "phone"}


async def insert_many(
    session: AsyncSession, model: type[Base], rows: Sequence[Mapping[str, Any]]
) -> None:
    """``rows`` in one executemany, without asking the ids back. Blind indexes are filled
    here as the model's insert hook would (that hook does not run for a bulk insert)."""
    if not rows:
        return
    indexed = BLIND_INDEXED.get(model, ())
    if indexed:
        rows = [{**row, **{index: row.get(plain) for plain, index in indexed}} for row in rows]
    await session.execute(insert(model), list(rows))


async def read_back(
    session: AsyncSession,
    model: type[_Model],
    key: InstrumentedAttribute[Any],
    values: Sequence[Any],
) -> list[_Model]:
    """The rows whose unique ``key`` is one of ``values``, in the order of ``values``."""
    found: dict[Any, _Model] = {}
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        for row in (await session.execute(select(model).where(key.in_(chunk)))).scalars():
            found[getattr(row, _PLAIN.get(key.key, key.key))] = row
    return [found[value] for value in values]

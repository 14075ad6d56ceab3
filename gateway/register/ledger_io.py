"""The 台账 between the database and the workbook: export (optionally as of a month, from
the change history) and import (dry-run report of what would change, then apply)."""

from __future__ import annotations

import calendar
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.register.apply import audit_person, person_snapshot
from gateway.register.idnumber import describe_problem
from gateway.register.ledger import (
    LedgerImportError,
    LedgerRow,
    LedgerSheet,
    read_workbook,
    write_workbook,
)
from gateway.register.vocabulary import Category
from gateway.storage.db import Database
from gateway.storage.models import AuditEntry, Helper, Person, Town, Village

__all__ = ["build_sheet", "export_ledger", "import_ledger", "month_end"]


def month_end(month: str) -> datetime:
    """The first instant after ``YYYY-MM`` ends (UTC)."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        last = calendar.monthrange(year, mon)[1]
    except ValueError as error:
        raise ValueError(f"--month must be YYYY-MM, got {month!r}") from error
    return datetime(year, mon, last, 23, 59, 59, 999999, tzinfo=UTC)


async def build_sheet(db: Database, village_name: str, month: str | None) -> LedgerSheet:
    """The village's register now, or as it stood at the end of ``month``."""
    async with db.session() as session:
        town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
        village = (
            await session.execute(select(Village).where(Village.name == village_name))
        ).scalar_one_or_none()
        if village is None:
            raise LookupError(f"no village {village_name!r} in the register")
        helpers = {h.id: h for h in (await session.execute(select(Helper))).scalars()}
        persons = (await session.execute(select(Person).order_by(Person.id))).scalars().all()
        rows: list[LedgerRow] = []
        for person in persons:
            values = person_snapshot(person)
            if month is not None:
                history = (
                    (
                        await session.execute(
                            select(AuditEntry.after)
                            .where(
                                AuditEntry.entity == "person",
                                AuditEntry.entity_id == str(person.id),
                                AuditEntry.at <= month_end(month),
                            )
                            .order_by(AuditEntry.at, AuditEntry.id)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not history:
                    continue  # not yet in the register that month
                # Replay every change up to the month's end: an update (e.g. from an import)
                # records only the fields it changed.
                for change in history:
                    values.update({k: v for k, v in (change or {}).items() if k in values})
            if values["village_id"] != village.id:
                continue
            helper = helpers.get(values["helper_id"]) if values["helper_id"] else None
            rows.append(
                LedgerRow(
                    name=values["name"],
                    gender=values["gender"],
                    id_number=person.id_number,
                    categories=tuple(Category(c) for c in values["categories"]),
                    helper_name=helper.name if helper else "",
                    helper_title=helper.title if helper else "",
                    measures=values["measures"] or "",
                    phone=values["phone"] or "",
                    notes=values["notes"] or "",
                )
            )
    return LedgerSheet(
        town=town.name if town else "", village=village.name, rows=tuple(rows), month=month
    )


async def export_ledger(db: Database, *, village: str, month: str | None, output: Path) -> int:
    try:
        sheet = await build_sheet(db, village, month)
    except (LookupError, ValueError) as error:
        print(str(error), file=sys.stderr)
        return 2
    write_workbook([sheet], output)
    print(f"{output}: {village}, {len(sheet.rows)} persons")
    return 0


async def import_ledger(db: Database, path: Path, *, village: str, dry_run: bool) -> int:
    """Update persons (matched by ID number) from a 台账 sheet; report every change."""
    try:
        sheets = read_workbook(path, village=village)
    except LedgerImportError as error:
        print(str(error), file=sys.stderr)
        return 1
    if not sheets:
        print(f"{path}: no 台账 sheet for {village}", file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    problems: list[str] = []
    changes: list[str] = []
    async with db.session() as session, session.begin():
        village_row = (
            await session.execute(select(Village).where(Village.name == village))
        ).scalar_one_or_none()
        if village_row is None:
            print(f"no village {village!r} in the register", file=sys.stderr)
            return 2
        helpers = {
            h.name: h
            for h in (
                await session.execute(select(Helper).where(Helper.village_id == village_row.id))
            ).scalars()
        }
        for number, row in enumerate(sheets[0].rows, start=1):
            problem = describe_problem(row.id_number, row.gender)
            if problem:
                problems.append(f"序号{number} 身份证号码: {problem}")
                continue
            helper = helpers.get(row.helper_name)
            if row.helper_name and helper is None:
                problems.append(
                    f"序号{number} 帮扶责任人: no helper named {row.helper_name} in {village}"
                )
                continue
            person = (
                await session.execute(select(Person).where(Person.id_number == row.id_number))
            ).scalar_one_or_none()
            values: dict[str, Any] = {
                "name": row.name,
                "gender": row.gender,
                "categories": [c.value for c in row.categories],
                "measures": row.measures,
                "notes": row.notes,
            }
            if helper is not None:
                values["helper_id"] = helper.id
            if person is None:
                if helper is None:
                    problems.append(f"序号{number}: a new person needs a 帮扶责任人")
                    continue
                changes.append(f"new: {row.name}")
                if not dry_run:
                    person = Person(
                        id_number=row.id_number,
                        village_id=village_row.id,
                        care_level="general",
                        phone=None,
                        address="",
                        rules_override={},
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                    session.add(person)
                    await session.flush()
                    audit_person(
                        session,
                        now=now,
                        actor="import",
                        person_id=person.id,
                        before=None,
                        after=values,
                    )
                continue
            diff = {k: v for k, v in values.items() if getattr(person, k) != v}
            if not diff:
                continue
            changes.append(f"update {row.name}: {', '.join(sorted(diff))}")
            if not dry_run:
                before = {k: getattr(person, k) for k in diff}
                for key, value in diff.items():
                    setattr(person, key, value)
                person.updated_at = now
                audit_person(
                    session,
                    now=now,
                    actor="import",
                    person_id=person.id,
                    before=before,
                    after=diff,
                )
        if problems:
            await session.rollback()
            print("refused, nothing was changed:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        if dry_run:
            await session.rollback()
    print(("would change" if dry_run else "changed") + f": {len(changes)}")
    for line in changes:
        print("  " + line)
    return 0

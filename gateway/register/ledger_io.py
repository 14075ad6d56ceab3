"""The 台账 between the database and the workbook: export (optionally as of a month, from
the change history) and import (dry-run report of what would change, then apply)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.register.compliance import month_bounds
from gateway.register.idnumber import describe_problem
from gateway.register.ledger import (
    LedgerImportError,
    LedgerRow,
    LedgerSheet,
    read_workbook,
    write_workbook,
)
from gateway.register.service import RegisterService, person_snapshot
from gateway.register.vocabulary import CATEGORY_LABELS, Category
from gateway.storage.db import Database
from gateway.storage.models import AuditEntry, Helper, Person, Town, Village

__all__ = [
    "FieldChange",
    "ImportProblem",
    "ImportReport",
    "apply_ledger",
    "build_sheet",
    "export_ledger",
    "import_ledger",
    "month_end",
    "read_ledger",
    "village_names",
]


def month_end(month: str, tz: tzinfo = UTC) -> datetime:
    """The first instant after ``YYYY-MM`` ends: local midnight in ``tz``."""
    try:
        return month_bounds(month, tz)[1]
    except ValueError as error:
        raise ValueError(f"--month must be YYYY-MM, got {month!r}") from error


async def build_sheet(
    db: Database, village_name: str, month: str | None, *, tz: tzinfo = UTC
) -> LedgerSheet:
    """The village's register now, or as it stood at the end of ``month`` (local time ``tz``:
    a change at 00:30 on the 1st, Beijing time, belongs to the new month)."""
    async with db.session() as session:
        town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
        village = (
            await session.execute(select(Village).where(Village.name == village_name))
        ).scalar_one_or_none()
        if village is None:
            raise LookupError(f"no village {village_name!r} in the register")
        helpers = {h.id: h for h in (await session.execute(select(Helper))).scalars()}
        persons = (await session.execute(select(Person).order_by(Person.id))).scalars().all()
        end = month_end(month, tz) if month is not None else None
        rows: list[LedgerRow] = []
        for person in persons:
            values = person_snapshot(person)
            removed = person.removed_at is not None
            if end is not None:
                history = (
                    await session.execute(
                        select(AuditEntry.action, AuditEntry.after)
                        .where(
                            AuditEntry.entity == "person",
                            AuditEntry.entity_id == str(person.id),
                            AuditEntry.at < end,
                        )
                        .order_by(AuditEntry.at, AuditEntry.id)
                    )
                ).all()
                if not history:
                    continue  # not yet in the register that month
                # Replay every change up to the month's end: an update (e.g. from an import)
                # records only the fields it changed; leaving and returning are their own
                # actions.
                removed = False
                for action, change in history:
                    if action in ("remove", "restore"):
                        removed = action == "remove"
                    else:
                        values.update({k: v for k, v in (change or {}).items() if k in values})
            if removed or values["village_id"] != village.id:
                continue
            helper = helpers.get(values["helper_id"]) if values["helper_id"] else None
            rows.append(
                LedgerRow(
                    name=values["name"],
                    gender=values["gender"],
                    id_number=values["id_number"],
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


async def village_names(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(select(Village.name).order_by(Village.id))).scalars())


async def export_ledger(
    db: Database, *, village: str | None, month: str | None, output: Path, tz: tzinfo = UTC
) -> int:
    """Write the 台账 of ``village`` (every village, one sheet each, when None)."""
    names = [village] if village is not None else await village_names(db)
    if not names:
        print("the register has no villages", file=sys.stderr)
        return 2
    try:
        sheets = [await build_sheet(db, name, month, tz=tz) for name in names]
    except (LookupError, ValueError) as error:
        print(str(error), file=sys.stderr)
        return 2
    write_workbook(sheets, output)
    for sheet in sheets:
        print(f"{output}: {sheet.village}, {len(sheet.rows)} persons")
    return 0


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """A cell or row the register refuses.

    ``row`` is the Excel row when the workbook itself is at fault; ``number`` the row's 序号
    when the register refuses an otherwise readable row (what an officer looks for). 0 when
    not known.
    """

    sheet: str
    row: int
    column: str
    message: str
    number: int = 0

    def __str__(self) -> str:
        where = self.sheet
        if self.row:
            where += f" row {self.row}"
        if self.number:
            where += f" 序号{self.number}"
        where = where.strip() or "workbook"
        if self.column:
            return f"{where} {self.column}: {self.message}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One cell an import changes: the person, the field, the value before and after."""

    name: str
    field: str
    before: str
    after: str


@dataclass
class ImportReport:
    """What an import changed (or, in a dry run, would change), or why it was refused."""

    dry_run: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    #: Every changed cell of ``updated``, for a preview shown as a table.
    changes: list[FieldChange] = field(default_factory=list)
    unchanged: int = 0
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.problems)

    def lines(self) -> list[str]:
        return [*(f"new: {name}" for name in self.created), *self.updated]


def read_ledger(data: bytes | Path, village: str) -> tuple[list[LedgerSheet], list[ImportProblem]]:
    """The village's sheet(s) of a workbook, or every cell problem in it."""
    try:
        sheets = read_workbook(data, village=village)
    except LedgerImportError as error:
        return [], [ImportProblem(e.sheet, e.row, e.column, e.message) for e in error.errors]
    if not sheets:
        return [], [ImportProblem("", 0, "", f"no 台账 sheet for {village}")]
    return sheets, []


async def apply_ledger(
    db: Database,
    sheet: LedgerSheet,
    *,
    village: str,
    dry_run: bool,
    actor: str,
    now: datetime,
) -> ImportReport:
    """Update persons (matched by ID number) from a 台账 sheet, all or nothing.

    Only the columns the sheet holds are taken from it (name, gender, categories, helper,
    measures, phone, notes); care level, address and the rest stay as they are. A new ID
    number adds a person (care level general until someone says otherwise).
    """
    report = ImportReport(dry_run=dry_run)
    async with db.session() as session, session.begin():
        register = RegisterService(session, actor=actor, now=now)
        village_row = (
            await session.execute(select(Village).where(Village.name == village))
        ).scalar_one_or_none()
        if village_row is None:
            report.problems.append(ImportProblem("", 0, "", f"no village {village!r}"))
            return report
        helpers = {
            h.name: h
            for h in (
                await session.execute(select(Helper).where(Helper.village_id == village_row.id))
            ).scalars()
        }
        for number, row in enumerate(sheet.rows, start=1):
            where = sheet.village
            problem = describe_problem(row.id_number, row.gender)
            if problem:
                report.problems.append(ImportProblem(where, 0, "身份证号码", problem, number))
                continue
            helper = helpers.get(row.helper_name)
            if row.helper_name and helper is None:
                report.problems.append(
                    ImportProblem(
                        where,
                        0,
                        "帮扶责任人",
                        f"no helper named {row.helper_name} in {village}",
                        number,
                    )
                )
                continue
            person = (
                await session.execute(select(Person).where(Person.id_number_bidx == row.id_number))
            ).scalar_one_or_none()
            values: dict[str, Any] = {
                "name": row.name,
                "gender": row.gender,
                "categories": [c.value for c in row.categories],
                "measures": row.measures,
                "phone": row.phone or None,
                "notes": row.notes,
            }
            if helper is not None:
                values["helper_id"] = helper.id
            if person is None:
                if helper is None:
                    report.problems.append(
                        ImportProblem(
                            where, 0, "帮扶责任人", "a new person needs a 帮扶责任人", number
                        )
                    )
                    continue
                report.created.append(row.name)
                if not dry_run:
                    await register.create_persons(
                        [
                            {
                                "id_number": row.id_number,
                                "village_id": village_row.id,
                                "care_level": "general",
                                "address": "",
                                **values,
                            }
                        ]
                    )
                continue
            if person.village_id != village_row.id:
                report.problems.append(
                    ImportProblem(
                        where,
                        0,
                        "身份证号码",
                        f"{row.name} is registered in another village",
                        number,
                    )
                )
                continue
            diff = {k: v for k, v in values.items() if getattr(person, k) != v}
            if not diff:
                report.unchanged += 1
                continue
            report.updated.append(f"update {row.name}: {', '.join(sorted(diff))}")
            names = {h.id: h.name for h in helpers.values()}
            report.changes.extend(
                FieldChange(
                    row.name, key, _shown(getattr(person, key), names), _shown(diff[key], names)
                )
                for key in sorted(diff)
            )
            if not dry_run:
                await register.update_person(person, diff, checked=True)
        if report.problems or dry_run:
            await session.rollback()
    return report


def _shown(value: Any, helper_names: dict[int, str]) -> str:
    """A cell value as an officer reads it (helper ids as names, lists joined)."""
    if isinstance(value, list):
        labels = {c.value: label for c, label in CATEGORY_LABELS.items()}
        return "、".join(labels.get(str(v), str(v)) for v in value)
    if isinstance(value, int) and value in helper_names:
        return helper_names[value]
    return "" if value is None else str(value)


async def import_ledger(db: Database, path: Path, *, village: str, dry_run: bool) -> int:
    """The CLI's import: print the report; 1 when the workbook is refused."""
    sheets, problems = read_ledger(path, village)
    if problems:
        print(f"{path}: refused, nothing was changed:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    report = await apply_ledger(
        db, sheets[0], village=village, dry_run=dry_run, actor="import", now=datetime.now(UTC)
    )
    if report.refused:
        print("refused, nothing was changed:", file=sys.stderr)
        for problem in report.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    changes = report.lines()
    print(("would change" if dry_run else "changed") + f": {len(changes)}")
    for line in changes:
        print("  " + line)
    return 0

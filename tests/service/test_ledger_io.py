"""The 台账 between database and workbook: export as of a month, import with dry run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.register.apply import apply_provisioning, audit_person
from gateway.register.ledger import read_workbook, write_workbook
from gateway.register.ledger_io import build_sheet, export_ledger, import_ledger
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import Person
from tests.helpers import register_yaml


async def test_export_as_of_a_month_replays_the_history(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    text = register_yaml("ledger", persons=2)
    await apply_provisioning(db, parse_provisioning(text), datetime(2026, 3, 5, tzinfo=UTC))
    # April: a change that records only the field it changed (as an import does).
    async with db.session() as session, session.begin():
        person_id = (await session.execute(select(Person.id).order_by(Person.id))).scalars().first()
        assert person_id is not None
        audit_person(
            session,
            now=datetime(2026, 4, 2, tzinfo=UTC),
            actor="import",
            person_id=person_id,
            before={"notes": ""},
            after={"notes": "四月住院"},
        )
    # May: the measures change.
    edited = text.replace("每周上门一次", "每周上门两次", 1)
    await apply_provisioning(db, parse_provisioning(edited), datetime(2026, 5, 10, tzinfo=UTC))

    path = tmp_path / "bm.xlsx"
    assert await export_ledger(db, village="坝芒村", month=None, output=path) == 0
    sheet = read_workbook(path, village="坝芒村")[0]
    assert [r.name for r in sheet.rows] == ["老人0", "老人1"]
    assert [r.measures for r in sheet.rows] == ["每周上门两次", "每周上门一次"]

    assert (await build_sheet(db, "坝芒村", "2026-02")).rows == ()
    march = await build_sheet(db, "坝芒村", "2026-03")
    april = await build_sheet(db, "坝芒村", "2026-04")
    may = await build_sheet(db, "坝芒村", "2026-05")
    assert [r.measures for r in march.rows] == ["每周上门一次", "每周上门一次"]
    assert [r.notes for r in march.rows] == ["", ""]
    assert [r.measures for r in april.rows] == ["每周上门一次", "每周上门一次"]
    assert [r.notes for r in april.rows] == ["四月住院", ""]
    assert [r.measures for r in may.rows] == ["每周上门两次", "每周上门一次"]


async def test_import_dry_run_changes_nothing_and_apply_updates(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    text = register_yaml("ledger", persons=1)
    await apply_provisioning(db, parse_provisioning(text), datetime(2026, 3, 5, tzinfo=UTC))
    path = tmp_path / "bm.xlsx"
    await export_ledger(db, village="坝芒村", month=None, output=path)
    edited = tmp_path / "edited.xlsx"
    before = await build_sheet(db, "坝芒村", None)
    row = replace(before.rows[0], measures="每天电话问候")
    write_workbook([replace(before, rows=(row,))], edited)

    assert await import_ledger(db, edited, village="坝芒村", dry_run=True) == 0
    assert "would change: 1" in capsys.readouterr().out
    assert (await build_sheet(db, "坝芒村", None)).rows[0].measures == "每周上门一次"
    assert await import_ledger(db, edited, village="坝芒村", dry_run=False) == 0
    assert (await build_sheet(db, "坝芒村", None)).rows[0].measures == "每天电话问候"

"""The CLI against a real SQLite file: provision, user add, register export."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.register.ledger import read_workbook
from tests.helpers import register_yaml


def test_provision_user_add_and_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMEWATCH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hw.db'}")
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    register = tmp_path / "register.yaml"
    register.write_text(register_yaml("cli", persons=2), encoding="utf-8")
    assert main(["provision", str(register)]) == 0
    assert "persons: 2 created" in capsys.readouterr().out
    assert main(["provision", str(register)]) == 0
    assert "persons: 2 unchanged" in capsys.readouterr().out

    monkeypatch.setattr("sys.stdin", io.StringIO("another-good-password\n"))
    assert main(["user", "add", "officer", "--role", "village_officer", "--village", "坝芒村"]) == 0
    assert "user officer created" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("another-good-password\n"))
    assert main(["user", "add", "ghost", "--role", "village_officer", "--village", "无此村"]) == 2

    out = tmp_path / "bm.xlsx"
    assert main(["register", "export", "--village", "坝芒村", "-o", str(out)]) == 0
    assert [r.name for r in read_workbook(out, village="坝芒村")[0].rows] == ["老人0", "老人1"]


def test_export_every_village_as_of_a_month_and_the_annual_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import openpyxl

    monkeypatch.setenv("HOMEWATCH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hw.db'}")
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    register = tmp_path / "register.yaml"
    text = register_yaml("cli", persons=1).replace(
        "helpers:\n", "  - name: 隘口村\n    emergency_team: []\nhelpers:\n"
    )
    register.write_text(text, encoding="utf-8")
    assert main(["provision", str(register)]) == 0

    out = tmp_path / "all.xlsx"
    assert main(["register", "export", "--month", "2099-01", "-o", str(out)]) == 0
    sheets = read_workbook(out)
    assert [(s.village, s.month, len(s.rows)) for s in sheets] == [
        ("坝芒村", "2099-01", 1),
        ("隘口村", "2099-01", 0),
    ]
    assert main(["register", "export", "--month", "2099-13", "-o", str(out)]) == 2

    annual = tmp_path / "annual.xlsx"
    assert main(["register", "annual", "--year", "2026", "-o", str(annual)]) == 0
    workbook = openpyxl.load_workbook(annual)
    assert workbook.sheetnames == ["对象统计", "走访统计", "告警统计"]
    persons = workbook["对象统计"]
    assert persons["B4"].value == "坝芒村" and persons["B5"].value == "隘口村"

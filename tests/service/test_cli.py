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

"""The global options work before the subcommand as well as after it (issue #10)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.cli import build_parser, main


@pytest.mark.parametrize(
    ("argv", "config", "verbose"),
    [
        (["--config", "x.yaml", "run"], "x.yaml", False),
        (["run", "--config", "x.yaml"], "x.yaml", False),
        (["-v", "run"], None, True),
        (["run", "-v"], None, True),
        (["run"], None, False),
        (["--config", "a.yaml", "-v", "user", "add", "u", "--role", "helper"], "a.yaml", True),
        (["register", "export", "-o", "x.xlsx", "--config", "b.yaml"], "b.yaml", False),
    ],
)
def test_config_and_verbose_are_kept_wherever_they_are_given(
    argv: list[str], config: str | None, verbose: bool
) -> None:
    args = build_parser().parse_args(argv)
    assert (args.config, args.verbose) == (config, verbose)


def test_a_missing_config_file_before_the_subcommand_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert main(["--config", str(missing), "migrate"]) == 2
    assert f"configuration file not found: {missing}" in capsys.readouterr().err


def test_a_misspelled_key_in_a_config_file_before_the_subcommand_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "homewatch.yaml"
    config.write_text("databse_url: sqlite+aiosqlite:///x.db\n", encoding="utf-8")
    assert main(["--config", str(config), "migrate"]) == 2
    assert "databse_url: unknown setting" in capsys.readouterr().err


def test_run_without_a_real_notifier_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMEWATCH_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("HOMEWATCH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hw.db'}")
    assert main(["run"]) == 2
    assert "HOMEWATCH_NOTIFIER=console" in capsys.readouterr().err
    assert not (tmp_path / "hw.db").exists(), "refused before touching anything"


def test_migrations_log_only_what_they_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOMEWATCH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hw.db'}")
    with caplog.at_level(logging.INFO):
        assert main(["migrate"]) == 0
        first = [r.getMessage() for r in caplog.records if r.name.startswith("alembic")]
        caplog.clear()
        assert main(["migrate"]) == 0
        again = [r.getMessage() for r in caplog.records if r.name.startswith("alembic")]
    assert first and all(m.startswith("Running upgrade") for m in first)
    assert again == [], "nothing to apply, nothing said"

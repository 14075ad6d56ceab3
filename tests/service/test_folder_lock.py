"""Two processes never share a data folder: the second `homewatch demo` refuses (issue #10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.folder_lock import FolderInUseError, lock_folder
from tests.services import free_port


def test_a_held_folder_is_refused_and_free_again_once_released(tmp_path: Path) -> None:
    refused = pytest.raises(FolderInUseError, match=r"in use by another homewatch demo \(pid \d+")
    with lock_folder(tmp_path, what="homewatch demo"), refused, lock_folder(tmp_path):
        pass
    with lock_folder(tmp_path):
        pass


def test_a_second_demo_in_the_same_folder_refuses_with_a_clear_message(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    with lock_folder(folder, what="homewatch demo"):
        second = subprocess.run(
            [
                *(sys.executable, "-m", "gateway.cli", "demo", "--dir", str(folder)),
                *("--port", str(free_port()), "--duration", "20s"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"homewatch demo: {folder} is in use by another homewatch demo" in second.stderr
    assert not (folder / "homewatch-demo.db").exists(), "nothing was touched"

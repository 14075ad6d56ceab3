"""An exclusive lock on a data folder, so that two processes never share one by mistake.

Two ``homewatch demo`` started in the same folder would change each other's password,
close each other's alerts and escalate each other's alerts twice. The lock is an
``fcntl.flock`` on a file in the folder: the kernel releases it when the process ends,
however it ends (kill -9 included), so a stale lock file never blocks the next start.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_FILE", "FolderInUseError", "lock_folder"]

LOCK_FILE = ".homewatch.lock"


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock; the message names the folder and its pid."""


@contextlib.contextmanager
def lock_folder(folder: Path, *, what: str = "homewatch") -> Iterator[None]:
    """Hold ``folder``'s lock until exit.

    Args:
        folder: An existing directory.
        what: The command taking the lock, for the message another one gets.

    Raises:
        FolderInUseError: Another process holds it.
    """
    if sys.platform == "win32":  # no flock there; the demo still runs, unguarded
        yield
        return
    import fcntl

    path = folder / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, holder = os.pread(descriptor, 256, 0).decode("utf-8", "replace").partition(" ")
            raise FolderInUseError(
                f"{folder} is in use by another {holder.strip() or 'process'} "
                f"(pid {pid.strip() or '?'}): stop that one first, or give this one a folder "
                "of its own"
            ) from None
        # Who holds it, for the message the next one gets.
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()} {what}\n".encode(), 0)
        yield
    finally:
        # Closing the descriptor releases the lock; the file stays (removing it would race
        # with a process that just opened it).
        os.close(descriptor)

"""A run folder's guards: one training run at a time (a lock), and a replaced run kept until the new
one has saved its first checkpoint.

- :class:`RunLock`: an advisory ``flock`` on ``OUT/.attnzoo.lock``, held for the whole run by the
  main process; released by the OS however the process ends (kill -9 included), so it never goes
  stale. A second run on the same folder stops at once, naming the holder's pid.
- ``--overwrite`` moves the old run's files (its manifest, checkpoints, best weights, config,
  metrics and summary — nothing else: a user's own files in the folder stay where they are) into
  ``OUT/.replaced-run/`` once the new run has set up (its model built and ``--init-from`` loaded),
  and deletes that folder after the new run's first checkpoint. A new run that fails before then
  leaves the old one there, whole.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from . import checkpoint as ckpt

LOCK = ".attnzoo.lock"
REPLACED = ".replaced-run"


class RunFolderBusy(ValueError):
    """Another run holds the folder's lock."""


class RunLock:
    """An exclusive, non-blocking lock on a run folder (a no-op where ``fcntl`` is missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOCK
        self._fd: Optional[int] = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusy(f"{self.path.parent} is in use by another attnzoo run (pid {holder}); "
                                "wait for it to end, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock; the file stays (removing it would race)
            self._fd = None


def run_files(directory: Path) -> list[Path]:
    """The files of a training run in ``directory``: what ``--overwrite`` replaces."""
    files = [directory / n for n in ckpt.RUN_FILES if (directory / n).is_file()]
    for path in directory.iterdir():
        tag = path.name.removesuffix(".safetensors").removesuffix(".state.pt")
        if path.is_file() and tag != path.name and ckpt.is_tag(tag):
            files.append(path)
    return files


def set_aside(directory: Path) -> Optional[Path]:
    """Move the run in ``directory`` into ``directory/.replaced-run/`` (an earlier one there is
    deleted first); the folder, or None when there was nothing to move."""
    files = run_files(directory)
    if not files:
        return None
    aside = directory / REPLACED
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    for path in files:
        os.replace(path, aside / path.name)
    return aside


def discard_replaced(directory: Path) -> None:
    shutil.rmtree(directory / REPLACED, ignore_errors=True)

"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a part.

Each write goes to a temporary file in the same folder, is flushed and fsynced, moved into place
with ``os.replace`` and the folder is fsynced, so the rename itself survives a power cut.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)  # read once; mkstemp creates 0600 files, we want the usual 0666 & ~umask
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def ensure_writable(directory: str | Path) -> Path:
    """Create ``directory`` if needed and prove it writable, before any work is done: a
    ValueError naming the folder and the reason otherwise."""
    directory = Path(directory)
    blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"cannot write to {directory}: {blocker} is a file, not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"cannot write to {directory}: {e.strerror or e}") from None
    return directory


def ensure_writable_file(path: str | Path) -> Path:
    """``path`` as a file to be written: its folder created and proved writable, and not itself a
    folder — a ValueError naming it otherwise, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write to {path}: it is a folder; expected a file name")
    ensure_writable(path.parent)
    return path


def read_json(path: str | Path) -> Any:
    """The JSON value in file ``path``; a ValueError naming the file and where it stopped parsing
    (a hand-edited config.json, a summary.json cut short by a full disk) instead of a traceback."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or first_line(e)})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def read_json_lines(path: str | Path) -> list[Any]:
    """Each non-empty line of ``path`` as JSON (metrics.jsonl), errors naming the file and the line."""
    path = Path(path)
    values = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {number} is not valid JSON ({e.msg})") from None
    return values


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty (an
    empty file once made ``str(e).splitlines()[0]`` raise IndexError inside an error handler)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__

"""Checkpoints that survive a crash at any instant, are verified on load, and load without
unpickling code.

A checkpoint is two files per epoch — the weights as safetensors (with the run's config in its
metadata) and the training state (optimizer, step, RNG, scaler) as a ``torch.save`` of plain
tensors and numbers, loadable with ``weights_only=True`` — plus ``checkpoint.json``, the
manifest: it names the latest complete pair and records the SHA-256 of every file it lists
(``best.safetensors`` too). Every file is written to a temporary file, fsynced and moved into
place with ``os.replace``; the manifest is written last, so it never names a pair that is not
fully on disk. A file whose checksum does not match is refused with its name; if the manifest
itself is lost, :func:`find_resumable` picks the newest pair that loads cleanly.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any, Optional

import torch

from ..utils.io import atomic_write_bytes, atomic_write_json, first_line

POINTER = "checkpoint.json"
KEEP = 2  # complete checkpoints kept on disk


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save a model state dict as safetensors (atomically); ``metadata`` values must be str."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, altered or not what it claims to be."""


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_weights(path: str | Path, expected_sha256: Optional[str] = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load safetensors weights and their metadata (no code is executed). With ``expected_sha256``
    (or when the folder's manifest lists the file) the bytes are verified first."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    verify(path, expected_sha256)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({first_line(e)})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """A safetensors file's metadata alone (its JSON header; no tensor is read, nothing verified)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({first_line(e)})") from None


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | Path, expected_sha256: Optional[str] = None) -> dict[str, Any]:
    """Load a training state with ``weights_only=True``: anything but tensors, numbers, strings and
    containers of them is refused, with the file named."""
    path = Path(path)
    verify(path, expected_sha256)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"{path}: refused to load as a training state ({first_line(e)})") from None


_TAG_NAME = re.compile(r"^(epoch-\d{4}|interrupted)$")


def is_tag(tag: object) -> bool:
    """Whether ``tag`` names a checkpoint of this folder: ``epoch-NNNN`` or ``interrupted``, a bare
    name (a manifest from elsewhere must never point at, or prune, files outside its folder)."""
    return isinstance(tag, str) and _TAG_NAME.match(tag) is not None


def read_manifest(directory: str | Path) -> Optional[dict[str, Any]]:
    pointer = Path(directory) / POINTER
    if not pointer.is_file():
        return None
    try:
        manifest = json.loads(pointer.read_text())
        weights, state = manifest["weights"], manifest["state"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise CheckpointError(f"{pointer} is not a checkpoint manifest; delete it to recover from the newest verified checkpoint") from None
    names = [weights, state] + list(manifest.get("history", [])) + list(manifest.get("sha256", {}))
    bad = [n for n in names if not isinstance(n, str) or n != Path(n).name or n in ("", ".", "..")]
    if bad or not (is_tag(str(weights).removesuffix(".safetensors")) and is_tag(str(state).removesuffix(".state.pt"))):
        raise CheckpointError(f"{pointer} names files outside its folder or not of a checkpoint ({', '.join(map(repr, bad or [weights, state]))}); "
                              "refusing it — delete it to recover from the newest verified checkpoint")
    return manifest


def verify(path: Path, expected: Optional[str] = None) -> None:
    """Check ``path`` against ``expected`` or, failing that, its folder's manifest (when it lists it)."""
    if expected is None:
        try:
            manifest = read_manifest(path.parent)
        except CheckpointError:
            manifest = None
        expected = (manifest or {}).get("sha256", {}).get(path.name)
    if expected is not None and sha256(path) != expected:
        raise CheckpointError(f"{path} does not match the checksum recorded in {path.parent / POINTER}: the file was altered or damaged")


def save_checkpoint(directory: str | Path, tag: str, weights: dict[str, torch.Tensor], state: dict[str, Any], metadata: dict[str, str],
                    extra_files: tuple[str, ...] = ()) -> Path:
    """Write checkpoint ``tag`` into ``directory``, make it the latest (with the checksums of its
    files and of ``extra_files``) and prune old ones."""
    directory = Path(directory)
    weights_name, state_name = f"{tag}.safetensors", f"{tag}.state.pt"
    save_weights(directory / weights_name, weights, metadata)
    save_state(directory / state_name, state)
    try:
        previous = read_manifest(directory) or {}
    except CheckpointError:
        previous = {}
    history = [h for h in previous.get("history", []) if is_tag(h) and h != tag] + [tag]
    kept = history[-KEEP:]
    names = [f"{t}{suffix}" for t in kept for suffix in (".safetensors", ".state.pt")] + list(extra_files)
    checksums = {n: sha256(directory / n) for n in names if (directory / n).is_file()}
    atomic_write_json(directory / POINTER, {"weights": weights_name, "state": state_name, "history": kept, "sha256": checksums})
    for old in history[:-KEEP]:  # bare tags only (read_manifest and the filter above): never a path
        (directory / f"{old}.safetensors").unlink(missing_ok=True)
        (directory / f"{old}.state.pt").unlink(missing_ok=True)
    return directory / weights_name


def latest_checkpoint(directory: str | Path) -> tuple[Path, Path] | None:
    """Paths of the latest (weights, state) pair the manifest names, or None without a manifest."""
    manifest = read_manifest(directory)
    if manifest is None:
        return None
    return Path(directory) / manifest["weights"], Path(directory) / manifest["state"]


_TAG = re.compile(r"^(epoch-\d{4}|interrupted)\.safetensors$")


def find_resumable(directory: str | Path, damaged: Optional[list[str]] = None) -> tuple[Path, Path] | None:
    """The newest (weights, state) pair in ``directory`` that verifies and loads: the manifest's
    if it is intact, else — manifest lost or its files damaged — every pair on disk, newest
    training step first. None when no pair loads. Each file that was tried and did not load is
    appended to ``damaged`` as "path: why"."""
    directory = Path(directory)
    damaged = [] if damaged is None else damaged
    try:
        latest = latest_checkpoint(directory)
    except CheckpointError as e:
        damaged.append(str(e))
        latest = None
    if latest is not None and _loads(*latest, damaged):
        return latest
    candidates = []
    for weights in sorted(directory.glob("*.safetensors")):
        state = weights.with_name(weights.name.replace(".safetensors", ".state.pt"))
        if latest is not None and weights == latest[0]:
            continue  # tried above
        if _TAG.match(weights.name) and state.is_file() and _loads(weights, state, damaged):
            s = load_state(state)
            candidates.append(((s["epoch"], s["step"]), weights, state))
    if not candidates:
        return None
    _, weights, state = max(candidates, key=lambda c: c[0])
    return weights, state


def _loads(weights: Path, state: Path, damaged: list[str]) -> bool:
    for path, load in ((weights, load_weights), (state, load_state)):
        try:
            load(path)
        except (CheckpointError, FileNotFoundError, OSError) as e:
            damaged.append(first_line(e))  # names the file
            return False
    return True


RUN_FILES = ("config.json", POINTER, "summary.json", "metrics.jsonl", "best.safetensors")


def holds_run(directory: str | Path) -> bool:
    """Whether ``directory`` holds a run's results (so it must not be overwritten): a checkpoint, a
    manifest, best weights, metrics or a summary. A ``config.json`` alone — a run that stopped
    before its first checkpoint — is not one: the corrected command may start over there."""
    directory = Path(directory)
    if not directory.is_dir():
        return False
    if any((directory / n).exists() for n in RUN_FILES if n != "config.json"):
        return True
    return any(is_tag(p.name.removesuffix(".safetensors").removesuffix(".state.pt")) for p in directory.iterdir())

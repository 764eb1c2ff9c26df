"""Checkpoints that survive a crash at any instant and load without unpickling code.

A checkpoint is two files per epoch — the weights as safetensors (with the run's config in its
metadata) and the training state (optimizer, step, RNG, scaler) as a ``torch.save`` of plain
tensors and numbers, loadable with ``weights_only=True`` — plus ``checkpoint.json``, which
names the latest complete pair. Every file is written to a temporary file, fsynced and moved
into place with ``os.replace``; ``checkpoint.json`` is written last, so it never names a pair
that is not fully on disk.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from ..utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

POINTER = "checkpoint.json"
KEEP = 2  # complete checkpoints kept on disk


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save a model state dict as safetensors (atomically); ``metadata`` values must be str."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load safetensors weights and their metadata (no code is executed)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def save_checkpoint(directory: str | Path, tag: str, weights: dict[str, torch.Tensor], state: dict[str, Any], metadata: dict[str, str]) -> Path:
    """Write checkpoint ``tag`` into ``directory`` and make it the latest; prune old ones."""
    directory = Path(directory)
    weights_name, state_name = f"{tag}.safetensors", f"{tag}.state.pt"
    save_weights(directory / weights_name, weights, metadata)
    save_state(directory / state_name, state)
    pointer = directory / POINTER
    history = json.loads(pointer.read_text())["history"] if pointer.is_file() else []
    history = [h for h in history if h != tag] + [tag]
    atomic_write_json(pointer, {"weights": weights_name, "state": state_name, "history": history[-KEEP:]})
    for old in history[:-KEEP]:
        (directory / f"{old}.safetensors").unlink(missing_ok=True)
        (directory / f"{old}.state.pt").unlink(missing_ok=True)
    return directory / weights_name


def latest_checkpoint(directory: str | Path) -> tuple[Path, Path] | None:
    """Paths of the latest complete (weights, state) pair in ``directory``, or None."""
    pointer = Path(directory) / POINTER
    if not pointer.is_file():
        return None
    info = json.loads(pointer.read_text())
    return Path(directory) / info["weights"], Path(directory) / info["state"]

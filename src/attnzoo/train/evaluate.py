"""Evaluate a checkpoint written by ``attnzoo train`` (weights + config in one safetensors file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..data import load_dataset
from . import checkpoint as ckpt
from .config import TrainConfig
from .engine import BatchMaker, build_model, evaluate, select_device


def resolve_weights(path: str | Path) -> Path:
    """A weights file, or a run folder (its latest checkpoint: the model as training left it)."""
    path = Path(path)
    if path.is_dir():
        latest = ckpt.latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"{path} holds no checkpoint (no {ckpt.POINTER}); pass a .safetensors file or a run folder")
        return latest[0]
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def load_trained_model(path: str | Path, device: str = "cpu"):
    """(model in eval mode, its TrainConfig, the checkpoint metadata) from a checkpoint."""
    weights_path = resolve_weights(path)
    weights, meta = ckpt.load_weights(weights_path)
    if not str(meta.get("format", "")).startswith("attnzoo-checkpoint-") or "config" not in meta:
        raise ValueError(f"{weights_path} is not an attnzoo checkpoint (metadata format {meta.get('format')!r})")
    cfg = TrainConfig.from_checkpoint(json.loads(meta["config"]), meta["format"])
    model = build_model(cfg, int(meta["num_classes"]))
    model.load_state_dict(weights)
    return model.to(select_device(device)).eval(), cfg, meta


def evaluate_checkpoint(path: str | Path, dataset: Optional[str] = None, data_root: Optional[str] = None, batch_size: int = 512, device: str = "auto") -> dict[str, Any]:
    model, cfg, meta = load_trained_model(path, device)
    name = dataset or cfg.data.dataset
    ds = load_dataset(name, "test", data_root or cfg.data.data_root, cfg.data.test_size, cfg.data.data_seed, **cfg.data.dataset_options(name))
    if ds.num_classes != int(meta["num_classes"]):
        raise ValueError(f"{name} has {ds.num_classes} classes but the checkpoint was trained on {meta['num_classes']}")
    dev = next(model.parameters()).device
    batches = BatchMaker(ds, dev, json.loads(meta["mean"]), json.loads(meta["std"]), 0, False, cfg.execution.channels_last)
    result = evaluate(model, batches, ds.num_classes, batch_size)
    return {"checkpoint": str(resolve_weights(path)), "dataset": name, "epoch": int(meta.get("epoch", 0)), **result}

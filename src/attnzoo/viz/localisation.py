"""A localisation score: how much of a spatial attention map falls inside the target's box.

``score = Σ_{p ∈ box} m(p) / Σ_p m(p)`` for a non-negative map ``m`` upsampled (bilinear) to the
image size. A map concentrated on the box scores 1; a uniform map scores the box's share of the
image area, which is the baseline to beat.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..utils.io import read_json


def box_mask(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) boolean masks of boxes ``(x0, y0, x1, y1)`` (pixel units, end exclusive)."""
    h, w = size
    ys = torch.arange(h)[None, :, None]
    xs = torch.arange(w)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def mass_in_box(maps: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Per-image share of a map's mass inside the box. ``maps``: (N, h, w), non-negative."""
    if maps.dim() != 3 or maps.shape[0] != boxes.shape[0]:
        raise ValueError(f"mass_in_box: expected maps (N, h, w) and boxes (N, 4), got {tuple(maps.shape)} and {tuple(boxes.shape)}")
    if (maps < 0).any():
        raise ValueError("mass_in_box: maps must be non-negative")
    up = F.interpolate(maps[:, None].float(), size=image_size, mode="bilinear", align_corners=False)[:, 0].clamp_min(0)
    inside = (up * box_mask(boxes, image_size)).flatten(1).sum(1)
    return inside / up.flatten(1).sum(1).clamp_min(1e-12)


def uniform_share(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """What a uniform map scores: the box's share of the image area."""
    return box_mask(boxes, image_size).flatten(1).float().mean(1)


@torch.no_grad()
def localisation_scores(model, images: torch.Tensor, boxes: torch.Tensor, gradcam_layer: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Mean localisation score of every spatial attention layer of ``model`` (and of Grad-CAM at
    ``gradcam_layer``) over normalised ``images`` with target ``boxes``."""
    from .capture import capture_attention
    from .gradcam import grad_cam

    size = tuple(images.shape[-2:])
    sums: dict[str, float] = {}
    cam_sum, n = 0.0, 0
    model.eval()
    for start in range(0, images.shape[0], batch_size):
        x, b = images[start : start + batch_size], boxes[start : start + batch_size]
        with capture_attention(model) as records:
            model(x)
        for name, rec in records.items():
            if rec.spatial is not None:
                sums[name] = sums.get(name, 0.0) + mass_in_box(rec.spatial, b, size).sum().item()
        if gradcam_layer is not None:
            cam_sum += mass_in_box(grad_cam(model, x, gradcam_layer), b, size).sum().item()
        n += x.shape[0]
    result = {"layers": {k: v / n for k, v in sums.items()}, "uniform": uniform_share(boxes, size).mean().item(), "images": n}
    if gradcam_layer is not None:
        result["gradcam"] = cam_sum / n
        result["gradcam_layer"] = gradcam_layer
    return result


def add_localisation(results: dict[str, Any], run_dirs: Sequence[Path], images: int = 500) -> None:
    """For each variant trained on the embedded digits, score its trained model (seed-0 run, or the
    first found) on ``images`` test images: spatial attention layers and Grad-CAM at the last stage."""
    from ..data import DATASETS, get_dataset, load_dataset
    from ..train.evaluate import load_trained_model

    if results.get("dataset") not in DATASETS or not get_dataset(results["dataset"]).has_boxes:  # scores need target boxes
        return
    by_variant: dict[str, Path] = {}
    for d in sorted(run_dirs):
        summary = read_json(Path(d) / "summary.json")
        if summary["variant"] not in by_variant or summary["seed"] == 0:
            by_variant[summary["variant"]] = Path(d)
    for row in results["rows"]:
        run = by_variant.get(row["variant"])
        if run is None:
            continue
        model, cfg, meta = load_trained_model(run, "cpu")
        ds = load_dataset(cfg.data.dataset, "test", cfg.data.data_root, images, cfg.data.data_seed, **cfg.data.dataset_options())
        mean = torch.tensor(json.loads(meta["mean"])).view(1, -1, 1, 1)
        std = torch.tensor(json.loads(meta["std"])).view(1, -1, 1, 1)
        x = (ds.images.float() / 255 - mean) / std
        layout = getattr(model, "layout", None)
        row["localisation"] = localisation_scores(model, x, ds.boxes, gradcam_layer=layout.feature_layer if layout is not None else None)
        row["localisation"]["run"] = str(run)

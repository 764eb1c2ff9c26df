"""Figures of captured attention: overlays, channel-weight bars, self-attention rows, HA-CNN regions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.io import save_figure
from .capture import AttentionRecord


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    save_figure(fig, path, dpi=100)
    return path


def _upsample(m: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    return F.interpolate(m[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def _overlay(ax, image: np.ndarray, heat: np.ndarray, title: str, vmin=None, vmax=None, cmap: str = "jet"):
    ax.imshow(image)
    im = ax.imshow(heat, cmap=cmap, alpha=0.5, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return im


def _grid(n: int, cols: int = 4):
    plt = _plt()
    cols = max(1, min(cols, n))  # a short row is not padded with empty panels
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def spatial_figure(image: np.ndarray, records: Sequence[AttentionRecord], path: Path, gradcam: Optional[tuple[str, torch.Tensor]] = None, title: str = "") -> Optional[Path]:
    """The image, then each layer's spatial attention overlaid (and Grad-CAM beside them)."""
    spatial = [r for r in records if r.spatial is not None]
    if not spatial and gradcam is None:
        return None
    size = image.shape[:2]
    fig, axes = _grid(1 + len(spatial) + (gradcam is not None))
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=8)
    axes[0].axis("off")
    for ax, rec in zip(axes[1:], spatial):
        m = rec.spatial[0]
        desc = "mean over channels of M" if rec.kind == "full" else "spatial weight"
        im = _overlay(ax, image, _upsample(m, size), f"{rec.name}\n{rec.module}: {desc}\n{tuple(m.shape)} → upsampled")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if gradcam is not None:
        layer, cam = gradcam
        im = _overlay(axes[1 + len(spatial)], image, _upsample(cam[0], size), f"Grad-CAM at {layer}\n(predicted class, max = 1)", 0, 1)
        fig.colorbar(im, ax=axes[1 + len(spatial)], fraction=0.046, pad=0.04)
    fig.suptitle(title or "Spatial attention (colour: weight, warm = more attention)", fontsize=10)
    return _save(fig, path)


def channel_figure(records: Sequence[AttentionRecord], path: Path, title: str = "") -> Optional[Path]:
    """One bar chart of channel weights per layer (SE, CBAM channel, MS-CAM global branch...)."""
    chans = [r for r in records if r.channel is not None]
    if not chans:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(chans), 1, figsize=(10, 1.9 * len(chans)), squeeze=False, layout="constrained")
    for ax, rec in zip(axes[:, 0], chans):
        w = rec.channel[0].float().numpy()
        ax.bar(np.arange(len(w)), w, width=1.0, color="tab:blue")
        ax.set_xlim(-0.5, len(w) - 0.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel("weight", fontsize=8)
        source = "global-branch σ" if rec.kind == "full" else "gate"
        ax.set_title(f"{rec.name} — {rec.module} {source}, {len(w)} channels (mean {w.mean():.2f}, min {w.min():.2f}, max {w.max():.2f})", fontsize=8)
    axes[-1, 0].set_xlabel("channel")
    fig.suptitle(title or "Channel attention weights", fontsize=10)
    return _save(fig, path)


def fusion_figure(image: np.ndarray, records: Sequence[AttentionRecord], path: Path, channels: int = 3) -> Optional[Path]:
    """Full-resolution weights M (MS-CAM, AFF, iAFF, HA soft): their mean and the most varied channels."""
    full = [r for r in records if r.kind == "full"]
    if not full:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(full), 1 + channels, figsize=(3.0 * (1 + channels), 2.9 * len(full)), squeeze=False, layout="constrained")
    size = image.shape[:2]
    for row, rec in zip(axes, full):
        m = rec.tensor[0]
        im = _overlay(row[0], image, _upsample(m.mean(0), size), f"{rec.name}\n{rec.module}: mean of M over {m.shape[0]} ch", 0, 1)
        fig.colorbar(im, ax=row[0], fraction=0.046, pad=0.04)
        varied = m.flatten(1).std(1).argsort(descending=True)[:channels]
        for ax, c in zip(row[1:], varied.tolist()):
            im = _overlay(ax, image, _upsample(m[c], size), f"channel {c} of M", 0, 1)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("Fusion / full-resolution attention weights M (1 = take x, 0 = take y for AFF/iAFF)", fontsize=10)
    return _save(fig, path)


def self_attention_figure(image: np.ndarray, records: Sequence[AttentionRecord], path: Path, queries: int = 4) -> Optional[Path]:
    """For each self-attention layer, where a few query pixels attend (rows of softmax(qᵀk))."""
    rows = [r for r in records if r.kind == "rows"]
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(rows), queries, figsize=(3.0 * queries, 3.0 * len(rows)), squeeze=False, layout="constrained")
    size = image.shape[:2]
    for ax_row, rec in zip(axes, rows):
        h, w = rec.input_size
        picks = [(h // 2, w // 2), (h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 2)][:queries]
        maps = rec.rows_for(picks)[0]
        for ax, (qy, qx), m in zip(ax_row, picks, maps):
            im = _overlay(ax, image, _upsample(m, size), f"{rec.name}\nquery ({qy},{qx}) of {h}×{w}")
            ax.plot((qx + 0.5) * size[1] / w - 0.5, (qy + 0.5) * size[0] / h - 0.5, "w*", ms=12, mec="k")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("Self-attention: weight of each key position for the query ★ (rows sum to 1)", fontsize=10)
    return _save(fig, path)


def theta_to_boxes(theta: torch.Tensor, size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """Pixel boxes (x0, y0, x1, y1) of affine_grid regions θ (K, 2, 3) on an image of ``size`` (H, W)."""
    h, w = size
    boxes = []
    for t in theta:
        sx, tx, sy, ty = t[0, 0].item(), t[0, 2].item(), t[1, 1].item(), t[1, 2].item()
        # normalised [-1, 1] (align_corners=False) -> pixels
        x0, x1 = ((tx - sx + 1) * w / 2, (tx + sx + 1) * w / 2)
        y0, y1 = ((ty - sy + 1) * h / 2, (ty + sy + 1) * h / 2)
        boxes.append((x0, y0, x1, y1))
    return boxes


def regions_figure(image: np.ndarray, records: Sequence[AttentionRecord], path: Path) -> Optional[Path]:
    """HA-CNN hard attention: the K regions of each level drawn as boxes."""
    regions = [r for r in records if r.kind == "regions"]
    if not regions:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(regions), figsize=(2.6 * len(regions), 5), squeeze=False, layout="constrained")
    colours = plt.cm.tab10.colors
    for ax, rec in zip(axes[0], regions):
        ax.imshow(image)
        for k, (x0, y0, x1, y1) in enumerate(theta_to_boxes(rec.tensor[0], image.shape[:2])):
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colours[k % 10], lw=2, label=f"region {k}"))
        ax.set_title(f"{rec.name}\nhard attention regions", fontsize=8)
        ax.axis("off")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.suptitle("HA-CNN hard (region-level) attention", fontsize=10)
    return _save(fig, path)

"""The embedded default dataset: real handwritten digits in colour clutter.

Each 3×24×24 image holds one **target** digit, drawn in a red hue, and two **distractor**
digits of other classes drawn in other colours (green, blue, cyan, yellow, magenta — the last
two share the red channel, so "look at the red channel" is not enough), plus small colour
blobs and noise on a tinted background. The label is the target's class, and its box is kept
so attention maps can be scored for localisation. Digits are scikit-learn's 8×8 handwritten
digits (1,797 real scans, shipped inside the package: no download), scaled to 8–12 px.

Train and test images are composed from disjoint sets of source scans (a fixed split of the
1,797), so a test digit was never seen in training, not even as a distractor. Everything is
deterministic given ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import TensorImageDataset

IMAGE_SIZE = 24
DEFAULT_SIZES = {"train": 5000, "test": 2000}
NUM_CLASSES = 10
TRAIN_SOURCE_FRACTION = 0.67
SCALES = (8, 9, 10, 11, 12)
TARGET_HUE = np.array([1.0, 0.15, 0.15])
DISTRACTOR_HUES = np.array(
    [[0.2, 1.0, 0.2], [0.25, 0.35, 1.0], [0.2, 1.0, 1.0], [1.0, 1.0, 0.2], [1.0, 0.25, 1.0]]
)


def _source_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # optional dependency: attnzoo[train]

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    order = np.random.default_rng(0).permutation(len(images))  # fixed: the split never moves
    cut = int(TRAIN_SOURCE_FRACTION * len(images))
    chosen = order[:cut] if split == "train" else order[cut:]
    return images[chosen], digits.target[chosen]


def _scaled(images: np.ndarray) -> dict[int, np.ndarray]:
    t = torch.from_numpy(images)[:, None]
    return {s: F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1).numpy() for s in SCALES}


def make_cluttered_digits(split: str = "train", size: int | None = None, seed: int = 0) -> TensorImageDataset:
    """Build the cluttered-digits ``split`` ("train": 5,000 images, "test": 2,000 by default)."""
    if split not in ("train", "test"):
        raise ValueError(f"digits: split must be 'train' or 'test', got {split!r}")
    size = size if size is not None else (DEFAULT_SIZES[split])
    sources, targets = _source_digits(split)
    scaled = _scaled(sources)
    by_class = [np.flatnonzero(targets == c) for c in range(NUM_CLASSES)]
    # Different streams for train and test even with the same seed. All random draws are
    # made up front, in bulk; the loop below only pastes.
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.integers(0, NUM_CLASSES, size)
    canvas = np.broadcast_to(rng.uniform(0.0, 0.25, (size, 3, 1, 1)), (size, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    blob_hw = rng.integers(2, 5, (size, 4, 2))
    blob_yx = rng.integers(0, IMAGE_SIZE - 4, (size, 4, 2))
    blob_rgb = rng.uniform(0.3, 1.0, (size, 4, 3))
    # Distractor classes: label + 1..9 (mod 10), two different offsets per image.
    offsets = np.argsort(rng.random((size, NUM_CLASSES - 1)), axis=1)[:, :2] + 1
    classes = np.concatenate([(labels[:, None] + offsets) % NUM_CLASSES, labels[:, None]], axis=1)  # target last
    scales = rng.choice(SCALES, (size, 3))
    picks = rng.random((size, 3))
    positions = rng.random((size, 3, 2))
    hues = DISTRACTOR_HUES[rng.integers(len(DISTRACTOR_HUES), size=(size, 3))] * rng.uniform(0.5, 0.9, (size, 3, 1))
    hues[:, 2] = np.clip(TARGET_HUE * rng.uniform(0.85, 1.0, (size, 1)) + rng.uniform(-0.1, 0.1, (size, 3)), 0, 1)
    boxes = np.empty((size, 4), dtype=np.int64)
    for i in range(size):
        img = canvas[i]
        for b in range(4):  # colour blobs, red ones included
            (h, w), (y, x) = blob_hw[i, b], blob_yx[i, b]
            np.maximum(img[:, y : y + h, x : x + w], blob_rgb[i, b, :, None, None], out=img[:, y : y + h, x : x + w])
        for d in range(3):  # two distractors, then the target on top
            s = int(scales[i, d])
            pool = by_class[classes[i, d]]
            digit = scaled[s][pool[int(picks[i, d] * len(pool))]]
            y, x = (positions[i, d] * (IMAGE_SIZE - s + 1)).astype(int)
            region = img[:, y : y + s, x : x + s]
            np.maximum(region, hues[i, d, :, None, None] * digit[None], out=region)
        boxes[i] = (x, y, x + s, y + s)
    canvas += rng.normal(0.0, 0.06, canvas.shape).astype(np.float32)
    images = torch.from_numpy(np.clip(canvas, 0, 1) * 255 + 0.5).to(torch.uint8)
    return TensorImageDataset(images, torch.from_numpy(labels), NUM_CLASSES, torch.from_numpy(boxes), name=f"digits-{split}")


def save_preview(path, count: int = 24, seed: int = 0) -> None:
    """A PNG grid of training images with their labels and target boxes (for the README)."""
    import os
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = make_cluttered_digits("train", size=count, seed=seed)
    cols = 8
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= count:
            continue
        ax.imshow(ds.images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
        x0, y0, x1, y1 = ds.boxes[i].tolist()
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", lw=1, ls="--"))
        ax.set_title(f"label {int(ds.labels[i])}", fontsize=8)
    fig.suptitle("Embedded dataset: classify the red digit (dashed: its box, used for the localisation score)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)

"""Datasets: the embedded cluttered digits, CIFAR-10/100 from a local folder, ImageFolder trees."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from .augment import random_crop_flip
from .cifar import load_cifar
from .base import TensorImageDataset
from .digits import make_cluttered_digits
from .imagefolder import load_image_folder


@dataclass(frozen=True)
class AugmentDefaults:
    padding: int
    flip: bool


# Digits are not mirror-symmetric (a flipped 2 or 7 is not a 2 or 7): no flip for them.
AUGMENT_DEFAULTS = {
    "digits": AugmentDefaults(padding=2, flip=False),
    "cifar10": AugmentDefaults(padding=4, flip=True),
    "cifar100": AugmentDefaults(padding=4, flip=True),
    "imagefolder": AugmentDefaults(padding=0, flip=True),  # set per image size below
}
DATASETS = tuple(AUGMENT_DEFAULTS)


def load_dataset(
    name: str,
    split: str,
    root: str | Path | None = None,
    image_size: int = 64,
    size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    allow_empty_classes: bool = False,
) -> TensorImageDataset:
    """Load dataset ``name`` ``split`` ("train" or "test") as uint8 tensors in memory.

    ``digits`` is built from scikit-learn's digits (``size`` images, ``seed``); ``cifar10``,
    ``cifar100`` and ``imagefolder`` read ``root``.
    """
    if name == "digits":
        return _cached_digits(split, size, seed)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if root is None:
        raise ValueError(f"dataset {name!r} needs a data root folder (--data-root)")
    if not Path(root).is_dir():
        raise ValueError(f"dataset {name!r}: data root {root} is not a folder")
    if name == "imagefolder":
        return load_image_folder(root, split, image_size=image_size, progress=progress, allow_empty_classes=allow_empty_classes)
    return load_cifar(name, root, split)


@functools.lru_cache(maxsize=4)
def _cached_digits(split: str, size: int | None, seed: int) -> TensorImageDataset:
    # A compare worker trains many runs on the same data: build it once per process.
    # Callers only index the tensors, never write to them.
    return make_cluttered_digits(split, size=size, seed=seed)


def augment_defaults(name: str, image_size: int) -> AugmentDefaults:
    if name == "imagefolder":
        return AugmentDefaults(padding=max(1, image_size // 8), flip=True)
    return AUGMENT_DEFAULTS[name]


__all__ = [
    "DATASETS",
    "TensorImageDataset",
    "augment_defaults",
    "load_cifar",
    "load_dataset",
    "load_image_folder",
    "make_cluttered_digits",
    "random_crop_flip",
]

"""Datasets, by name: the embedded cluttered digits, Fashion-MNIST and MNIST (IDX files), CIFAR-10/100
from a local folder, ImageFolder trees.

Each registered :class:`Dataset` carries its loader, its augmentation (random-crop padding, whether
mirroring keeps a label), its native input size and whether it has target boxes (what localisation
scores need), so the rest of attnzoo asks the dataset instead of testing its name.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..utils.constraints import Integer, Rule
from ..utils.options import check_options
from ..utils.registry import Registry
from .augment import random_crop_flip
from .base import TensorImageDataset
from .cifar import load_cifar
from .digits import make_cluttered_digits
from .idx import load_idx
from .imagefolder import load_image_folder


@dataclass(frozen=True)
class AugmentDefaults:
    padding: int
    flip: bool


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: ``load(split, root, size, seed, progress, **options)``, its augmentation,
    its native (H, W) (None: set by its ``image_size`` option), and whether it has boxes.

    Its options (``--data-opt KEY=VALUE``) are the keyword-only parameters of ``load``: their
    defaults say their types, ``option_rules`` what values they take (:meth:`check_options`)."""

    name: str
    load: Callable[..., TensorImageDataset]
    padding: int
    flip: bool
    input_size: Optional[tuple[int, int]]
    has_boxes: bool = False
    needs_root: bool = True  # False: embedded, or a default folder (Debian's packages)
    option_rules: Mapping[str, Rule] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """Each option's name and default."""
        return {p.name: p.default for p in inspect.signature(self.load).parameters.values() if p.kind is p.KEYWORD_ONLY}

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse an option this dataset does not take (naming the valid ones), a value of the wrong
        type or one its rule refuses: one line each."""
        check_options(self.load, options, f"dataset {self.name!r}", skip=_LOAD_ARGUMENTS)
        for key, value in options.items():
            if key in self.option_rules:
                self.option_rules[key].check(key, value, f"dataset {self.name!r}")


_LOAD_ARGUMENTS = ("split", "root", "size", "seed", "progress")


DATASETS_REGISTRY: Registry[Dataset] = Registry("dataset")


def register_dataset(dataset: Dataset) -> Dataset:
    return DATASETS_REGISTRY.register(dataset.name, dataset)


@functools.lru_cache(maxsize=4)
def _cached_digits(split: str, size: int | None, seed: int) -> TensorImageDataset:
    # A compare worker trains many runs on the same data: build it once per process.
    # Callers only index the tensors, never write to them.
    return make_cluttered_digits(split, size=size, seed=seed)


@functools.lru_cache(maxsize=4)
def _cached_idx(name: str, split: str, root: Optional[str], size: Optional[int], seed: int) -> TensorImageDataset:
    return load_idx(name, split, root, size, seed)


def _load_digits(split, root, size, seed, progress=False) -> TensorImageDataset:
    return _cached_digits(split, size, seed)


def _idx_loader(name: str) -> Callable[..., TensorImageDataset]:
    def load(split, root, size, seed, progress=False) -> TensorImageDataset:
        return _cached_idx(name, split, None if root is None else str(root), size, seed)
    return load


def _cifar_loader(name: str) -> Callable[..., TensorImageDataset]:
    def load(split, root, size, seed, progress=False) -> TensorImageDataset:
        return load_cifar(name, root, split)
    return load


def _load_image_folder(split, root, size, seed, progress=False, *, image_size: int = 64,
                       allow_empty_classes: bool = False) -> TensorImageDataset:
    return load_image_folder(root, split, image_size=image_size, progress=progress, allow_empty_classes=allow_empty_classes)


# Digits and clothes are not mirror-symmetric classes (a flipped 2 or 7 is no 2 or 7; text-like
# classes neither): no flip unless chosen.
register_dataset(Dataset("digits", _load_digits, padding=2, flip=False, input_size=(24, 24), has_boxes=True, needs_root=False))
for _name in ("fashion-mnist", "mnist"):
    register_dataset(Dataset(_name, _idx_loader(_name), padding=4, flip=False, input_size=(28, 28), needs_root=False))
for _name in ("cifar10", "cifar100"):
    register_dataset(Dataset(_name, _cifar_loader(_name), padding=4, flip=True, input_size=(32, 32)))
register_dataset(Dataset("imagefolder", _load_image_folder, padding=0, flip=True, input_size=None,
                         option_rules={"image_size": Integer(minimum=1)}))
DATASETS = tuple(DATASETS_REGISTRY.names())


def get_dataset(name: str) -> Dataset:
    return DATASETS_REGISTRY.get(name)


def load_dataset(
    name: str,
    split: str,
    root: str | Path | None = None,
    size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> TensorImageDataset:
    """Load dataset ``name`` ``split`` ("train" or "test") as uint8 tensors in memory.

    ``digits`` is built from scikit-learn's digits (``size`` images, ``seed``); ``fashion-mnist`` and
    ``mnist`` read IDX files from ``root`` (default: Debian's folder; ``size`` draws a subset with
    ``seed``); ``cifar10``, ``cifar100`` and ``imagefolder`` read ``root``. ``options`` are the
    dataset's own (``get_dataset(name).options()``; imagefolder: ``image_size``, ``allow_empty_classes``).
    """
    dataset = get_dataset(name)
    dataset.check_options(options)
    if dataset.needs_root:
        if root is None:
            raise ValueError(f"dataset {name!r} needs a data root folder (--data-root)")
        if not Path(root).is_dir():
            raise ValueError(f"dataset {name!r}: data root {root} is not a folder")
    return dataset.load(split, root, size, seed, progress=progress, **options)


def augment_defaults(name: str, image_size: int) -> AugmentDefaults:
    """The dataset's crop padding and flip; a dataset resized to ``image_size`` pads by an eighth of it."""
    dataset = get_dataset(name)
    if dataset.input_size is None:
        return AugmentDefaults(padding=max(1, image_size // 8), flip=dataset.flip)
    return AugmentDefaults(padding=dataset.padding, flip=dataset.flip)


__all__ = [
    "DATASETS",
    "Dataset",
    "TensorImageDataset",
    "augment_defaults",
    "get_dataset",
    "load_cifar",
    "load_dataset",
    "load_idx",
    "load_image_folder",
    "make_cluttered_digits",
    "random_crop_flip",
    "register_dataset",
]

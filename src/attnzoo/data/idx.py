"""MNIST-format (IDX) datasets from local files: Fashion-MNIST and MNIST.

The four standard files — ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` — raw or ``.gz``, from ``root`` or, by
default, where Debian's packages put them (``apt-get install dataset-fashion-mnist`` installs
Fashion-MNIST under ``/usr/share/datasets/fashion-mnist/``). Nothing is downloaded.

An IDX file is a big-endian header — two zero bytes, a type code (0x08: unsigned bytes), the number
of dimensions, then each dimension as a 4-byte count — followed by the values. Every header field,
the file's length and the agreement between an image file and its label file are checked, each
failure one line naming the file. Grey images are repeated on three channels, so every backbone
takes them as they are.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .base import TensorImageDataset

DEFAULT_ROOTS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
INSTALL_HINT = {"fashion-mnist": "apt-get install dataset-fashion-mnist (Debian), or pass --data-root with the four IDX files",
                "mnist": "pass --data-root with the four MNIST IDX files"}
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
UBYTE = 0x08


def find_file(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise ValueError(f"{root}: no {stem} (or {stem}.gz)")


def read_idx(path: str | Path, dims: int) -> np.ndarray:
    """The unsigned-byte array of IDX file ``path``, which must have ``dims`` dimensions."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip: a truncated or corrupt stream
        raise ValueError(f"{path}: cannot be read as {'gzip' if opener is gzip.open else 'a file'} ({e})") from None
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code != UBYTE:
        raise ValueError(f"{path}: wrong magic number 0x{int.from_bytes(data[:4], 'big'):08x}; expected 0x000008{dims:02x} "
                         "(an IDX file of unsigned bytes)")
    if ndim != dims:
        raise ValueError(f"{path}: {ndim} dimensions, expected {dims} ({'images' if dims == 3 else 'labels'})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated in its header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, but its header {tuple(shape)} needs {expected}"
                         + (" (truncated)" if len(data) < expected else ""))
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_idx(name: str, split: str, root: str | Path | None = None, size: Optional[int] = None, seed: int = 0) -> TensorImageDataset:
    """Split ``split`` ("train" or "test") of IDX dataset ``name``; ``size`` draws that many images
    (a fixed subset for a given ``seed``, stratified by nothing: uniform without replacement)."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(root) if root is not None else Path(DEFAULT_ROOTS[name])
    if not folder.is_dir():
        raise ValueError(f"dataset {name!r}: {folder} is not a folder; {INSTALL_HINT[name]}")
    images_path, labels_path = (find_file(folder, stem) for stem in FILES[split])
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{labels_path}: {labels.shape[0]} labels for the {images.shape[0]} images of {images_path}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    index = np.arange(images.shape[0])
    if size is not None and size < len(index):
        index = np.sort(np.random.default_rng(seed).choice(len(index), size, replace=False))
    grey = torch.from_numpy(images[index].copy())
    return TensorImageDataset(grey[:, None].expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(labels[index].astype(np.int64)),
                              10, name=name)

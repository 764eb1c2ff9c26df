"""CIFAR-10 / CIFAR-100 from a local folder, in the binary or the python (pickle) format.

The python format is read with a restricted unpickler that only accepts the numpy array
reconstruction the files need; any other object in the pickle is refused.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from .base import TensorImageDataset

RECORD_PIXELS = 3 * 32 * 32

LAYOUTS = {
    "cifar10": {
        "bin": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"]),
        "py": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    },
    "cifar100": {
        "bin": ("cifar-100-binary", ["train.bin"], ["test.bin"]),
        "py": ("cifar-100-python", ["train"], ["test"]),
    },
}


def _expected_layout(name: str) -> str:
    lines = []
    for fmt, (folder, train, test) in LAYOUTS[name].items():
        lines.append(f"  {folder}/ ({'binary' if fmt == 'bin' else 'python'} format): {', '.join(train + test)}")
    return "\n".join(lines)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR python files: numpy arrays, dicts, lists, bytes and str only."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Protocol-2 pickles written by Python 3 store raw bytes via codecs.encode(str, "latin1").
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: CIFAR files hold only numpy arrays")


def _read_python_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        try:
            batch = _ArrayOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: not loaded ({e})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError(f"{path}: not a CIFAR python batch (expected a dict with b'data' and {label_key!r})")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(batch[label_key], dtype=np.int64)


def _read_binary_batch(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + RECORD_PIXELS
    if raw.size == 0 or raw.size % record:
        raise ValueError(f"{path}: size {raw.size} bytes is not a whole number of {record}-byte CIFAR records")
    raw = raw.reshape(-1, record)
    # CIFAR-100 records are <coarse label><fine label><pixels>; we use the fine label.
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32), raw[:, label_bytes - 1].astype(np.int64)


def load_cifar(name: str, root: str | Path, split: str) -> TensorImageDataset:
    """Load CIFAR ``name`` ("cifar10" or "cifar100") ``split`` ("train"/"test") from ``root``.

    ``root`` is the folder that holds the extracted archive folder, or that folder itself.
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown CIFAR dataset {name!r}; expected 'cifar10' or 'cifar100'")
    if split not in ("train", "test"):
        raise ValueError(f"{name}: split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    for fmt, (folder, train_files, test_files) in LAYOUTS[name].items():
        for base in (root / folder, root):
            files = [base / f for f in (train_files if split == "train" else test_files)]
            if all(f.is_file() for f in files):
                break
        else:
            continue
        if fmt == "bin":
            parts = [_read_binary_batch(f, 1 if name == "cifar10" else 2) for f in files]
        else:
            parts = [_read_python_batch(f, b"labels" if name == "cifar10" else b"fine_labels") for f in files]
        images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        num_classes = 10 if name == "cifar10" else 100
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name}: labels outside 0..{num_classes - 1} in {base}")
        return TensorImageDataset(images, labels, num_classes, name=f"{name}-{split}")
    raise ValueError(f"{name}: no {split} files found under {root}; expected one of:\n{_expected_layout(name)}")

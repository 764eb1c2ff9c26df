"""Fashion-MNIST / MNIST IDX files: read exactly, every malformed file a one-line error naming it."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from attnzoo.data import augment_defaults, get_dataset, load_dataset
from attnzoo.data.idx import DEFAULT_ROOTS, load_idx, read_idx


def _write_idx(path: Path, array: np.ndarray, compress: bool = False, magic: bytes | None = None) -> Path:
    header = magic if magic is not None else struct.pack(">HBB", 0, 0x08, array.ndim)
    data = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _make_dataset(root: Path, train: int = 12, test: int = 5, compress: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", train), ("t10k", test)):
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        _write_idx(root / f"{split}-images-idx3-ubyte", images, compress)
        _write_idx(root / f"{split}-labels-idx1-ubyte", labels, compress)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_images_and_labels_are_read_exactly(tmp_path, compress):
    arrays = _make_dataset(tmp_path, compress=compress)
    train = load_dataset("fashion-mnist", "train", tmp_path)
    test = load_dataset("mnist", "test", tmp_path)
    images, labels = arrays["train"]
    assert train.images.shape == (12, 3, 28, 28) and train.images.dtype == torch.uint8 and train.num_classes == 10
    assert torch.equal(train.images[:, 0], torch.from_numpy(images.astype(np.uint8)))
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grey on three channels
    assert torch.equal(train.labels, torch.from_numpy(labels.astype(np.int64)))
    assert len(test) == 5


def test_train_size_draws_a_fixed_subset_per_data_seed(tmp_path):
    _make_dataset(tmp_path, train=50)
    a = load_idx("fashion-mnist", "train", tmp_path, size=10, seed=1)
    b = load_idx("fashion-mnist", "train", tmp_path, size=10, seed=1)
    c = load_idx("fashion-mnist", "train", tmp_path, size=10, seed=2)
    assert len(a) == 10 and torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_malformed_files_are_one_line_errors_naming_the_file(tmp_path):
    good = np.zeros((4, 28, 28))
    path = _write_idx(tmp_path / "images", good)
    data = path.read_bytes()
    (tmp_path / "short").write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"short: 3142 bytes, but its header \(4, 28, 28\) needs 3152 \(truncated\)"):
        read_idx(tmp_path / "short", 3)
    _write_idx(tmp_path / "magic", good, magic=b"\x00\x00\x0d\x03")
    with pytest.raises(ValueError, match=r"magic: wrong magic number 0x00000d03; expected 0x00000803"):
        read_idx(tmp_path / "magic", 3)
    with pytest.raises(ValueError, match=r"images: 3 dimensions, expected 1 \(labels\)"):
        read_idx(path, 1)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(data)[:-20])
    with pytest.raises(ValueError, match=r"broken.gz: cannot be read as gzip"):
        read_idx(tmp_path / "broken.gz", 3)


def test_a_label_file_of_another_length_is_refused(tmp_path):
    _make_dataset(tmp_path, compress=False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(11))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: 11 labels for the 12 images of .*train-images-idx3-ubyte"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_a_missing_folder_says_how_to_install_it(tmp_path):
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no t10k-images-idx3-ubyte \(or t10k-images-idx3-ubyte.gz\)"):
        load_dataset("mnist", "test", tmp_path)


def test_augmentation_fits_the_data():
    assert augment_defaults("fashion-mnist", 28).padding == 4 and not augment_defaults("fashion-mnist", 28).flip
    assert get_dataset("fashion-mnist").input_size == (28, 28) and not get_dataset("fashion-mnist").has_boxes
    assert get_dataset("digits").has_boxes


@pytest.mark.skipif(not Path(DEFAULT_ROOTS["fashion-mnist"]).is_dir(),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_the_real_fashion_mnist_files():
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60000, 3, 28, 28) and len(test) == 10000
    assert torch.bincount(train.labels).tolist() == [6000] * 10 and torch.bincount(test.labels).tolist() == [1000] * 10

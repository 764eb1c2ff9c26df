import pickle

import numpy as np
import pytest
import torch

from attnzoo.data import load_cifar, load_dataset


def _records(n, label_bytes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, (n, label_bytes), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return labels, pixels


def test_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    expected = []
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        labels, pixels = _records(4, 1, i)
        (folder / name).write_bytes(np.concatenate([labels, pixels], axis=1).tobytes())
        expected.append((labels[:, 0], pixels))
    train = load_cifar("cifar10", tmp_path, "train")
    assert train.images.shape == (20, 3, 32, 32) and train.num_classes == 10
    assert torch.equal(train.labels, torch.from_numpy(np.concatenate([e[0] for e in expected[:5]]).astype(np.int64)))
    assert torch.equal(train.images[0].flatten(), torch.from_numpy(expected[0][1][0]))
    test = load_dataset("cifar10", "test", root=folder)  # the archive folder itself also works
    assert test.images.shape == (4, 3, 32, 32)


def test_cifar100_binary_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for name in ("train.bin", "test.bin"):
        coarse = np.full((3, 1), 7, np.uint8)
        fine = np.array([[42], [99], [0]], np.uint8)
        pixels = np.zeros((3, 3072), np.uint8)
        (folder / name).write_bytes(np.concatenate([coarse, fine, pixels], axis=1).tobytes())
    ds = load_cifar("cifar100", tmp_path, "train")
    assert ds.labels.tolist() == [42, 99, 0] and ds.num_classes == 100


def test_cifar10_python_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072), b"labels": [3, 5], b"batch_label": b"x"}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    ds = load_cifar("cifar10", tmp_path, "test")
    assert ds.labels.tolist() == [3, 5]
    assert ds.images[0, 0, 0, :4].tolist() == [0, 1, 2, 3]


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_python_format_refuses_arbitrary_objects(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": Evil(), b"labels": [1]}))
    with pytest.raises(ValueError, match=r"cifar-10-batches-py/test_batch: not loaded \(refusing to unpickle builtins.print: CIFAR files hold only numpy arrays\)$"):
        load_cifar("cifar10", tmp_path, "test")


def test_missing_folder_names_expected_layout(tmp_path):
    with pytest.raises(ValueError, match=r"(?s)cifar10: no train files found .*cifar-10-batches-bin/ \(binary format\): data_batch_1\.bin"):
        load_cifar("cifar10", tmp_path, "train")
    with pytest.raises(ValueError, match="is not a folder"):
        load_dataset("cifar10", "train", root=tmp_path / "nope")
    with pytest.raises(ValueError, match="needs a data root"):
        load_dataset("cifar100", "train")


def test_truncated_binary_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(ValueError, match="not a whole number of 3073-byte CIFAR records"):
        load_cifar("cifar10", tmp_path, "test")

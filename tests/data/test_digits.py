import torch

from attnzoo.data import make_cluttered_digits
from attnzoo.data.digits import TRAIN_SOURCE_FRACTION, _source_digits


def test_deterministic_given_seed_and_different_across_seeds():
    a = make_cluttered_digits("train", size=64, seed=3)
    b = make_cluttered_digits("train", size=64, seed=3)
    c = make_cluttered_digits("train", size=64, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, c.images)


def test_shapes_dtypes_and_boxes_inside_image():
    ds = make_cluttered_digits("test", size=200, seed=0)
    assert ds.images.shape == (200, 3, 24, 24) and ds.images.dtype == torch.uint8
    assert ds.labels.min() >= 0 and ds.labels.max() <= 9 and ds.num_classes == 10
    x0, y0, x1, y1 = ds.boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 24).all() and (y1 <= 24).all()
    assert ((x1 - x0) >= 8).all() and ((x1 - x0) == (y1 - y0)).all()
    # every class appears
    assert set(ds.labels.tolist()) == set(range(10))


def test_target_is_red_inside_its_box():
    ds = make_cluttered_digits("train", size=100, seed=1)
    img = ds.images.float()
    inside, outside = [], []
    for i in range(100):
        x0, y0, x1, y1 = ds.boxes[i].tolist()
        red_excess = img[i, 0] - img[i, 1:].max(0).values
        inside.append(red_excess[y0:y1, x0:x1].max())
        mask = torch.ones(24, 24, dtype=torch.bool)
        mask[y0:y1, x0:x1] = False
        outside.append(red_excess[mask].mean())
    assert torch.stack(inside).mean() > torch.stack(outside).mean() + 100


def test_train_and_test_come_from_disjoint_source_scans():
    train_imgs, _ = _source_digits("train")
    test_imgs, _ = _source_digits("test")
    assert len(train_imgs) == int(TRAIN_SOURCE_FRACTION * 1797) and len(train_imgs) + len(test_imgs) == 1797
    train_set = {a.tobytes() for a in train_imgs}
    # a handful of scans are exact duplicates in the source data; all others must not be shared
    shared = sum(a.tobytes() in train_set for a in test_imgs)
    assert shared <= 3


def test_bad_split():
    import pytest

    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        make_cluttered_digits("val")

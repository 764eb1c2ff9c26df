import numpy as np
import pytest
from PIL import Image

from attnzoo.data import load_dataset, load_image_folder


def _tree(root, split, classes, per_class=2, size=(40, 30)):
    for c, name in enumerate(classes):
        d = root / split / name
        d.mkdir(parents=True)
        for i in range(per_class):
            arr = np.full((size[1], size[0], 3), 40 * c + i, np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png")


def test_loads_resized_center_crops_with_sorted_classes(tmp_path):
    _tree(tmp_path, "train", ["cat", "ant"])
    _tree(tmp_path, "val", ["cat", "ant"], per_class=1)
    train = load_image_folder(tmp_path, "train", image_size=16)
    assert train.images.shape == (4, 3, 16, 16) and train.num_classes == 2
    assert train.classes == ["ant", "cat"]
    assert train.labels.tolist() == [0, 0, 1, 1]
    # _tree fills class k of its list with value 40k + i: "ant" (listed second) is 40, "cat" is 0
    assert train.images[0].float().mean().item() == pytest.approx(40.0, abs=1)
    assert train.images[3].float().mean().item() == pytest.approx(1.0, abs=1)
    test = load_dataset("imagefolder", "test", root=tmp_path, image_size=16)  # a dataset option
    assert test.images.shape == (2, 3, 16, 16)


def test_missing_split_names_layout(tmp_path):
    with pytest.raises(ValueError, match=r"no train folder under .*expected layout root/train/<class>/<image>"):
        load_image_folder(tmp_path, "train")


def test_unreadable_image(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read .*bad.png as an image"):
        load_image_folder(tmp_path, "train")


def test_empty_class_folders(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="class folder\\(s\\) without images in .*train: a \\(pass --data-opt allow_empty_classes=true"):
        load_image_folder(tmp_path, "train")


def test_an_empty_class_among_others_is_refused_or_warned(tmp_path):
    _tree(tmp_path, "train", ["cat", "dog"])
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match="without images in .*: empty"):
        load_image_folder(tmp_path, "train")
    with pytest.warns(UserWarning, match="without images .*: empty"):
        ds = load_image_folder(tmp_path, "train", allow_empty_classes=True)
    assert ds.num_classes == 3 and ds.labels.tolist() == [0, 0, 1, 1]


def test_a_class_only_in_val_is_refused(tmp_path):
    _tree(tmp_path, "train", ["cat", "dog"])
    _tree(tmp_path, "val", ["cat", "dog", "eel"], per_class=1)
    with pytest.raises(ValueError, match="has class folders that .*train lacks: eel"):
        load_image_folder(tmp_path, "test")


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    d = tmp_path / "train" / "a"
    d.mkdir(parents=True)
    value = 32768  # half of the 16-bit range: 128 in 8 bits (PIL's own convert gives 255)
    Image.fromarray(np.full((20, 20), value, np.uint16)).save(d / "half.png")
    with Image.open(d / "half.png") as img:
        assert img.mode.startswith("I")  # a real 16-bit PNG
    ds = load_image_folder(tmp_path, "train", image_size=8)
    assert ds.images.unique().tolist() == [128]


def test_train_reads_an_image_folder_at_the_size_its_data_option_asks(tmp_path):
    import json

    from attnzoo.cli import main

    _tree(tmp_path, "train", ["ant", "cat"], per_class=4)
    _tree(tmp_path, "val", ["ant", "cat"], per_class=2)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "imagefolder", "--data-root", str(tmp_path), "--data-opt", "image_size=12",
                 "--epochs", "1", "--batch-size", "4", "--no-progress", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data_options"] == {"image_size": 12} and "image_size" not in config
    with pytest.raises(SystemExit):  # an unknown dataset option is refused before any work
        main(["train", "--dataset", "imagefolder", "--data-root", str(tmp_path), "--data-opt", "size=12", "--out", str(tmp_path / "x")])

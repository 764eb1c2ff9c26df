"""ImageFolder trees: ``root/<split>/<class>/<image>``, decoded with PIL into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .digits import TensorImageDataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
LAYOUT = "root/train/<class>/<image>.png|jpg|... and root/val/<class>/... (or root/test/...)"


def _resize_center_crop(img, size: int):
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_image_folder(root: str | Path, split: str, image_size: int = 64, classes: list[str] | None = None, progress: bool = False) -> TensorImageDataset:
    """Decode every image of ``root/split`` (shorter side resized to ``image_size``, centre-cropped).

    Class indices follow the sorted class-folder names of the train split (pass ``classes`` to
    fix them). Held in memory as uint8: meant for datasets that fit in RAM.
    """
    from PIL import Image, UnidentifiedImageError  # optional dependency: attnzoo[train]

    root = Path(root)
    split_dirs = {"train": ["train"], "test": ["val", "test"]}.get(split)
    if split_dirs is None:
        raise ValueError(f"imagefolder: split must be 'train' or 'test', got {split!r}")
    folder = next((root / d for d in split_dirs if (root / d).is_dir()), None)
    if folder is None:
        raise ValueError(f"imagefolder: no {'/'.join(split_dirs)} folder under {root}; expected layout {LAYOUT}")
    if classes is None:
        train_dir = root / "train" if (root / "train").is_dir() else folder
        classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"imagefolder: no class folders in {folder}; expected layout {LAYOUT}")
    files = [
        (path, index)
        for index, cls in enumerate(classes)
        if (folder / cls).is_dir()
        for path in sorted((folder / cls).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise ValueError(f"imagefolder: no images found in {folder}; expected layout {LAYOUT}")
    images = np.empty((len(files), 3, image_size, image_size), dtype=np.uint8)
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc=f"decoding {folder}", unit="img")
    for i, (path, _) in enumerate(iterator):
        try:
            with Image.open(path) as img:
                img = _resize_center_crop(img.convert("RGB"), image_size)
                images[i] = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"imagefolder: cannot read {path} as an image: {e}") from None
    labels = torch.tensor([index for _, index in files], dtype=torch.int64)
    ds = TensorImageDataset(torch.from_numpy(images), labels, len(classes), name=f"imagefolder-{split}")
    ds.classes = classes
    return ds

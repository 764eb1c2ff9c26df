"""ImageFolder trees: ``root/<split>/<class>/<image>``, decoded with PIL into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import TensorImageDataset

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


def to_rgb8(img):
    """Any PIL image as 8-bit RGB. 16-bit greyscale ("I;16", "I") is scaled from its 0–65535 range:
    PIL's own ``convert("RGB")`` clips it at 255, which turns a 16-bit PNG nearly all white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        scaled = (np.asarray(img, dtype=np.float64) / 65535.0 * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if img.mode == "F":
        return Image.fromarray((np.asarray(img).clip(0, 1) * 255 + 0.5).astype(np.uint8), mode="L").convert("RGB")
    return img.convert("RGB")


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def load_image_folder(root: str | Path, split: str, image_size: int = 64, classes: list[str] | None = None, progress: bool = False,
                      allow_empty_classes: bool = False) -> TensorImageDataset:
    """Decode every image of ``root/split`` (shorter side resized to ``image_size``, centre-cropped).

    Class indices follow the sorted class-folder names of the train split (pass ``classes`` to
    fix them). A class folder with no images is an error (it would be a class the model can never
    see; ``allow_empty_classes`` turns that into a warning), and so is a class that exists only in
    ``val/``. Held in memory as uint8: meant for datasets that fit in RAM.
    """
    from PIL import Image, UnidentifiedImageError  # optional dependency: attnzoo[train]

    root = Path(root)
    split_dirs = {"train": ["train"], "test": ["val", "test"]}.get(split)
    if split_dirs is None:
        raise ValueError(f"imagefolder: split must be 'train' or 'test', got {split!r}")
    folder = next((root / d for d in split_dirs if (root / d).is_dir()), None)
    if folder is None:
        raise ValueError(f"imagefolder: no {'/'.join(split_dirs)} folder under {root}; expected layout {LAYOUT}")
    train_dir = root / "train" if (root / "train").is_dir() else folder
    if classes is None:
        classes = _class_folders(train_dir)
    if not classes:
        raise ValueError(f"imagefolder: no class folders in {folder}; expected layout {LAYOUT}")
    unknown = sorted(set(_class_folders(folder)) - set(classes))
    if unknown:
        raise ValueError(f"imagefolder: {folder} has class folders that {train_dir} lacks: {', '.join(unknown)}; "
                         "every class needs training images")
    empty = [cls for cls in classes if not _images_in(train_dir / cls)]
    if empty:
        message = f"imagefolder: class folder(s) without images in {train_dir}: {', '.join(empty)}"
        if not allow_empty_classes:
            raise ValueError(message + " (pass --data-opt allow_empty_classes=true to train with them anyway)")
        import warnings

        warnings.warn(message + ": the model keeps an output for each, which no image teaches", stacklevel=2)
    files = [(path, index) for index, cls in enumerate(classes) for path in _images_in(folder / cls)]
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
                img = _resize_center_crop(to_rgb8(img), image_size)
                images[i] = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"imagefolder: cannot read {path} as an image: {e}") from None
    labels = torch.tensor([index for _, index in files], dtype=torch.int64)
    ds = TensorImageDataset(torch.from_numpy(images), labels, len(classes), name=f"imagefolder-{split}")
    ds.classes = classes
    return ds

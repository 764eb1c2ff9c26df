"""``attnzoo viz``: figures of where a model's attention looks on one image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .capture import capture_attention
from .figures import channel_figure, fusion_figure, regions_figure, self_attention_figure, spatial_figure
from .gradcam import grad_cam

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SKIMAGE_SAMPLES = ("astronaut", "chelsea", "coffee", "horse", "camera", "cat", "rocket")


def load_image(path: Optional[str] = None, sample: Optional[str] = None) -> tuple[np.ndarray, str, Optional[torch.Tensor]]:
    """An RGB float image in [0, 1] (H, W, 3), its label, and its target box if known.

    ``path``: an image file. ``sample``: ``digits`` / ``digits:INDEX`` (the embedded test set,
    box known) or a scikit-image sample name (needs attnzoo[viz]).
    """
    if path is not None:
        from PIL import Image, UnidentifiedImageError

        from ..data.imagefolder import to_rgb8

        p = Path(path)
        if not p.is_file():
            raise ValueError(f"viz: no image file at {p}")
        try:
            with Image.open(p) as img:  # 16-bit and float images scaled as the ImageFolder loader scales them
                return np.asarray(to_rgb8(img), dtype=np.float32) / 255, p.name, None
        except Image.DecompressionBombError as e:
            raise ValueError(f"viz: {p} is refused as a decompression bomb ({e})") from None
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"viz: cannot read {p} as an image ({e}); give a PNG/JPEG/... file") from None
    sample = sample or "digits"
    if sample.split(":")[0] == "digits":
        from ..data import make_cluttered_digits

        index = int(sample.split(":")[1]) if ":" in sample else 0
        ds = make_cluttered_digits("test", size=max(index + 1, 16))
        image = ds.images[index].permute(1, 2, 0).float().numpy() / 255
        return image, f"digits test #{index} (label {int(ds.labels[index])})", ds.boxes[index]
    if sample not in SKIMAGE_SAMPLES:
        raise ValueError(f"viz: unknown sample {sample!r}; use digits, digits:INDEX or one of {', '.join(SKIMAGE_SAMPLES)}")
    try:
        from skimage import data
    except ImportError:
        raise ValueError("viz: scikit-image samples need the viz extra: pip install 'attnzoo[viz]'") from None
    img = np.asarray(getattr(data, sample)(), dtype=np.float32)
    img = img / 255 if img.max() > 1 else img
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3], f"scikit-image {sample}", None


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the shorter side and centre-crop to ``size`` (H, W)."""
    t = torch.from_numpy(image).permute(2, 0, 1)[None]
    h, w = t.shape[-2:]
    scale = max(size[0] / h, size[1] / w)
    t = F.interpolate(t, size=(max(size[0], round(h * scale)), max(size[1], round(w * scale))), mode="bilinear", align_corners=False, antialias=True)
    top, left = (t.shape[2] - size[0]) // 2, (t.shape[3] - size[1]) // 2
    return t[0, :, top : top + size[0], left : left + size[1]].permute(1, 2, 0).clamp(0, 1).numpy()


def prepare_model(checkpoint: Optional[str], model_name: Optional[str], attn: Optional[str], fusion: Optional[str]):
    """(model, input size (H, W), mean, std, description)."""
    if checkpoint:
        from ..train.evaluate import load_trained_model

        model, cfg, meta = load_trained_model(checkpoint, "cpu")
        shape = json.loads(meta["input_shape"])
        return model, (shape[1], shape[2]), json.loads(meta["mean"]), json.loads(meta["std"]), f"{checkpoint} (trained, epoch {meta.get('epoch')})"
    from ..models import create_model, default_input_size

    name = model_name or "resnet50"
    torch.manual_seed(0)
    model = create_model(name, attn=attn if name != "hacnn" else None, fusion=fusion if name != "hacnn" else None).eval()
    return model, default_input_size(name), IMAGENET_MEAN, IMAGENET_STD, f"{name}{f' attn={attn}' if attn else ''}{f' fusion={fusion}' if fusion else ''} (untrained: random weights)"


def gradcam_layer(model) -> Optional[str]:
    """The backbone's last feature layer (its :class:`~attnzoo.models.slots.Layout`), or None."""
    layout = getattr(model, "layout", None)
    return layout.feature_layer if layout is not None else None


def visualise(
    out: str | Path,
    image_path: Optional[str] = None,
    sample: Optional[str] = None,
    checkpoint: Optional[str] = None,
    model_name: Optional[str] = None,
    attn: Optional[str] = None,
    fusion: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
) -> dict:
    """Write the figures for one image; returns what was written and the captured layers."""
    model, size, mean, std, desc = prepare_model(checkpoint, model_name, attn, fusion)
    if image_path is None and sample is None and not checkpoint:
        sample = "chelsea"
    image, label, _ = load_image(image_path, sample)
    image = _fit(image, size)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None] - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad(), capture_attention(model, layers) as records:
        getattr(model, "classify", model)(x)
    if not records:
        raise ValueError(f"viz: the model has no attention modules{' matching --layers ' + ' '.join(layers) if layers else ''} to show")
    recs = list(records.values())
    cam_layer = gradcam_layer(model)
    cam = (cam_layer, grad_cam(model, x, cam_layer)) if cam_layer else None
    out = Path(out)
    title = f"{desc}\non {label}"
    written = [
        spatial_figure(image, recs, out / "spatial.png", cam, title=f"Spatial attention — {title}"),
        channel_figure(recs, out / "channels.png", title=f"Channel attention weights — {title}"),
        fusion_figure(image, recs, out / "fusion.png"),
        self_attention_figure(image, recs, out / "self_attention.png"),
        regions_figure(image, recs, out / "regions.png"),
    ]
    return {"written": [str(p) for p in written if p is not None], "layers": {r.name: r.kind for r in recs}}

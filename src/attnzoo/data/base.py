"""What every dataset loader returns: uint8 images in memory, labels, and (where known) boxes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TensorImageDataset:
    """Images as uint8 ``(N, 3, H, W)``, labels as int64 ``(N,)``; ``boxes`` (x0, y0, x1, y1) if known."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    boxes: torch.Tensor | None = None
    name: str = ""

    def __len__(self) -> int:
        return self.labels.shape[0]

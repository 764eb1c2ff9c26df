"""Augmentation on whole batches of tensors, so that data preparation stays a small share of a step."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    x: torch.Tensor, padding: int, generator: torch.Generator, flip: bool = True, shard: tuple[int, int] = (0, 1)
) -> torch.Tensor:
    """Pad by ``padding`` (zeros), crop back to the input size at a random offset per sample,
    and mirror half the samples left-right. ``x``: ``(N, C, H, W)``; ``generator`` on CPU.

    ``shard = (rank, world)``: ``x`` is the rank-th interleaved shard of a global batch of
    ``N·world`` samples; the random draws are made for the global batch and this shard's are
    used, so a run on ``world`` ranks augments exactly like one process.
    """
    n, c, h, w = x.shape
    rank, world = shard
    if padding > 0:
        offsets = torch.randint(0, 2 * padding + 1, (2, n * world), generator=generator)[:, rank::world].to(x.device)
        padded = F.pad(x, (padding,) * 4)
        rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
        cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mirror = (torch.rand(n * world, generator=generator)[rank::world] < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mirror, x.flip(3), x)
    return x

"""Shuffle attention (SA-Net): channel and spatial gates on the two halves of channel groups, then a
channel shuffle."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, group_norm
from .registry import register_attn


@register_attn("shuffle")
class ShuffleAttention(AttentionModule):
    """Shuffle attention: in each of ``G`` channel groups, one half gets an SE-like gate, the other a
    per-pixel gate, each with a single scale and shift per channel; a channel shuffle mixes the groups.

    Per group (``c = C / G`` channels), split ``x = [x_1; x_2]`` (``⌊c/2⌋`` and ``⌈c/2⌉`` channels):
    ``x_1' = x_1 ⊙ σ(w_1 · GAP(x_1) + b_1)``, ``x_2' = x_2 ⊙ σ(w_2 · GN(x_2) + b_2)`` (GroupNorm with one
    channel per group, affine), all four of ``w, b`` per channel; concatenate, then shuffle the
    channels in two groups (``(N, 2, C/2, H, W)`` transposed). ``w = 0, b = 1`` at init.

    Args: channels ``C``; groups ``G`` (default 64; the largest ``g ≤ G`` with ``C`` divisible by
    ``2g`` is used, so any C builds — for odd ``C`` one group, and no shuffle).
    12 parameters at C = 256 (``3C / G``).

    Reference: Zhang, Yang. "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks",
    ICASSP 2021, arXiv:2102.00240 (Sec. 3, Fig. 2).
    """

    def __init__(self, channels: int, groups: int = 64) -> None:
        super().__init__(channels)
        even = [g for g in range(1, groups + 1) if channels % (2 * g) == 0]
        self.groups = max(even) if even else 1
        per_group = channels // self.groups
        self.split = (per_group // 2, per_group - per_group // 2)
        c1, c2 = self.split
        self.channel_weight = nn.Parameter(torch.zeros(1, c1, 1, 1))
        self.channel_bias = nn.Parameter(torch.ones(1, c1, 1, 1))
        self.spatial_weight = nn.Parameter(torch.zeros(1, c2, 1, 1))
        self.spatial_bias = nn.Parameter(torch.ones(1, c2, 1, 1))
        self.norm = nn.GroupNorm(c2, c2)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, c, h, w = x.shape
        x1, x2 = x.reshape(n * self.groups, -1, h, w).split(self.split, dim=1)
        # One gate call on both halves' logits, so a hook sees every weight: (N·G, c, H, W).
        logits = torch.cat([
            (self.channel_weight * x1.mean((2, 3), keepdim=True) + self.channel_bias).expand_as(x1),
            self.spatial_weight * group_norm(self.norm, x2) + self.spatial_bias,
        ], dim=1)
        out = (torch.cat([x1, x2], dim=1) * self.gate(logits)).reshape(n, c, h, w)
        if c % 2:
            return out
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

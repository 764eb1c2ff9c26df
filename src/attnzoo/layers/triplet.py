"""Triplet attention: spatial gates on the three rotations of the (C, H, W) tensor."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule
from .registry import register_attn


class ZPoolGate(nn.Module):
    """``σ(BN(conv_k×k([max_1(x); mean_1(x)])))`` over dim 1 of its input: (N, A, B, D) -> (N, 1, B, D)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return self.gate(self.norm(self.conv(pooled)))


@register_attn("triplet")
class TripletAttention(AttentionModule):
    """Triplet attention: cross-dimension interaction through three rotated spatial gates.

    With ``G(·)`` a Z-pool (max and mean over the first axis) → k×k conv → BN → sigmoid gate:
    ``y = (x ⊙ G_hw(x) + R_c⁻¹(R_c(x) ⊙ G(R_c(x))) + R_w⁻¹(R_w(x) ⊙ G(R_w(x)))) / 3``, where
    ``R_c`` swaps C and H (gate over (C, W)) and ``R_w`` swaps C and W (gate over (H, C)).
    No channel reduction: 3 · (2k² + 2) parameters whatever C.

    Args: channels ``C`` (checked only); kernel_size (default 7); spatial (default True: keep
    the plain (H, W) branch; False gives the paper's two-branch ablation).

    Reference: Misra, Nalamada, Arasanipalai, Hou. "Rotate to Attend: Convolutional Triplet
    Attention Module", WACV 2021, arXiv:2010.03045 (Fig. 3).
    """

    def __init__(self, channels: int, kernel_size: int = 7, spatial: bool = True) -> None:
        super().__init__(channels)
        self.cw = ZPoolGate(kernel_size)  # pools over H: gate over (C, W)
        self.hc = ZPoolGate(kernel_size)  # pools over W: gate over (H, C)
        self.hw = ZPoolGate(kernel_size) if spatial else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        xc = x.transpose(1, 2)  # (N, H, C, W)
        out = (xc * self.cw(xc)).transpose(1, 2)
        xw = x.permute(0, 3, 2, 1)  # (N, W, H, C)
        out = out + (xw * self.hc(xw)).permute(0, 3, 2, 1)
        if self.hw is None:
            return out / 2
        return (out + x * self.hw(x)) / 3

"""EMA: efficient multi-scale attention across grouped sub-features."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, divisible_groups, group_norm
from .registry import register_attn


@register_attn("ema")
class EfficientMultiScaleAttention(AttentionModule):
    """Efficient multi-scale attention: a 1×1 branch with coordinate-style gates and a 3×3 branch,
    each pooled to weight the other ("cross-spatial learning"), gating every pixel of each group.

    The channels are cut into ``G`` groups of ``c`` channels, treated as separate images. Per group
    ``g``: the 1×1 branch ``[f^h; f^w] = W_1 [mean_W(g); mean_H(g)]`` (shared 1×1 conv, bias),
    ``x_1 = GN(g ⊙ σ(f^h) ⊙ σ(f^w))`` (one channel per norm group); the 3×3 branch ``x_2 = W_3 g``.
    ``s = softmax_c(GAP(x_1))ᵀ x_2 + softmax_c(GAP(x_2))ᵀ x_1`` (one value per pixel), and
    ``y = g ⊙ σ(s)``.

    Args: channels ``C``; groups ``G`` (the paper's factor, default 8; the largest divisor of C not
    above it is used). 10,368 parameters at C = 256. Gates: the per-pixel ``gate``; the
    directional sigmoids run through ``strip_gate``.

    Reference: Ouyang, He, Zhang, Luo, Huang, Zhong, Guo. "Efficient Multi-Scale Attention Module
    with Cross-Spatial Learning", ICASSP 2023, arXiv:2305.13563 (Fig. 3).
    Difference from the authors' code: it asserts ``C // G > 0`` but not ``C % G == 0`` and then
    reshapes, which fails for such C; here G is chosen to divide C.
    """

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__(channels)
        self.groups = divisible_groups(channels, channels, groups)
        c = channels // self.groups
        self.conv1x1 = nn.Conv2d(c, c, 1)
        self.conv3x3 = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.GroupNorm(c, c)
        self.strip_gate = nn.Sigmoid()
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, c, h, w = x.shape
        g = x.reshape(n * self.groups, -1, h, w)
        strips = torch.cat([g.mean(3, keepdim=True), g.mean(2, keepdim=True).transpose(2, 3)], dim=2)  # (NG, c, H+W, 1)
        f_h, f_w = self.strip_gate(self.conv1x1(strips)).split([h, w], dim=2)
        x1 = group_norm(self.norm, g * f_h * f_w.transpose(2, 3))
        x2 = self.conv3x3(g)
        w1 = torch.softmax(x1.mean((2, 3)), dim=1)[:, None, :]  # (NG, 1, c)
        w2 = torch.softmax(x2.mean((2, 3)), dim=1)[:, None, :]
        s = w1 @ x2.flatten(2) + w2 @ x1.flatten(2)  # (NG, 1, HW)
        return (g * self.gate(s.view(-1, 1, h, w))).reshape(n, c, h, w)

"""Coordinate attention: gates along H and along W from strip-pooled features."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, hidden_width
from .registry import register_attn


@register_attn("coord")
class CoordAttention(AttentionModule):
    """Coordinate attention: one gate per row and one per column, from a shared transform.

    ``z^h = mean_W(x)`` (N, C, H, 1) and ``z^w = mean_H(x)`` (N, C, W, 1) are concatenated along
    the spatial axis, ``f = h_swish(BN(W_1 [z^h; z^w]))`` (``W_1: C → m``), split back, and
    ``g^h = σ(W_h f^h)``, ``g^w = σ(W_w f^w)`` (``C`` channels each): ``y = x ⊙ g^h ⊙ g^w``.
    ``m = max(min_hidden, C // reduction)``.

    Args: channels ``C``; reduction (default 32, the paper's); min_hidden (default 8); bias: in
    the three 1×1 convs (default True, the authors' code; timm's ``CoordAttn`` has none).

    Reference: Hou, Zhou, Feng. "Coordinate Attention for Efficient Mobile Network Design",
    CVPR 2021, arXiv:2103.02907 (Fig. 2(c)).
    """

    def __init__(self, channels: int, reduction: float = 32, min_hidden: int = 8, bias: bool = True) -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden)
        self.conv1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.conv_w = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, w = x.shape[2], x.shape[3]
        strips = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], dim=2)  # (N, C, H+W, 1)
        f = self.act(self.bn1(self.conv1(strips)))
        f_h, f_w = f.split([h, w], dim=2)
        # One gate call on both directions' logits, so a hook sees all the weights: (N, C, H+W, 1).
        g = self.gate(torch.cat([self.conv_h(f_h), self.conv_w(f_w)], dim=2))
        g_h, g_w = g.split([h, w], dim=2)
        return x * g_h * g_w.transpose(2, 3)

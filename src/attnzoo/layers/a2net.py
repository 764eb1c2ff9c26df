"""A²-Net: double attention — gather global features into a few descriptors, distribute them back."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, hidden_width
from .registry import register_attn


@register_attn("a2net")
class DoubleAttention(AttentionModule):
    """Double attention block: second-order pooling into ``n`` global descriptors (gather), then
    each position takes its own softmax mix of them (distribute), added back as a residual.

    ``A = W_a x`` (``C → m``), ``B = W_b x`` and ``V = W_v x`` (``C → n``), as ``· × H·W`` matrices;
    gather ``G = A softmax_positions(B)ᵀ`` (``m × n``: each descriptor is an attention-weighted
    pool); distribute ``Z = G softmax_descriptors(V)`` (``m × H·W``); ``y = x + W_o Z``
    (``m → C``). All 1×1 convs have a bias. Memory is linear in H·W (``G`` is ``m × n``).

    Args: channels ``C``; reduction: ``m = n = max(min_hidden, C // reduction)`` (default 4, the
    authors' code; min_hidden 1); zero_init: start ``W_o`` at zero so the block starts as the
    identity (default True; the authors' code keeps the default init). 65,984 parameters at C = 256.
    Gates: ``gate`` (the gather softmax over positions: where each descriptor looks) and
    ``distribute_gate``.

    Reference: Chen, Kalantidis, Li, Yan, Feng. "A²-Nets: Double Attention Networks",
    NeurIPS 2018, arXiv:1810.11579 (Eq. 3-6, Fig. 2).
    """

    def __init__(self, channels: int, reduction: float = 4, min_hidden: int = 1, zero_init: bool = True) -> None:
        super().__init__(channels)
        m = hidden_width(channels, reduction, min_hidden)
        self.features = nn.Conv2d(channels, m, 1)
        self.gather_logits = nn.Conv2d(channels, m, 1)
        self.distribute_logits = nn.Conv2d(channels, m, 1)
        self.gate = nn.Softmax(dim=-1)
        self.distribute_gate = nn.Softmax(dim=1)
        self.project = nn.Conv2d(m, channels, 1)
        self.identity_at_init = zero_init
        if zero_init:
            nn.init.zeros_(self.project.weight)
            nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        a = self.features(x).flatten(2)  # (N, m, HW)
        descriptors = a @ self.gate(self.gather_logits(x).flatten(2)).transpose(1, 2)  # (N, m, n)
        z = descriptors @ self.distribute_gate(self.distribute_logits(x).flatten(2))  # (N, m, HW)
        return x + self.project(z.view(x.shape[0], -1, *x.shape[2:]))

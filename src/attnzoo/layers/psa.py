"""Polarized self-attention: a channel-only and a spatial-only branch, each keeping full resolution
along its own axis."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.constraints import Choice
from ._base import AttentionModule
from .registry import register_attn

LAYOUTS = ("parallel", "sequential")


class PolarizedChannel(nn.Module):
    """``A^ch = σ(LN(W_z (W_v x) softmax_HW(W_q x)))``: (N, C, 1, 1)."""

    viz_kind = "channel"

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.value = nn.Conv2d(channels, hidden, 1)
        self.query = nn.Conv2d(channels, 1, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.norm = nn.LayerNorm(channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.query(x).flatten(1), dim=1)  # (N, HW)
        z = torch.bmm(self.value(x).flatten(2), weights[:, :, None])  # (N, C/2, 1)
        z = self.expand(z[..., None]).flatten(1)  # (N, C)
        return self.gate(self.norm(z))[:, :, None, None]


class PolarizedSpatial(nn.Module):
    """``A^sp = σ(softmax_C(GAP(W_q x))ᵀ W_v x)``: (N, 1, H, W)."""

    viz_kind = "spatial"

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.value = nn.Conv2d(channels, hidden, 1)
        self.query = nn.Conv2d(channels, hidden, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        weights = torch.softmax(self.query(x).mean((2, 3)), dim=1)  # (N, C/2)
        z = torch.bmm(weights[:, None, :], self.value(x).flatten(2))  # (N, 1, HW)
        return self.gate(z.view(n, 1, h, w))


@register_attn("psa")
class PolarizedSelfAttention(AttentionModule):
    """Polarized self-attention (PSA): a channel gate that keeps C/2 channels and a spatial gate
    that keeps H×W, each computed by attention-weighted pooling rather than a plain mean.

    Channel-only: ``A^ch = σ(LN(W_z Σ_j softmax_j(W_q x)_j (W_v x)_j))`` with ``W_q: C → 1``,
    ``W_v: C → C/2``, ``W_z: C/2 → C``, LayerNorm over the ``C`` channels. Spatial-only:
    ``A^sp = σ(softmax(GAP(W'_q x)) · W'_v x)`` with ``W'_q, W'_v: C → C/2``: one value per pixel.
    ``layout="parallel"`` (default): ``y = x ⊙ A^ch + x ⊙ A^sp``; ``"sequential"``:
    ``x' = x ⊙ A^ch(x)``, ``y = x' ⊙ A^sp(x')``. All 1×1 convs have a bias.

    Memory is linear in H·W (the largest intermediate is ``C/2 × H·W``), so there is no size cap.

    Args: channels ``C``; layout (default ``"parallel"``); hidden: the C/2 width (default
    ``max(1, C // 2)``). 132,481 parameters at C = 256.

    Reference: Liu, Chen, Chen, Wen. "Polarized Self-Attention: Towards High-quality Pixel-wise
    Regression", 2021, arXiv:2107.00782 (Eq. 1-5, Fig. 2). Gates: ``channel.gate``, ``spatial.gate``.
    """

    option_rules = {"layout": Choice(LAYOUTS)}

    def __init__(self, channels: int, layout: str = "parallel", hidden: int | None = None) -> None:
        super().__init__(channels)
        self.layout = layout
        hidden = hidden or max(1, channels // 2)
        self.channel = PolarizedChannel(channels, hidden)
        self.spatial = PolarizedSpatial(channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if self.layout == "parallel":
            return x * self.channel(x) + x * self.spatial(x)
        x = x * self.channel(x)
        return x * self.spatial(x)

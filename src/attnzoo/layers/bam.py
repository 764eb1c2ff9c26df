"""BAM: bottleneck attention module, placed between the stages of a network."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.constraints import Choice
from ._base import AttentionModule, hidden_width
from .registry import register_attn


@register_attn("bam")
class BAM(AttentionModule):
    """BAM: a channel and a spatial branch, combined into one 3-D gate, as a residual refinement.

    ``Mc = BN(W_1 ReLU(BN(W_0 GAP(x))))`` (N, C, 1, 1) — an MLP ``C → h → C``;
    ``Ms = BN(conv_1×1(f(f(conv_1×1(x)))))`` (N, 1, H, W) — ``C → h``, two 3×3 convs with
    dilation ``d`` (each + BN + ReLU), ``h → 1``; ``M = σ(Mc + Ms)``, ``y = x ⊙ (1 + M)``.
    ``h = max(min_hidden, C // reduction)``.

    ``models`` place BAM between stages (``placement = "stage"``), as in the paper, rather than
    in every block.

    Args:
        channels: ``C``. reduction: ``r`` (default 16). min_hidden (default 8). dilation ``d`` (4).
        combine: ``"sum"`` (default, the paper's Eq. 2, ``σ(Mc + Ms)``) or ``"product"`` (the
            official code's ``σ(Mc · Ms)``).
        final_norm: end each branch in a BatchNorm (default True, the paper's Eqs. 3–4). The
            official code has none: ``combine="product", final_norm=False`` is that code.

    Reference: Park, Woo, Lee, Kweon. "BAM: Bottleneck Attention Module", BMVC 2018,
    arXiv:1807.06514 (Eqs. 1–4).
    """

    placement = "stage"

    option_rules = {"combine": Choice(("sum", "product"))}

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, dilation: int = 4, combine: str = "sum",
                 final_norm: bool = True) -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden)
        self.combine = combine
        self.channel = nn.Sequential(
            nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
            nn.BatchNorm1d(channels) if final_norm else nn.Identity()
        )
        layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
        for _ in range(2):
            layers += [nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(hidden, 1, 1), nn.BatchNorm2d(1) if final_norm else nn.Identity()]
        self.spatial = nn.Sequential(*layers)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        mc = self.channel(x.mean((2, 3)))[:, :, None, None]
        ms = self.spatial(x)
        m = self.gate(mc + ms if self.combine == "sum" else mc * ms)
        return x + x * m

    def extra_repr(self) -> str:
        return f"channels={self.channels}, combine={self.combine!r}"

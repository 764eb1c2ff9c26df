"""BAT: non-local block whose attention is a grouped bilinear transform of rows and columns."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import AttentionModule, rounded_width
from .registry import register_attn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """1×1 conv (no bias) + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _adaptive_max(t: torch.Tensor, bins: int) -> torch.Tensor:
    """``adaptive_max_pool1d`` along the last axis, written out (ONNX has no adaptive max pool):
    bin ``i`` covers ``[⌊i·L/b⌋, ⌈(i+1)·L/b⌉)``."""
    length = t.shape[-1]
    return torch.stack([t[..., i * length // bins:-(-(i + 1) * length // bins)].amax(-1) for i in range(bins)], dim=-1)


@register_attn("bat")
class BilinearAttentionalTransform(AttentionModule):
    """Grouped bilinear attentional transform (BAT), added back as a residual.

    ``u = φ(x)`` (1×1 conv + BN + ReLU, ``C → m``); the feature map is cut into a ``b × b`` grid of
    blocks of ``t_h × t_w`` pixels (``H = b·t_h``). From ``a = ReLU(BN(W_a u))`` (``m → G``)
    max-pooled to ``b`` rows and to ``b`` columns, two convs predict per image and group a row
    matrix ``P`` and a column matrix ``Q`` (``b × b`` each, sigmoid, ``P`` rows and ``Q`` columns
    normalised to sum 1). Every channel of group ``g`` is transformed bilinearly over the block
    grid, ``v = (P_g ⊗ I) u (Q_g ⊗ I)`` — block (i, j) receives ``Σ_kl P_ik u_kl Q_lj`` at the same
    offset inside the block — then ``z = ψ(ρ(v))`` (1×1 conv + BN + ReLU ``m → m``, then ``m → C``)
    and ``y = x + Dropout2d(z)``.

    Args: channels ``C``; block_size ``b`` (default 7); groups ``G`` (default 2); reduction
    (default 4) and round_to (default 8): ``m = C / 4`` rounded to a multiple of 8, one multiple up
    where rounding lost over 10% (timm's ``make_divisible``: 16 at C = 36, 32 at C = 108); drop_rate of the
    Dropout2d (default 0.2). 40,704 parameters at C = 256, as timm's ``BatNonLocalAttn``.

    Sizes that are not a multiple of ``b`` are zero-padded at the bottom/right to the next
    multiple and cropped back (timm and the authors' code assert divisibility instead), so any
    H × W works; rows or columns of padding carry no signal into the real ones.

    Reference: Chi, Yuan, Yu, Zhang, Zhang, Sun. "Non-Local Neural Networks With Grouped Bilinear
    Attentional Transforms", CVPR 2020 (Sec. 3).
    """

    def __init__(self, channels: int, block_size: int = 7, groups: int = 2, reduction: float = 4, round_to: int = 8, drop_rate: float = 0.2) -> None:
        super().__init__(channels)
        hidden = rounded_width(channels, reduction, round_to, 0.9)  # timm's make_divisible: up a multiple where rounding lost over 10%
        if hidden % groups:
            raise ValueError(f"BilinearAttentionalTransform: hidden width {hidden} is not divisible by groups={groups}")
        self.block_size, self.groups = block_size, groups
        b = block_size
        self.reduce = conv_bn_relu(channels, hidden)
        self.descriptor = conv_bn_relu(hidden, groups)
        self.row_conv = nn.Conv2d(groups, b * b * groups, (b, 1))
        self.col_conv = nn.Conv2d(groups, b * b * groups, (1, b))
        self.gate = nn.Sigmoid()
        self.mix = conv_bn_relu(hidden, hidden)
        self.expand = conv_bn_relu(hidden, channels)
        self.dropout = nn.Dropout2d(drop_rate)

    def transforms(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column matrices ``P``, ``Q``, each (N, G, b, b)."""
        n, b, g = u.shape[0], self.block_size, self.groups
        a = self.descriptor(u)
        rows = _adaptive_max(a.amax(3), b)[..., None]  # (N, G, b, 1)
        cols = _adaptive_max(a.amax(2), b)[:, :, None, :]  # (N, G, 1, b)
        p = self.gate(self.row_conv(rows).view(n, g, b, b))
        q = self.gate(self.col_conv(cols).view(n, g, b, b))
        # Normalised rows and columns; a row whose sigmoids all underflow to 0 (|x| ~ 1e4, or a deep
        # net at init) stays 0 instead of 0/0 = NaN (timm's and the authors' code divide as is).
        tiny = torch.finfo(p.dtype).tiny
        return p / p.sum(3, keepdim=True).clamp_min(tiny), q / q.sum(2, keepdim=True).clamp_min(tiny)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        u = self.reduce(x)
        p, q = self.transforms(u)
        n, m, h, w = u.shape
        b, g = self.block_size, self.groups
        t_h, t_w = -(-h // b), -(-w // b)
        padded = F.pad(u, (0, t_w * b - w, 0, t_h * b - h)).view(n, g, m // g, b, t_h, b, t_w)
        v = torch.einsum("ngik,ngckulv,nglj->ngciujv", p, padded, q).reshape(n, m, t_h * b, t_w * b)
        z = self.expand(self.mix(v[:, :, :h, :w]))
        return x + self.dropout(z)

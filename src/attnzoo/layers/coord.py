"""Coordinate attention and its strip-pooling relatives: gates along H and along W from strip-pooled
features (``coord``, ``scoord``, ``strip``, ``ela``)."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.constraints import Choice
from ._base import AttentionModule, divisible_groups, group_norm, hidden_width, rounded_width
from .activations import ActLayer, create_act
from .registry import register_attn


@register_attn("coord")
class CoordAttention(AttentionModule):
    """Coordinate attention: one gate per row and one per column, from a shared transform.

    ``z^h = mean_W(x)`` (N, C, H, 1) and ``z^w = mean_H(x)`` (N, C, W, 1) are concatenated along
    the spatial axis, ``f = h_swish(BN(W_1 [z^h; z^w]))`` (``W_1: C → m``), split back, and
    ``g^h = σ(W_h f^h)``, ``g^w = σ(W_w f^w)`` (``C`` channels each): ``y = x ⊙ g^h ⊙ g^w``.
    ``m = max(min_hidden, C // reduction)``.

    Args: channels ``C``; reduction (default 32, the paper's); min_hidden (default 8); round_to:
    round ``C / reduction`` to the nearest multiple of this instead (default None); bias: in the
    three 1×1 convs (default True, the authors' code; timm's ``CoordAttn`` has none); act_layer,
    gate_layer (defaults ``"hardswish"``, ``"sigmoid"``). timm's ``CoordAttn`` is ``reduction=24,
    round_to=8, bias=False`` (its ``rd_ratio · se_factor = 1/16 · 2/3``, rounded to 8): widths 8, 24,
    40, 88 at C = 256, 512, 1024, 2048, where the paper's rule gives 8, 16, 32, 64.

    Reference: Hou, Zhou, Feng. "Coordinate Attention for Efficient Mobile Network Design",
    CVPR 2021, arXiv:2103.02907 (Fig. 2(c)).
    """

    def __init__(self, channels: int, reduction: float = 32, min_hidden: int = 8, bias: bool = True,
                 act_layer: ActLayer = "hardswish", gate_layer: ActLayer = "sigmoid", round_to: int | None = None) -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden) if round_to is None else rounded_width(channels, reduction, round_to)
        self.conv1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act = create_act(act_layer, "act_layer")
        self.conv_h = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.conv_w = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = create_act(gate_layer, "gate_layer")

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


def _strips(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Strip means: ``mean_W(x)`` (N, C, H, 1) and ``mean_H(x)`` (N, C, 1, W)."""
    return x.mean(3, keepdim=True), x.mean(2, keepdim=True)


@register_attn("scoord")
class SimpleCoordAttention(AttentionModule):
    """Simplified coordinate attention: linear layers on each strip, one gate on their sum.

    ``f^h = act(W_1 mean_W(x))`` per row and ``f^w = act(W_1 mean_H(x))`` per column (one shared
    ``W_1: C → m``, no norm), ``a^h = W_h f^h``, ``a^w = W_w f^w`` (``m → C``), and
    ``y = x ⊙ σ(a^h + a^w)`` (the row and column logits broadcast to H×W before the sigmoid;
    coordinate attention multiplies two sigmoids instead).

    Args: channels ``C``; reduction (default 6) and round_to (default 8): ``m = C / 6`` rounded to
    a multiple of 8 (timm's ``rd_ratio=0.25, se_factor=2/3, rd_divisor=8``: m = 40 at C = 256);
    bias (default True); act_layer, gate_layer (defaults ``"silu"``, ``"sigmoid"``). 31,272 parameters at C = 256, as timm's.

    Reference: timm's ``SimpleCoordAttn``, a variant of Hou et al., CVPR 2021 (arXiv:2103.02907).
    """

    viz_kind = "full"

    def __init__(self, channels: int, reduction: float = 6, round_to: int = 8, bias: bool = True,
                 act_layer: ActLayer = "silu", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        hidden = rounded_width(channels, reduction, round_to)
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.act = create_act(act_layer, "act_layer")
        self.fc_h = nn.Linear(hidden, channels, bias=bias)
        self.fc_w = nn.Linear(hidden, channels, bias=bias)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        rows, cols = x.mean(3).transpose(1, 2), x.mean(2).transpose(1, 2)  # (N, H, C), (N, W, C)
        a_h = self.fc_h(self.act(self.fc1(rows))).transpose(1, 2)[:, :, :, None]  # (N, C, H, 1)
        a_w = self.fc_w(self.act(self.fc1(cols))).transpose(1, 2)[:, :, None, :]  # (N, C, 1, W)
        return x * self.gate(a_h + a_w)


@register_attn("strip")
class StripAttention(AttentionModule):
    """Strip attention: a depthwise 1-D conv on each strip mean, one sigmoid on their sum.

    ``a^h = dwconv_{k×1}(mean_W(x))`` (N, C, H, 1), ``a^w = dwconv_{1×k}(mean_H(x))`` (N, C, 1, W),
    ``y = x ⊙ σ(a^h + a^w)``. With ``use_conv=False`` the strip means are the logits themselves
    (no parameters).

    Args: channels ``C``; kernel_size ``k`` (default 3, zero padding ``k // 2``); bias (default
    False); use_conv (default True); gate_layer (default ``"sigmoid"``). 1,536 parameters at C = 256, as timm's ``StripAttn``.

    Reference: timm's ``StripAttn`` (a minimal strip-pooling gate; compare Hou et al.,
    "Strip Pooling", CVPR 2020, arXiv:2003.13328, whose block is larger).
    """

    viz_kind = "full"

    def __init__(self, channels: int, kernel_size: int = 3, bias: bool = False, use_conv: bool = True, gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        k = kernel_size
        self.conv_h = nn.Conv2d(channels, channels, (k, 1), padding=(k // 2, 0), groups=channels, bias=bias) if use_conv else nn.Identity()
        self.conv_w = nn.Conv2d(channels, channels, (1, k), padding=(0, k // 2), groups=channels, bias=bias) if use_conv else nn.Identity()
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        rows, cols = _strips(x)
        return x * self.gate(self.conv_h(rows) + self.conv_w(cols))


@register_attn("ela")
class EfficientLocalAttention(AttentionModule):
    """Efficient local attention: coordinate attention without the channel reduction.

    ``g^h = σ(GN(conv1d_k(mean_W(x))))`` along H and ``g^w = σ(GN(conv1d_k(mean_H(x))))`` along W,
    with one depthwise, bias-free 1-D conv of ``k`` taps and one GroupNorm shared by the two
    directions; ``y = x ⊙ g^h ⊙ g^w``.

    Args: channels ``C``; kernel_size ``k`` (default 7); groups: GroupNorm groups (default 16;
    the largest divisor of C not above it is used, so any C builds); variant: ``"paper"``
    (default, the equation and the authors' code: 2,304 parameters at C = 256) or ``"timm"``
    (timm's ``EfficientLocalAttn``: a conv and a one-group norm per direction and a SiLU before
    the sigmoid: 4,608 parameters at C = 256).

    Reference: Xu, Wan. "ELA: Efficient Local Attention for Deep Convolutional Neural Networks",
    2024, arXiv:2403.01123 (Eq. 5-7; ELA-B: k = 7, 16 groups).

    Differences from common public copies: a widely copied version reshapes the column gate to
    (N, C, W, 1) instead of (N, C, 1, W), which is wrong whenever H ≠ W (and fails when the
    shapes do not broadcast), and some use ``groups=32`` in the conv instead of a depthwise one.
    """

    option_rules = {"variant": Choice(("paper", "timm"))}

    def __init__(self, channels: int, kernel_size: int = 7, groups: int = 16, variant: str = "paper", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        self.variant = variant
        k, directions = kernel_size, 1 if variant == "paper" else 2
        norm_groups = divisible_groups(channels, channels, groups) if variant == "paper" else 1
        # One conv and one norm for both directions (paper), or one per direction (timm).
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, k, padding=k // 2, groups=channels, bias=False) for _ in range(directions))
        self.norms = nn.ModuleList(nn.GroupNorm(norm_groups, channels) for _ in range(directions))
        self.act = nn.Identity() if variant == "paper" else nn.SiLU()
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        i_w = len(self.convs) - 1
        g_h = self.gate(self.act(group_norm(self.norms[0], self.convs[0](x.mean(3)))))  # (N, C, H)
        g_w = self.gate(self.act(group_norm(self.norms[i_w], self.convs[i_w](x.mean(2)))))  # (N, C, W)
        return x * g_h[:, :, :, None] * g_w[:, :, None, :]

"""CBAM: channel attention followed by spatial attention."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, hidden_width, pointwise
from .fused import kernels_for
from .registry import register_attn


@register_attn("cbam_channel")
class CBAMChannel(AttentionModule):
    """CBAM channel attention: an SE gate fed by both the global average and the global max.

    ``Mc = σ(MLP(AvgPool(x)) + MLP(MaxPool(x)))``, ``y = x ⊙ Mc``, with one **shared**
    MLP ``C → h → C`` (1×1 convs with bias, ReLU between), ``h = max(min_hidden, C // reduction)``.
    Both pools are global over H×W.

    Args:
        channels: input channels ``C``.
        reduction: ``r`` (default 16). min_hidden: lower bound on ``h`` (default 8).
        bias: bias in the MLP (default True, as in the official code's ``nn.Linear``).

    Reference: Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module",
    ECCV 2018, arXiv:1807.06521.

    Differences from common public copies: some copies use ``nn.MaxPool2d(1)`` /
    ``nn.AvgPool2d(1)``, which are identities, so their "channel" attention is a per-pixel
    gate; here the pools are global.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, bias: bool = True) -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=bias),
        )
        self.gate = nn.Sigmoid()

    def weights(self, avg: torch.Tensor, mx: torch.Tensor) -> torch.Tensor:
        """``Mc`` (N, C) from the global average and max descriptors (N, C)."""
        n = avg.shape[0]
        # One MLP call on the stacked descriptors instead of two; its 1×1 convs run as matrix
        # products on (2N, C), as in SqueezeExcite.
        fc1, act, fc2 = self.mlp
        logits = pointwise(fc2, act(pointwise(fc1, torch.cat([avg, mx], dim=0))))
        return self.gate(logits[:n] + logits[n:])

    def gate_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        kernels = kernels_for(x)
        pools = kernels.pool_spatial(x) if kernels else (x.mean((2, 3)), x.amax((2, 3)))
        return self.weights(*pools), None  # (fused kernels: one pass pools both)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return _apply_gates(x, *self.gate_factors(x))


@register_attn("cbam_spatial")
class CBAMSpatial(AttentionModule):
    """CBAM spatial attention: a k×k conv over the channel-wise mean and max maps.

    ``Ms = σ(conv_k×k([mean_c(x); max_c(x)]))`` of shape ``(N, 1, H, W)``, ``y = x ⊙ Ms``.

    Args:
        channels: input channels ``C`` (the module has no per-channel parameters; it is
            checked against the input like every other module).
        kernel_size: odd ``k`` (default 7; the paper's ablation prefers 7×7 to 3×3),
            padding ``k // 2``.
        variant: ``"paper"`` (default): maps ordered (mean, max), conv with bias, no norm.
            ``"official"``: the authors' code: maps ordered (max, mean), bias-free conv
            followed by ``BatchNorm2d(1)`` whose weight starts at 0, so ``Ms = 0.5`` at init.

    Reference: Woo et al., ECCV 2018, arXiv:1807.06521 (Sec. 3, Fig. 2).
    """

    def __init__(self, channels: int, kernel_size: int = 7, variant: str = "paper") -> None:
        super().__init__(channels)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CBAMSpatial: kernel_size must be a positive odd int, got {kernel_size}")
        if variant not in ("paper", "official"):
            raise ValueError(f"CBAMSpatial: variant must be 'paper' or 'official', got {variant!r}")
        self.variant = variant
        official = variant == "official"
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not official)
        self.norm = nn.BatchNorm2d(1) if official else nn.Identity()
        if official:
            nn.init.zeros_(self.norm.weight)
        self.gate = nn.Sigmoid()

    def weights(self, mean_map: torch.Tensor, max_map: torch.Tensor) -> torch.Tensor:
        """``Ms`` (N, 1, H, W) from the channel-wise mean and max maps (N, 1, H, W)."""
        maps = torch.cat([max_map, mean_map] if self.variant == "official" else [mean_map, max_map], dim=1)
        kernels = kernels_for(maps, self.conv)
        if kernels:  # a direct loop: oneDNN is slow on this one-output-channel convolution
            z = kernels.conv_two_to_one(maps, self.conv.weight, self.conv.bias).view_as(mean_map)
        else:
            z = self.conv(maps)
        return self.gate(self.norm(z))

    def gate_factors(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        n, _, h, w = x.shape
        kernels = kernels_for(x)
        pools = kernels.pool_channels(x, None) if kernels else (x.mean(1), x.amax(1))  # (fused: one pass)
        return None, self.weights(*(m.view(n, 1, h, w) for m in pools)).view(n, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return _apply_gates(x, *self.gate_factors(x))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, variant={self.variant!r}"


@register_attn("cbam")
class CBAM(AttentionModule):
    """CBAM: channel attention, then spatial attention on the channel-refined map.

    ``x' = x ⊙ Mc(x)``, ``y = x' ⊙ Ms(x')`` (see :class:`CBAMChannel`, :class:`CBAMSpatial`).

    Args:
        channels: input channels ``C``.
        reduction, min_hidden, bias: of the channel MLP (defaults 16, 8, True).
        kernel_size, variant: of the spatial conv (defaults 7, ``"paper"``).

    Reference: Woo et al., "CBAM", ECCV 2018, arXiv:1807.06521. In a ResNet it sits on the
    residual branch after the last BN, before the identity is added (paper Fig. 3).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        min_hidden: int = 8,
        bias: bool = True,
        kernel_size: int = 7,
        variant: str = "paper",
    ) -> None:
        super().__init__(channels)
        self.channel = CBAMChannel(channels, reduction=reduction, min_hidden=min_hidden, bias=bias)
        self.spatial = CBAMSpatial(channels, kernel_size=kernel_size, variant=variant)

    def gate_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        kernels = kernels_for(x)
        if kernels:
            # Fused kernels (attnzoo.layers.fused): x' = x ⊙ Mc is never stored — its channel
            # pooling reads x and scales on the fly — so with the apply pass y = x ⊙ Mc ⊙ Ms the
            # tensor is read 3 times and written once, against 7 passes in eager PyTorch.
            mc = self.channel.weights(*kernels.pool_spatial(x))
            pools = kernels.pool_channels(x, mc)
        else:
            mc = self.channel.weights(x.mean((2, 3)), x.amax((2, 3)))
            refined = x * mc[:, :, None, None]
            pools = (refined.mean(1), refined.amax(1))
        return mc, self.spatial.weights(*(m.view(n, 1, h, w) for m in pools)).view(n, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if kernels_for(x, self.channel, self.spatial):  # (the halves' own forwards are skipped)
            return _apply_gates(x, *self.gate_factors(x))
        return self.spatial(self.channel(x))


def _apply_gates(x: torch.Tensor, channel_gate: torch.Tensor | None, spatial_gate: torch.Tensor | None) -> torch.Tensor:
    """``x ⊙ a ⊙ b`` for gates a (N, C) and b (N, H·W) (either None = 1), in one pass where the
    fused kernels apply."""
    kernels = kernels_for(x)
    if kernels:
        return kernels.scale(x, channel_gate, spatial_gate, None, False)
    n, c, h, w = x.shape
    if channel_gate is not None:
        x = x * channel_gate.view(n, c, 1, 1)
    return x if spatial_gate is None else x * spatial_gate.view(n, 1, h, w)

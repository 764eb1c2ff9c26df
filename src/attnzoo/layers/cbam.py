"""CBAM: channel attention followed by spatial attention."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._base import AttentionModule, hidden_width, pointwise
from .fused import fused_forward
from .registry import register_attn

POOLS = ("avg+max", "avg", "max")


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
        pools: ``"avg+max"`` (default, the paper), or ``"avg"`` / ``"max"`` alone — the paper's
            pooling ablation (Table 1); ``"avg"`` is SE with CBAM's MLP.

    Reference: Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module",
    ECCV 2018, arXiv:1807.06521.

    Differences from common public copies: some copies use ``nn.MaxPool2d(1)`` /
    ``nn.AvgPool2d(1)``, which are identities, so their "channel" attention is a per-pixel
    gate; here the pools are global.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, bias: bool = True, pools: str = "avg+max") -> None:
        super().__init__(channels)
        if pools not in POOLS:
            raise ValueError(f"CBAMChannel: pools must be one of {', '.join(POOLS)}, got {pools!r}")
        self.pools = pools
        hidden = hidden_width(channels, reduction, min_hidden)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=bias),
        )
        self.gate = nn.Sigmoid()

    def weights(self, avg: torch.Tensor, mx: torch.Tensor) -> torch.Tensor:
        """``Mc`` (N, C) from the global average and max descriptors (N, C)."""
        if self.pools != "avg+max":
            return self.gate(pointwise(self.mlp[2], self.mlp[1](pointwise(self.mlp[0], avg if self.pools == "avg" else mx))))
        n = avg.shape[0]
        # The first layer runs once on the stacked descriptors (its 1×1 conv as a matrix product on
        # (2N, C), as in SqueezeExcite); the second is linear, so W₂h₁ + b₂ + W₂h₂ + b₂ is one
        # product on the summed hidden vectors, W₂(h₁ + h₂) + 2b₂.
        fc1, act, fc2 = self.mlp
        hidden = act(pointwise(fc1, torch.cat([avg, mx], dim=0)))
        logits = F.linear(hidden[:n] + hidden[n:], fc2.weight.flatten(1))
        return self.gate(logits if fc2.bias is None else logits + 2 * fc2.bias)

    def gate_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        if self.pools == "avg":  # the max pool would be computed and dropped
            return self.weights(x.mean((2, 3)), None), None
        return self.weights(x.mean((2, 3)), x.amax((2, 3))), None

    def fused_apply(self, kernels, x, identity=None, relu=False):
        if self.pools != "avg+max":
            return None
        return _fused_cbam(kernels, x, identity, relu, self, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = fused_forward(self, x)
        return _apply_gates(x, *self.gate_factors(x)) if y is None else y


@register_attn("cbam_spatial")
class CBAMSpatial(AttentionModule):
    """CBAM spatial attention: a k×k conv over the channel-wise mean and max maps.

    ``Ms = σ(conv_k×k([mean_c(x); max_c(x)]))`` of shape ``(N, 1, H, W)``, ``y = x ⊙ Ms``.

    Args:
        channels: input channels ``C`` (the module has no per-channel parameters; it is
            checked against the input like every other module).
        kernel_size: odd ``k`` (default 7; the paper's ablation prefers 7×7 to 3×3),
            padding ``k // 2``.
        variant: ``"official"`` (default): the authors' code: maps ordered (max, mean), bias-free
            conv followed by ``BatchNorm2d(1)`` whose weight starts at 0, so ``Ms = 0.5`` at init.
            ``"paper"``: the equation as printed: maps ordered (mean, max), conv with bias, no norm.

    Why the default is the authors' code and not the printed equation: without the BN the
    spatial gate is free to drift towards 0 early in training, switching its residual branch off;
    in attnzoo's default regime (docs/results/ablations/) the paper form trained worse than the
    official one. The paper form stays available as ``variant="paper"``.

    Reference: Woo et al., ECCV 2018, arXiv:1807.06521 (Sec. 3, Fig. 2).
    """

    def __init__(self, channels: int, kernel_size: int = 7, variant: str = "official") -> None:
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
        return self.gate(self.norm(self.conv(maps)))

    def folded_conv(self) -> Optional[tuple[torch.Tensor, Optional[torch.Tensor]]]:
        """The conv's weight and bias with the official variant's BatchNorm folded in (eval mode);
        None while that BatchNorm is training (it then normalises with the batch's statistics)."""
        if isinstance(self.norm, nn.Identity):
            return self.conv.weight, self.conv.bias
        if self.norm.training:
            return None
        bn = self.norm
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = bn.bias - bn.running_mean * scale
        if self.conv.bias is not None:
            bias = bias + self.conv.bias * scale
        return self.conv.weight * scale, bias

    def gate_factors(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        n, _, h, w = x.shape
        return None, self.weights(x.mean(1, keepdim=True), x.amax(1, keepdim=True)).view(n, h * w)

    def fused_apply(self, kernels, x, identity=None, relu=False):
        return _fused_cbam(kernels, x, identity, relu, None, self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = fused_forward(self, x)
        return _apply_gates(x, *self.gate_factors(x)) if y is None else y

    def extra_repr(self) -> str:
        return f"channels={self.channels}, variant={self.variant!r}"


@register_attn("cbam")
class CBAM(AttentionModule):
    """CBAM: channel attention, then spatial attention on the channel-refined map.

    ``x' = x ⊙ Mc(x)``, ``y = x' ⊙ Ms(x')`` (see :class:`CBAMChannel`, :class:`CBAMSpatial`).

    Args:
        channels: input channels ``C``.
        reduction, min_hidden, bias, pools: of the channel MLP (defaults 16, 8, True, ``"avg+max"``).
        kernel_size, variant: of the spatial conv (defaults 7, ``"official"``: see :class:`CBAMSpatial`).

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
        variant: str = "official",
        pools: str = "avg+max",
    ) -> None:
        super().__init__(channels)
        self.channel = CBAMChannel(channels, reduction=reduction, min_hidden=min_hidden, bias=bias, pools=pools)
        self.spatial = CBAMSpatial(channels, kernel_size=kernel_size, variant=variant)

    def gate_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mc = self.channel.gate_factors(x)[0]
        return mc, self.spatial.gate_factors(x * mc[:, :, None, None])[1]

    def gated_sum(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        # (gate_factors would form x ⊙ Mc for the spatial pools and drop it; keep it instead)
        refined = self.channel(x)
        n, _, h, w = x.shape
        return torch.addcmul(identity, refined, self.spatial.gate_factors(refined)[1].view(n, 1, h, w))

    def fused_apply(self, kernels, x, identity=None, relu=False):
        # x' = x ⊙ Mc is never stored (the channel pooling scales on the fly): with the apply pass
        # the tensor is read 3 times and written once, against 7 passes in eager PyTorch.
        if self.channel.pools != "avg+max":
            return None
        return _fused_cbam(kernels, x, identity, relu, self.channel, self.spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = fused_forward(self, x)
        return self.spatial(self.channel(x)) if y is None else y


def _fused_cbam(kernels, x, identity, relu, channel: Optional[CBAMChannel], spatial: Optional[CBAMSpatial]) -> Optional[torch.Tensor]:
    """CBAM or one of its halves in one kernel call (``fused_kernels.cpp``: ``pooled_gates``)."""
    mlp: tuple = (None, None, None, None)
    if channel is not None:
        fc1, act, fc2 = channel.mlp
        if type(act) is not nn.ReLU or type(channel.gate) is not nn.Sigmoid:  # (what the kernel computes)
            return None
        mlp = (fc1.weight.flatten(1), fc1.bias, fc2.weight.flatten(1), fc2.bias)
    conv: Optional[tuple] = (None, None)
    if spatial is not None:
        if type(spatial.gate) is not nn.Sigmoid:
            return None
        conv = spatial.folded_conv()
        if conv is None:
            return None
    max_first = spatial is not None and spatial.variant == "official"
    # The kernel reads plain row-major weights; a model moved to channels_last holds the 7×7
    # conv's weight in another layout (a no-op copy for weights already contiguous).
    mlp, conv = (tuple(t if t is None else t.contiguous() for t in group) for group in (mlp, conv))
    return kernels.pooled_gates(x, identity, relu, *mlp, True, *conv, max_first)


def _apply_gates(x: torch.Tensor, channel_gate: Optional[torch.Tensor], spatial_gate: Optional[torch.Tensor]) -> torch.Tensor:
    """``x ⊙ a ⊙ b`` for gates a (N, C) and b (N, H·W), either None (= 1)."""
    n, c, h, w = x.shape
    if channel_gate is not None:
        x = x * channel_gate.view(n, c, 1, 1)
    return x if spatial_gate is None else x * spatial_gate.view(n, 1, h, w)

"""CBAM: channel attention followed by spatial attention."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..utils.constraints import Choice
from ._base import AttentionModule, Gates, GateModule, hidden_width, pointwise
from .activations import ActLayer, create_act
from .registry import register_attn

POOLS = ("avg+max", "avg", "max")
VARIANTS = ("official", "paper", "timm")


@register_attn("cbam_channel")
class CBAMChannel(GateModule):
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
        act_layer, gate_layer: by name or module class (defaults ``"relu"``, ``"sigmoid"``).

    Reference: Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module",
    ECCV 2018, arXiv:1807.06521.

    Differences from common public copies: some copies use ``nn.MaxPool2d(1)`` /
    ``nn.AvgPool2d(1)``, which are identities, so their "channel" attention is a per-pixel
    gate; here the pools are global.
    """

    viz_kind = "channel"

    option_rules = {"pools": Choice(POOLS)}

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, bias: bool = True, pools: str = "avg+max",
                 act_layer: ActLayer = "relu", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        self.pools = pools
        hidden = hidden_width(channels, reduction, min_hidden)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias),
            create_act(act_layer, "act_layer"),
            nn.Conv2d(hidden, channels, 1, bias=bias),
        )
        self.gate = create_act(gate_layer, "gate_layer")

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """``Mc`` (N, C): the shared MLP on each global pool, summed, then the sigmoid."""
        if self.pools == "avg+max":
            descriptors = ops.global_pools(x)
        else:
            descriptors = (ops.global_mean(x),) if self.pools == "avg" else (x.amax((2, 3)),)
        return self.gate(sum(self.mlp_on(d) for d in descriptors))

    def mlp_on(self, descriptor: torch.Tensor) -> torch.Tensor:
        """The shared MLP on an (N, C) descriptor: its 1×1 convs as matrix products (same weights)."""
        fc1, act, fc2 = self.mlp
        return pointwise(fc2, act(pointwise(fc1, descriptor)))

    def gates(self, x: torch.Tensor) -> Gates:
        return self.weights(x), None


@register_attn("cbam_spatial")
class CBAMSpatial(GateModule):
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
            ``"timm"``: timm's ``SpatialAttn``: maps ordered (mean, max), bias-free conv + BN (weight 1).
        norm_momentum: the spatial BatchNorm's running-statistics momentum (default 0.1, PyTorch's;
            the authors' code uses 0.01, which ``create_model(..., source="cbam-authors")`` sets).

    Why the default is the authors' code and not the printed equation: without the BN the
    spatial gate is free to drift towards 0 early in training, switching its residual branch off;
    in attnzoo's default regime (docs/results/ablations/, 5 seeds) the paper form was flagged on 3
    seeds (two left at chance, one with saturated spatial gates), the authors' form on none. The
    paper form stays available as ``variant="paper"``.

    Reference: Woo et al., ECCV 2018, arXiv:1807.06521 (Sec. 3, Fig. 2).
    """

    viz_kind = "spatial"

    option_rules = {"variant": Choice(VARIANTS)}

    def __init__(self, channels: int, kernel_size: int = 7, variant: str = "official", gate_layer: ActLayer = "sigmoid",
                 norm_momentum: float = 0.1) -> None:
        super().__init__(channels)
        self.variant = variant
        with_bn = variant != "paper"
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not with_bn)
        self.norm = nn.BatchNorm2d(1, momentum=norm_momentum) if with_bn else nn.Identity()
        if variant == "official":
            nn.init.zeros_(self.norm.weight)
        self.gate = create_act(gate_layer, "gate_layer")

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """``Ms`` (N, 1, H, W) from the channel-wise mean and max maps of ``x``."""
        return self.weights_from_maps(*ops.channel_pools(x))

    def weights_from_maps(self, mean_map: torch.Tensor, max_map: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([max_map, mean_map] if self.variant == "official" else [mean_map, max_map], dim=1)
        return self.gate(self.norm(self.conv(maps)))

    def gates(self, x: torch.Tensor) -> Gates:
        return None, self.weights(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, variant={self.variant!r}"


@register_attn("cbam")
class CBAM(GateModule):
    """CBAM: channel attention, then spatial attention on the channel-refined map.

    ``x' = x ⊙ Mc(x)``, ``y = x' ⊙ Ms(x')`` (see :class:`CBAMChannel`, :class:`CBAMSpatial`).

    Args:
        channels: input channels ``C``.
        reduction, min_hidden, bias, pools: of the channel MLP (defaults 16, 8, True, ``"avg+max"``).
        kernel_size, variant, norm_momentum: of the spatial half (defaults 7, ``"official"``, 0.1: see :class:`CBAMSpatial`).
        act_layer, gate_layer: the MLP's activation and both halves' gates (defaults ``"relu"``, ``"sigmoid"``).

    Reference: Woo et al., "CBAM", ECCV 2018, arXiv:1807.06521. In a ResNet it sits on the
    residual branch after the last BN, before the identity is added (paper Fig. 3).
    """

    option_rules = {**CBAMChannel.option_rules, **CBAMSpatial.option_rules}

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        min_hidden: int = 8,
        bias: bool = True,
        kernel_size: int = 7,
        variant: str = "official",
        pools: str = "avg+max",
        act_layer: ActLayer = "relu",
        gate_layer: ActLayer = "sigmoid",
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__(channels)
        self.channel = CBAMChannel(channels, reduction=reduction, min_hidden=min_hidden, bias=bias, pools=pools, act_layer=act_layer, gate_layer=gate_layer)
        self.spatial = CBAMSpatial(channels, kernel_size=kernel_size, variant=variant, gate_layer=gate_layer, norm_momentum=norm_momentum)

    def gates(self, x: torch.Tensor) -> Gates:
        """``(Mc(x), Ms(x ⊙ Mc))``; ``forward`` returns ``x ⊙ Mc ⊙ Ms``. The spatial half pools
        ``x' = x ⊙ Mc`` over channels without storing ``x'`` (:func:`attnzoo.ops.channel_pools`),
        so training keeps one copy of ``x`` for backward, not three."""
        mc = self.channel.weights(x)
        return mc, self.spatial.weights_from_maps(*ops.channel_pools(x, mc))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if ops.observed(self.channel, self.spatial):  # a hook on a half sees that half run: x' = x ⊙ Mc(x), y = x' ⊙ Ms(x')
            return self.spatial(self.channel(x))
        return super().forward(x)


@register_attn("lcbam")
class LightCBAM(AttentionModule):
    """Light CBAM: CBAM with each pair of pooled maps blended into one before its transform.

    ``Mc = σ(MLP(½ AvgPool(x) + ½ MaxPool(x)))`` (one MLP pass instead of two; global pools),
    ``x' = x ⊙ Mc``; ``Ms = σ(BN(conv_k×k(½ mean_c(x') + ½ max_c(x'))))`` (a 1-channel conv,
    no bias, then ``BatchNorm2d(1)``), ``y = x' ⊙ Ms``.

    Args: channels ``C``; reduction (default 16), min_hidden (default 8), bias (default False):
    the MLP ``C → C // r → C``; kernel_size ``k`` (default 7); act_layer, gate_layer (defaults
    ``"relu"``, ``"sigmoid"``). With the defaults it is timm's
    ``LightCbamModule``: 8,243 parameters at C = 256.

    Reference: a timm variant of CBAM (Woo et al., ECCV 2018, arXiv:1807.06521); no paper.
    Difference from timm: timm's light channel half calls ``sigmoid`` directly, so its
    ``gate_layer`` argument has no effect and no hook can see that gate; here both halves gate
    through a module named ``gate``.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, bias: bool = False, kernel_size: int = 7,
                 act_layer: ActLayer = "relu", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden)
        self.channel = LightCBAMChannel(channels, hidden, bias, act_layer, gate_layer)
        self.spatial = LightCBAMSpatial(kernel_size, gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = x * self.channel(x)
        return x * self.spatial(x)


class LightCBAMChannel(nn.Module):
    """``σ(MLP(½ avg + ½ max))`` as (N, C, 1, 1)."""

    viz_kind = "channel"

    def __init__(self, channels: int, hidden: int, bias: bool, act_layer: ActLayer = "relu", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = create_act(act_layer, "act_layer")
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = 0.5 * x.mean((2, 3)) + 0.5 * x.amax((2, 3))
        return self.gate(pointwise(self.fc2, self.act(pointwise(self.fc1, pooled))))[:, :, None, None]


class LightCBAMSpatial(nn.Module):
    """``σ(BN(conv(½ mean_c + ½ max_c)))`` as (N, 1, H, W)."""

    viz_kind = "spatial"

    def __init__(self, kernel_size: int, gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(1)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.norm(self.conv(0.5 * x.mean(1, keepdim=True) + 0.5 * x.amax(1, keepdim=True))))

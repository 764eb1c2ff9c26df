"""CBAM: channel attention followed by spatial attention."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._base import AttentionModule, global_mean, hidden_width, hooked, pointwise
from .activations import ActLayer, create_act
from .registry import register_attn

POOLS = ("avg+max", "avg", "max")
VARIANTS = ("official", "paper", "timm")


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
        act_layer, gate_layer: by name or module class (defaults ``"relu"``, ``"sigmoid"``).

    Reference: Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module",
    ECCV 2018, arXiv:1807.06521.

    Differences from common public copies: some copies use ``nn.MaxPool2d(1)`` /
    ``nn.AvgPool2d(1)``, which are identities, so their "channel" attention is a per-pixel
    gate; here the pools are global.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, bias: bool = True, pools: str = "avg+max",
                 act_layer: ActLayer = "relu", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        if pools not in POOLS:
            raise ValueError(f"CBAMChannel: pools must be one of {', '.join(POOLS)}, got {pools!r}")
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
        logits = [self.mlp_on(global_mean(x) if pool == "avg" else x.amax((2, 3))) for pool in self.pools.split("+")]
        return self.gate(sum(logits))

    def mlp_on(self, descriptor: torch.Tensor) -> torch.Tensor:
        """The shared MLP on an (N, C) descriptor: its 1×1 convs as matrix products (same weights)."""
        fc1, act, fc2 = self.mlp
        return pointwise(fc2, act(pointwise(fc1, descriptor)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return x * self.weights(x)[:, :, None, None]


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
            ``"timm"``: timm's ``SpatialAttn``: maps ordered (mean, max), bias-free conv + BN (weight 1).

    Why the default is the authors' code and not the printed equation: without the BN the
    spatial gate is free to drift towards 0 early in training, switching its residual branch off;
    in attnzoo's default regime (docs/results/ablations/, 5 seeds) the paper form was flagged on 3
    seeds (two left at chance, one with saturated spatial gates), the authors' form on none. The
    paper form stays available as ``variant="paper"``.

    Reference: Woo et al., ECCV 2018, arXiv:1807.06521 (Sec. 3, Fig. 2).
    """

    def __init__(self, channels: int, kernel_size: int = 7, variant: str = "official", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CBAMSpatial: kernel_size must be a positive odd int, got {kernel_size}")
        if variant not in VARIANTS:
            raise ValueError(f"CBAMSpatial: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        with_bn = variant != "paper"
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not with_bn)
        self.norm = nn.BatchNorm2d(1) if with_bn else nn.Identity()
        if variant == "official":
            nn.init.zeros_(self.norm.weight)
        self.gate = create_act(gate_layer, "gate_layer")

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """``Ms`` (N, 1, H, W) from the channel-wise mean and max maps of ``x``."""
        return self.weights_from_maps(x.mean(1, keepdim=True), x.amax(1, keepdim=True))

    def weights_from_maps(self, mean_map: torch.Tensor, max_map: torch.Tensor) -> torch.Tensor:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return x * self.weights(x)

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
        act_layer, gate_layer: the MLP's activation and both halves' gates (defaults ``"relu"``, ``"sigmoid"``).

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
        act_layer: ActLayer = "relu",
        gate_layer: ActLayer = "sigmoid",
    ) -> None:
        super().__init__(channels)
        self.channel = CBAMChannel(channels, reduction=reduction, min_hidden=min_hidden, bias=bias, pools=pools, act_layer=act_layer, gate_layer=gate_layer)
        self.spatial = CBAMSpatial(channels, kernel_size=kernel_size, variant=variant, gate_layer=gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        training = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        if not training or hooked(self.channel) or hooked(self.spatial):
            return self.spatial(self.channel(x))  # x' = x ⊙ Mc(x), y = x' ⊙ Ms(x')
        # Training: the same equation through two autograd functions that keep only x and the small
        # gates for backward (x' is recomputed there): one copy of the input instead of two (x for
        # x ⊙ Mc, x' for the max pool and for x' ⊙ Ms). A hook on either half takes the path above.
        mc = self.channel.weights(x)  # (N, C)
        ms = self.spatial.weights_from_maps(*ScaledChannelPools.apply(x, mc))
        return TwoGateProduct.apply(x, mc, ms)


class ScaledChannelPools(torch.autograd.Function):
    """``(mean_c(x ⊙ Mc), max_c(x ⊙ Mc))``, each (N, 1, H, W), saving x, Mc and the argmax channel
    (int16 where it fits) rather than x ⊙ Mc. A tied maximum sends its gradient to one channel (as
    max pooling does; ``amax`` would split it). The mean is ``Mcᵀ x / C`` per pixel (a matrix-vector
    product per image), and backward scatters the max's gradient to the argmax channels only, so
    no full-size temporary is written but ``grad_x`` itself."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mc: torch.Tensor):
        c = x.shape[1]
        max_map, index = (x * mc[:, :, None, None]).max(1, keepdim=True)
        mean_map = _channel_contract(mc, x) / c
        ctx.index_dtype = index.dtype
        ctx.save_for_backward(x, mc, index.to(torch.int16) if c < 2**15 else index)
        return mean_map, max_map

    @staticmethod
    def backward(ctx, grad_mean: torch.Tensor, grad_max: torch.Tensor):
        x, mc, index = ctx.saved_tensors
        n, c = x.shape[:2]
        index = index.to(ctx.index_dtype)
        flat_index = index.reshape(n, -1)
        grad_x = grad_mc = None
        if ctx.needs_input_grad[0]:  # mean: Mc / C everywhere; max: Mc at the argmax channel
            grad_x = (grad_mean / c) * mc[:, :, None, None]
            grad_x.scatter_add_(1, index, grad_max * mc.gather(1, flat_index).view_as(grad_max))
        if ctx.needs_input_grad[1]:
            grad_mc = (x * grad_mean).sum((2, 3)) / c
            grad_mc.scatter_add_(1, flat_index, (grad_max * x.gather(1, index)).reshape(n, -1))
        return grad_x, grad_mc


class TwoGateProduct(torch.autograd.Function):
    """``x ⊙ Mc ⊙ Ms`` with Mc (N, C) and Ms (N, 1, H, W), saving x and the two gates only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mc: torch.Tensor, ms: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, mc, ms)
        return torch.mul(x, ms).mul_(mc[:, :, None, None])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, mc, ms = ctx.saved_tensors
        grad_x = torch.mul(grad, ms).mul_(mc[:, :, None, None]) if ctx.needs_input_grad[0] else None
        grad_mc = grad_ms = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gx = grad * x
            grad_ms = _channel_contract(mc, gx) if ctx.needs_input_grad[2] else None
            grad_mc = gx.mul_(ms).sum((2, 3)) if ctx.needs_input_grad[1] else None
        return grad_x, grad_mc, grad_ms


def _channel_contract(weights: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``Σ_c weights[n, c] · t[n, c, h, w]`` as (N, 1, H, W): one matrix-vector product per image."""
    n, c, h, w = t.shape
    return torch.bmm(weights[:, None, :].to(t.dtype), t.reshape(n, c, h * w)).view(n, 1, h, w)


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
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"LightCBAM: kernel_size must be a positive odd int, got {kernel_size}")
        hidden = hidden_width(channels, reduction, min_hidden)
        self.channel = LightCBAMChannel(channels, hidden, bias, act_layer, gate_layer)
        self.spatial = LightCBAMSpatial(kernel_size, gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = x * self.channel(x)
        return x * self.spatial(x)


class LightCBAMChannel(nn.Module):
    """``σ(MLP(½ avg + ½ max))`` as (N, C, 1, 1)."""

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

    def __init__(self, kernel_size: int, gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(1)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.norm(self.conv(0.5 * x.mean(1, keepdim=True) + 0.5 * x.amax(1, keepdim=True))))

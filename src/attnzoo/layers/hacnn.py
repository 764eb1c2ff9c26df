"""HA-CNN soft (pixel-level) and hard (region-level) attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ._base import AttentionModule, Gates, GateModule, check_channels, hidden_width, statistics_dtype
from .registry import register_attn


class ConvBlock(nn.Sequential):
    """conv (with bias) + BatchNorm + ReLU, HA-CNN's basic unit."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class HASpatialMap(nn.Module):
    """HA-CNN spatial attention map ``(N, 1, H, W)``: channel mean → 3×3/2 ConvBlock → bilinear
    resize back to exactly ``(H, W)`` → 1×1 ConvBlock."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBlock(1, 1, 3, stride=2, padding=1)
        self.conv2 = ConvBlock(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        s = self.conv1(x.mean(1, keepdim=True))
        # Resize to the input's own size: a fixed ×2 (as in public copies) is wrong for odd H, W.
        s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=True)
        return self.conv2(s)


class HAChannelMap(nn.Module):
    """HA-CNN channel attention map ``(N, C, 1, 1)``: GAP → ConvBlock(C → h) → ConvBlock(h → C)."""

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = hidden_width(channels, reduction, min_hidden)
        self.conv1 = ConvBlock(channels, hidden, 1)
        self.conv2 = ConvBlock(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(ops.global_mean(x)[:, :, None, None]))


@register_attn("ha_soft")
class HASoftAttention(AttentionModule):
    """HA-CNN soft attention: a joint spatial × channel map, mixed by a 1×1 ConvBlock.

    ``A = σ(ConvBlock_1×1(S(x) ⊗ C(x)))`` with ``S`` :class:`HASpatialMap` ``(N, 1, H, W)``
    and ``C`` :class:`HAChannelMap` ``(N, C, 1, 1)``; ``y = x ⊙ A``. The ConvBlock ends in a
    ReLU, so ``A`` lies in ``[0.5, 1)``: soft attention can only damp a pixel by half.

    ``forward`` computes the same thing without forming ``A``: the ConvBlock's conv and BatchNorm
    of the rank-1 map fold into ``u ⊗ s + v`` (``u``, ``v`` per image and channel; BN's batch
    statistics follow from ``s`` and ``W c`` alone), and :func:`attnzoo.ops.rank1_gate` applies
    ``σ(ReLU(u ⊗ s + v))`` in one pass, recomputing it in backward instead of storing it.

    Args:
        channels: ``C``. reduction: of the channel map (default 16).
        min_hidden: lower bound on its hidden width (default 8).

    Reference: Li, Zhu, Gong. "Harmonious Attention Network for Person Re-Identification",
    CVPR 2018, arXiv:1802.08122 (Sec. 3.1, Fig. 3).

    Differences from common public copies: the spatial map is resized to the input's size
    (copies use a fixed ×2 with the removed ``F.upsample``, wrong for odd sizes) and the
    hidden width never reaches 0.
    """

    viz_kind = "full"

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8) -> None:
        super().__init__(channels)
        self.spatial = HASpatialMap()
        self.channel = HAChannelMap(channels, reduction, min_hidden)
        self.mix = ConvBlock(channels, channels, 1)
        self.gate = nn.Sigmoid()

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The soft attention ``A``, shape ``(N, C, H, W)``, values in ``[0.5, 1)``."""
        self.check_input(x)
        return self._weights(self.spatial(x), self.channel(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if not self._fuses_gate():
            return x * self.weights(x)
        return ops.rank1_gate(x, *self._rank1(x))

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``relu(self(x) + identity)`` in one op, unless a hook watches this module or its gate."""
        if ops.observed(self) or not self._fuses_gate():
            return F.relu(self(x) + identity)
        self.check_input(x)
        return ops.rank1_gate(x, *self._rank1(x), identity=identity, relu=True)

    def _fuses_gate(self) -> bool:
        # The mix's ConvBlock must be the stock conv + BN + ReLU (its BN folds to a scale and a shift),
        # and no hook may watch the gate or the block's parts (they must then run as themselves).
        conv, norm, act = self.mix
        stock = type(norm) is nn.BatchNorm2d and type(act) is nn.ReLU and type(self.gate) is nn.Sigmoid
        return stock and not ops.observed(self.gate, self.mix, conv, norm, act)

    def _mix_conv(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W c, b)``, (N, C) and (C,): the mix's 1×1 conv of the rank-1 map ``s ⊗ c`` is
        ``s ⊗ (W c) + b``, exactly — a C×C matrix-vector product per image instead of a C×C
        convolution over H×W."""
        conv = self.mix[0]
        wc = F.linear(c.flatten(1), conv.weight.flatten(1))
        return wc, (conv.bias if conv.bias is not None else wc.new_zeros(wc.shape[1]))

    def _weights(self, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        _, norm, act = self.mix
        wc, b = self._mix_conv(c)
        return self.gate(act(norm(torch.addcmul(b[:, None, None], s, wc[:, :, None, None]))))

    def _rank1(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(s, u, v)`` with ``BN(conv(s ⊗ c)) = u ⊗ s + v``: the spatial map and the mix's conv and
        BatchNorm folded into a scale and a shift per image and channel, BN's statistics included."""
        s, c = self.spatial(x), self.channel(x)
        norm = self.mix[1]
        wc, b = self._mix_conv(c)
        mean, var = _rank1_batch_norm_statistics(norm, s, wc, b)
        scale = torch.rsqrt(var + norm.eps)  # BN(z) = (z − mean) · γ / √(var + ε) + β, with z = wc s + b
        if norm.weight is not None:
            scale = scale * norm.weight
        shift = (b - mean) * scale + (norm.bias if norm.bias is not None else 0)  # (N, C) in training, (C,) in eval
        dtype = torch.promote_types(x.dtype, s.dtype)  # under autocast the gate keeps the feature map's dtype
        return s, (wc * scale).to(dtype), shift.expand_as(wc).to(dtype)


def _rank1_batch_norm_statistics(norm: nn.BatchNorm2d, s: torch.Tensor, wc: torch.Tensor, b: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, variance) per channel that ``norm`` normalises ``z = s ⊗ wc + b`` with — batch
    statistics in training (and the running ones updated as ``nn.BatchNorm2d`` does), running ones in
    eval — computed from ``s`` (N, 1, H, W) and ``wc`` (N, C) without forming ``z``: per image,
    ``mean_p z = wc s̄ + b`` and ``var_p z = wc² var_p(s)``; over the batch, the variance of the
    per-image means is added (the law of total variance)."""
    if not (norm.training or norm.running_mean is None):
        return norm.running_mean, norm.running_var
    n, _, h, w = s.shape
    count = n * h * w
    if count < 2 and norm.training:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {(n, wc.shape[1], h, w)}")
    dtype = statistics_dtype(wc)
    flat = s.flatten(1).to(dtype)
    s_mean = flat.mean(1, keepdim=True)  # (N, 1)
    s_var = (flat - s_mean).square().mean(1, keepdim=True)
    wc = wc.to(dtype)
    image_mean = wc * s_mean + b  # (N, C)
    mean = image_mean.mean(0)
    var = (wc.square() * s_var + (image_mean - mean).square()).mean(0)
    if norm.training and norm.track_running_stats and norm.running_mean is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_((var * count / (count - 1)).to(norm.running_var.dtype), momentum)
    return mean, var


@register_attn("ha_spatial")
class HASpatialAttention(GateModule):
    """HA-CNN spatial attention used on its own: one sigmoid map over H×W shared by all channels.

    ``y = x ⊙ σ(S(x))`` with ``S`` :class:`HASpatialMap`.

    HA-CNN only uses ``S`` inside the soft attention; standing alone it needs a gate, and we
    use the sigmoid that :class:`HASoftAttention` ends in (values in ``[0.5, 1)``).
    ``channels`` is only checked: the module has 6 parameters whatever ``C``.

    Reference: Li et al., CVPR 2018, arXiv:1802.08122 (Sec. 3.1 (I.1)).
    """

    viz_kind = "spatial"

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.spatial = HASpatialMap()
        self.gate = nn.Sigmoid()

    def gates(self, x: torch.Tensor) -> Gates:
        return None, self.gate(self.spatial(x))


@register_attn("ha_channel")
class HAChannelAttention(GateModule):
    """HA-CNN channel attention used on its own: one sigmoid weight per channel.

    ``y = x ⊙ σ(C(x))`` with ``C`` :class:`HAChannelMap`.

    Like SE with ConvBlocks (conv + BN + ReLU) in place of the plain MLP; the sigmoid gate is
    ours (HA-CNN only uses ``C`` inside the soft attention), so values lie in ``[0.5, 1)``.

    Args: channels ``C``; reduction (default 16); min_hidden (default 8).

    Reference: Li et al., CVPR 2018, arXiv:1802.08122 (Sec. 3.1 (I.2)).
    """

    viz_kind = "channel"

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8) -> None:
        super().__init__(channels)
        self.channel = HAChannelMap(channels, reduction, min_hidden)
        self.gate = nn.Sigmoid()

    def gates(self, x: torch.Tensor) -> Gates:
        return self.gate(self.channel(x)).flatten(1), None


class HardRegionAttention(nn.Module):
    """HA-CNN hard attention: predicts K horizontal stripes as affine transforms.

    ``t = tanh(W · GAP(x) + b)`` gives K translations ``(tx, ty)``; region k is
    ``θ_k = [[1, 0, tx], [0, 1/K, ty]]`` (full width, 1/K of the height), in the normalised
    coordinates of ``F.affine_grid``. ``W`` starts at 0 and ``b`` at evenly spaced stripe
    centres (K = 4: ty = −0.75, −0.25, 0.25, 0.75), so the regions start as K equal stripes.

    Returns ``θ`` of shape ``(N, K, 2, 3)``. Use :func:`crop_regions` to sample the regions.

    Reference: Li et al., CVPR 2018, arXiv:1802.08122 (Sec. 3.1 (II), Eq. 3).
    """

    viz_kind = "regions"

    def __init__(self, channels: int, num_regions: int = 4) -> None:
        super().__init__()
        self.channels = check_channels("HardRegionAttention", channels)
        self.num_regions = num_regions
        self.fc = nn.Linear(channels, 2 * num_regions)
        self.gate = nn.Tanh()
        scale = torch.tensor([[1.0, 0.0], [0.0, 1.0 / num_regions]])
        self.register_buffer("scale", scale, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        k = self.num_regions
        centres = torch.tensor([-1.0 + (2 * i + 1) / k for i in range(k)])
        bias = torch.stack([torch.zeros(k), centres], dim=1).flatten()  # (tx, ty) pairs
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"HardRegionAttention: expected input of shape (N, {self.channels}, H, W), got {tuple(x.shape)}"
            )
        n, k = x.shape[0], self.num_regions
        t = self.gate(self.fc(x.mean((2, 3)))).view(n, k, 2, 1)
        return torch.cat([self.scale.to(t.dtype).expand(n, k, 2, 2), t], dim=3)


REGION_SAMPLING = ("direct", "torchreid")


def crop_regions(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], sampling: str = "direct") -> list[torch.Tensor]:
    """Sample each region ``θ[:, k]`` of ``x`` (bilinear) at output ``size`` ``(h, w)``.

    ``sampling="direct"`` samples the region at ``size`` (one bilinear interpolation);
    ``"torchreid"`` samples it at the full size of ``x`` and resizes that to ``size`` (bilinear,
    ``align_corners=True``), which is what torchreid's HA-CNN computes (and costs more).
    """
    if sampling not in REGION_SAMPLING:
        raise ValueError(f"region sampling must be one of {', '.join(REGION_SAMPLING)}, got {sampling!r}")
    n, c = x.shape[0], x.shape[1]
    grid_size = [n, c, size[0], size[1]] if sampling == "direct" else list(x.shape)
    crops = []
    for k in range(theta.shape[1]):
        grid = F.affine_grid(theta[:, k], grid_size, align_corners=False)
        crop = F.grid_sample(x, grid.to(x.dtype), align_corners=False)
        if sampling == "torchreid":
            crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=True)
        crops.append(crop)
    return crops


class HarmoniousAttention(nn.Module):
    """HA-CNN harmonious attention: soft attention weights and hard-region transforms of one input.

    Returns ``(A, θ)``: ``A`` of :class:`HASoftAttention` ``(N, C, H, W)``, ``θ`` of
    :class:`HardRegionAttention` ``(N, K, 2, 3)``.
    """

    def __init__(self, channels: int, num_regions: int = 4) -> None:
        super().__init__()
        self.soft = HASoftAttention(channels)
        self.hard = HardRegionAttention(channels, num_regions)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.soft.weights(x), self.hard(x)

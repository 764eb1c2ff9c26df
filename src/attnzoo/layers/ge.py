"""Gather-excite: pool context over a spatial extent, redistribute it as a gate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._base import AttentionModule, hidden_width
from .registry import register_attn


@register_attn("ge")
class GatherExcite(AttentionModule):
    """Gather-excite: each position is gated by context gathered from a neighbourhood of extent e.

    ``y = x ⊙ σ(interp(ξ_G(x)))``. Gather ``ξ_G``: extent ``e = 0`` pools globally; ``e > 0``
    pools windows of ``2e − 1`` with stride ``e`` (parameter-free GE-θ⁻), or, with
    ``extra_params``, applies ``log2(e)`` stride-2 depthwise 3×3 convs + BN (GE-θ; for ``e = 0``
    a depthwise conv spanning the whole ``feat_size`` map). ``use_mlp`` adds a 1×1 bottleneck
    ``C → h → C`` (GE-θ⁺). The gathered map is resized (nearest) back to H×W.

    Args:
        channels: ``C``. extent: ``e`` (default 0 = global). extra_params: learned gather
        (default False). use_mlp: the θ⁺ MLP (default False). reduction, min_hidden: of the MLP
        (16, 8). feat_size: H = W of the input, required for ``extent=0, extra_params=True``.

    Reference: Hu, Shen, Albanie, Sun, Vedaldi. "Gather-Excite: Exploiting Feature Context in
    Convolutional Neural Networks", NeurIPS 2018, arXiv:1810.12348 (Sec. 3).

    Differences from the widely used library: its current release fails at construction
    (a ``*dd`` positional unpack); this one builds with every gather option.
    """

    def __init__(
        self,
        channels: int,
        extent: int = 0,
        extra_params: bool = False,
        use_mlp: bool = False,
        reduction: float = 16,
        min_hidden: int = 8,
        feat_size: int | None = None,
    ) -> None:
        super().__init__(channels)
        if extent > 1 and extra_params and extent & (extent - 1):
            raise ValueError(f"GatherExcite: extent={extent} with extra_params: expected a power of 2 (strided convs halve the map)")
        self.extent = extent
        self.feat_size = feat_size
        self.gather: nn.Module | None = None
        if extra_params:
            if extent == 0:
                if feat_size is None:
                    raise ValueError("GatherExcite: extent=0 with extra_params needs feat_size (the input's H = W)")
                self.gather = nn.Sequential(nn.Conv2d(channels, channels, feat_size, groups=channels, bias=False), nn.BatchNorm2d(channels))
            else:
                layers: list[nn.Module] = []
                for i in range(int(math.log2(extent))):
                    if i:
                        layers.append(nn.ReLU(inplace=True))
                    layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False), nn.BatchNorm2d(channels)]
                self.gather = nn.Sequential(*layers) if layers else nn.Identity()
        self.mlp: nn.Module | None = None
        if use_mlp:
            hidden = hidden_width(channels, reduction, min_hidden)
            self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, w = x.shape[2], x.shape[3]
        if self.gather is not None:
            if self.extent == 0 and (h, w) != (self.feat_size, self.feat_size):
                raise ValueError(f"GatherExcite: built for {self.feat_size}×{self.feat_size} inputs (feat_size), got {tuple(x.shape)}")
            g = self.gather(x)
        elif self.extent == 0:
            g = x.mean((2, 3), keepdim=True)
        else:
            # Windows centred inside the map only (as the paper and timm): ceil_mode would add one
            # centred outside it whenever H − 1 is not a multiple of the extent (5 on an 8×8 map at e = 2).
            k = 2 * self.extent - 1
            g = F.avg_pool2d(x, k, stride=self.extent, padding=k // 2, count_include_pad=False)
        if self.mlp is not None:
            g = self.mlp(g)
        if g.shape[-2:] != (1, 1):
            g = F.interpolate(g, size=(h, w), mode="nearest")
        return x * self.gate(g)

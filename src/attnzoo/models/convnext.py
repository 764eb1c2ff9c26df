"""ConvNeXt-T (Liu et al., CVPR 2022, arXiv:2201.03545) with attention at the end of every block.

torchvision's network, key for key (``features.i.j.block.k...``, ``layer_scale``): 28,589,128
parameters at 1000 classes, and torchvision's checkpoints load as they are. ConvNeXt has no native
attention; ``attn=`` puts a module on each block's residual branch after its last linear layer and
before the layer scale and the addition — where SE/CBAM sit in a ResNet block — so a zero-ish layer
scale still starts every block near the identity.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .mobile import StochasticDepth
from .registry import register_model
from .slots import LayerSpec, Layout, block_factory, check_stages, refuse_retrofit


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class CNBlock(nn.Module):
    """depthwise 7×7 → LayerNorm → Linear ×4 → GELU → Linear → attention → × layer scale → + input."""

    def __init__(self, dim: int, drop: float, attn_layer: Optional[Any], layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]), nn.LayerNorm(dim, eps=1e-6),
                                   nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))
        self.attn = attn_layer(dim) if attn_layer is not None else None
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.stochastic_depth = StochasticDepth(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.block(x)
        if self.attn is not None:
            branch = self.attn(branch)
        return x + self.stochastic_depth(self.layer_scale * branch)


class Stage(NamedTuple):
    dim: int
    layers: int


TINY = [Stage(96, 3), Stage(192, 3), Stage(384, 9), Stage(768, 3)]


class ConvNeXt(nn.Module):
    """ConvNeXt with optional attention in the blocks of ``attn_stages`` (default all four).

    Args: stages (``TINY``); num_classes, in_chans; attn (a registered block-attention name or a
    callable ``channels -> module``), attn_options, attn_stages; stochastic_depth: the last block's
    drop probability (0.1, linear in depth, torchvision's ConvNeXt-T); layer_scale: its initial value (1e-6).
    """

    def __init__(self, stages: list[Stage], num_classes: int = 1000, in_chans: int = 3, attn: LayerSpec = None,
                 attn_options: Optional[dict] = None, attn_stages: Optional[list] = None, stochastic_depth: float = 0.1,
                 layer_scale: float = 1e-6, fusion: LayerSpec = None, name: str = "convnext", retrofit: bool = False) -> None:
        super().__init__()
        refuse_retrofit(name, retrofit)
        if fusion is not None:
            raise ValueError(f"{name}: takes attention in its blocks only (no fusion)")
        attn_layer = block_factory(attn, attn_options, name)
        chosen = check_stages(attn_stages, len(stages), "attn")
        stem = nn.Sequential(nn.Conv2d(in_chans, stages[0].dim, 4, 4), LayerNorm2d(stages[0].dim, eps=1e-6))
        layers: list[nn.Module] = [stem]
        total, index = sum(s.layers for s in stages), 0
        for i, stage in enumerate(stages, start=1):
            blocks = []
            for _ in range(stage.layers):
                blocks.append(CNBlock(stage.dim, stochastic_depth * index / (total - 1), attn_layer if i in chosen else None, layer_scale))
                index += 1
            layers.append(nn.Sequential(*blocks))
            if i < len(stages):
                layers.append(nn.Sequential(LayerNorm2d(stage.dim, eps=1e-6), nn.Conv2d(stage.dim, stages[i].dim, 2, 2)))
        self.features = nn.Sequential(*layers)
        # features: stem, stage 1, then (downsample, stage) for each later stage.
        self.layout = Layout(stem=("features.0",), stages=(("features.1",), *((f"features.{2 * i}", f"features.{2 * i + 1}")
                                                                              for i in range(1, len(stages)))),
                             feature_layer=f"features.{len(layers) - 1}", head=("classifier.2",))
        self.num_features = stages[-1].dim
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(self.num_features, eps=1e-6), nn.Flatten(1), nn.Linear(self.num_features, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        from ..layers._base import AttentionModule

        owned = {id(m) for a in self.modules() if isinstance(a, AttentionModule) for m in a.modules()}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in owned:
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.forward_features(x)))


@register_model
def convnext_tiny(**kwargs) -> ConvNeXt:
    """ConvNeXt-T (Liu et al. 2022): 28,589,128 parameters, torchvision's count."""
    return ConvNeXt(TINY, name="convnext_tiny", **kwargs)

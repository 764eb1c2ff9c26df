"""EfficientNet-B0 (Tan & Le, ICML 2019, arXiv:1905.11946) with its SE slots open to any block attention.

torchvision's network, layer for layer and key for key (``features.i.j.block.k...``): 5,288,548
parameters at 1000 classes, and torchvision's checkpoints load as they are. Every MBConv block has
SE after its depthwise conv, on the expanded width: ``attn=None`` is the native SE (squeeze to a
quarter of the block's *input* width, SiLU, sigmoid), ``attn="cbam"`` / ``"eca"`` / ... puts that
module there instead, and ``native_se=False`` with ``attn=None`` leaves the slots empty.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
from torch import nn

from ..layers.se import SqueezeExcite
from .mobile import ConvNormAct, StochasticDepth, init_mobile, make_divisible
from .registry import register_model
from .slots import LayerSpec, Layout, block_factory, refuse_retrofit


class Stage(NamedTuple):
    """One stage of the paper's Table 1: MBConv expansion, kernel, first stride, widths, repeats."""
    expand: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int


B0 = [Stage(1, 3, 1, 32, 16, 1), Stage(6, 3, 2, 16, 24, 2), Stage(6, 5, 2, 24, 40, 2), Stage(6, 3, 2, 40, 80, 3),
      Stage(6, 5, 1, 80, 112, 3), Stage(6, 5, 2, 112, 192, 4), Stage(6, 3, 1, 192, 320, 1)]


class MBConv(nn.Module):
    """expand 1×1 → depthwise k×k → attention (the SE slot) → project 1×1, + input (after stochastic
    depth) when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int, drop: float,
                 attn_layer: Optional[Any]) -> None:
        super().__init__()
        expanded = make_divisible(in_channels * expand, 8)
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvNormAct(in_channels, expanded, 1, act_layer=nn.SiLU))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded, act_layer=nn.SiLU))
        if attn_layer is not None:  # (expanded width, block input width) -> module
            layers.append(attn_layer(expanded, in_channels))
        layers.append(ConvNormAct(expanded, out_channels, 1, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + self.stochastic_depth(y) if self.use_residual else y


def efficientnet_se(channels: int, block_in_channels: int) -> nn.Module:
    """EfficientNet's SE: squeeze to ``max(1, C_in / 4)`` of the block's input width, SiLU, sigmoid."""
    return SqueezeExcite(channels, hidden=max(1, block_in_channels // 4), act_layer="silu")


class EfficientNet(nn.Module):
    """EfficientNet with attention in its SE slots (see the module docstring).

    Args: stages (``B0``); num_classes, in_chans; attn / attn_options / native_se as for
    :class:`~attnzoo.models.mobilenetv3.MobileNetV3`; dropout before the classifier (0.2);
    stochastic_depth: the largest drop probability, reached by the last block (0.2, linear in depth).
    """

    def __init__(self, stages: list[Stage], num_classes: int = 1000, in_chans: int = 3, attn: LayerSpec = None,
                 attn_options: Optional[dict] = None, native_se: bool = True, dropout: float = 0.2, stochastic_depth: float = 0.2,
                 fusion: LayerSpec = None, attn_stages: Optional[list] = None, name: str = "efficientnet", retrofit: bool = False) -> None:
        super().__init__()
        refuse_retrofit(name, retrofit)
        if fusion is not None or attn_stages is not None:
            raise ValueError(f"{name}: takes attention in its SE slots only (no fusion, no attn_stages)")
        attn_layer = efficientnet_se if native_se else None
        if attn is not None:
            factory = block_factory(attn, attn_options, name)
            attn_layer = lambda expanded, _block_in: factory(expanded)  # noqa: E731
        layers: list[nn.Module] = [ConvNormAct(in_chans, stages[0].in_channels, 3, 2, act_layer=nn.SiLU)]
        total, index = sum(s.layers for s in stages), 0
        for stage in stages:
            blocks = []
            for i in range(stage.layers):
                blocks.append(MBConv(stage.in_channels if i == 0 else stage.out_channels, stage.out_channels, stage.expand, stage.kernel,
                                     stage.stride if i == 0 else 1, stochastic_depth * index / total, attn_layer))
                index += 1
            layers.append(nn.Sequential(*blocks))
        self.num_features = 4 * stages[-1].out_channels
        layers.append(ConvNormAct(stages[-1].out_channels, self.num_features, 1, act_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.layout = Layout(stem=("features.0",), stages=tuple((f"features.{i}",) for i in range(1, len(stages) + 1)),
                             feature_layer=f"features.{len(layers) - 1}", head=("classifier.1",))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))
        init_mobile(self, linear="uniform")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.forward_features(x)), 1))


@register_model
def efficientnet_b0(**kwargs) -> EfficientNet:
    """EfficientNet-B0 (Tan & Le 2019, Table 1): 5,288,548 parameters, torchvision's count."""
    return EfficientNet(B0, name="efficientnet_b0", **kwargs)

"""MobileNetV3 (Howard et al., ICCV 2019, arXiv:1905.02244) with its SE slots open to any block attention.

The network is torchvision's, layer for layer and key for key (``features.i.block.j...``), so
torchvision's checkpoints load as they are: 5,483,032 parameters (large) and 2,542,856 (small) at
1000 classes. Each bottleneck that has SE in the paper (the ``use_se`` column of Tables 1–2) has an
attention slot after its depthwise conv, on the expanded width: ``attn=None`` fills it with the
native SE (squeeze ``make_divisible(C/4, 8)``, ReLU, hard sigmoid), ``attn="cbam"`` / ``"eca"`` /
``"coord"`` ... with that module instead (coordinate attention's own paper puts it there, on
MobileNetV2/V3), and ``native_se=False`` with ``attn=None`` leaves the slots empty.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Optional

import torch
from torch import nn

from ..layers.se import SqueezeExcite
from .mobile import ConvNormAct, init_mobile, make_divisible
from .registry import register_model
from .slots import LayerSpec, Layout, block_factory, grouped_by_stride, refuse_retrofit

NORM_EPS = 0.001  # torchvision's; timm's MobileNetV3 uses BatchNorm's default 1e-5 (norm_eps=1e-5 computes its checkpoints)


class Bneck(NamedTuple):
    """One bottleneck row of the paper's tables."""
    kernel: int
    expanded: int
    out: int
    se: bool
    act: str  # "RE" (ReLU) or "HS" (hard swish)
    stride: int


LARGE = [Bneck(3, 16, 16, False, "RE", 1), Bneck(3, 64, 24, False, "RE", 2), Bneck(3, 72, 24, False, "RE", 1),
         Bneck(5, 72, 40, True, "RE", 2), Bneck(5, 120, 40, True, "RE", 1), Bneck(5, 120, 40, True, "RE", 1),
         Bneck(3, 240, 80, False, "HS", 2), Bneck(3, 200, 80, False, "HS", 1), Bneck(3, 184, 80, False, "HS", 1),
         Bneck(3, 184, 80, False, "HS", 1), Bneck(3, 480, 112, True, "HS", 1), Bneck(3, 672, 112, True, "HS", 1),
         Bneck(5, 672, 160, True, "HS", 2), Bneck(5, 960, 160, True, "HS", 1), Bneck(5, 960, 160, True, "HS", 1)]
SMALL = [Bneck(3, 16, 16, True, "RE", 2), Bneck(3, 72, 24, False, "RE", 2), Bneck(3, 88, 24, False, "RE", 1),
         Bneck(5, 96, 40, True, "HS", 2), Bneck(5, 240, 40, True, "HS", 1), Bneck(5, 240, 40, True, "HS", 1),
         Bneck(5, 120, 48, True, "HS", 1), Bneck(5, 144, 48, True, "HS", 1), Bneck(5, 288, 96, True, "HS", 2),
         Bneck(5, 576, 96, True, "HS", 1), Bneck(5, 576, 96, True, "HS", 1)]
_ACTS = {"RE": nn.ReLU, "HS": nn.Hardswish}


def mobilenet_se(channels: int) -> nn.Module:
    """MobileNetV3's SE: squeeze to ``make_divisible(C/4, 8)``, ReLU, hard sigmoid (torchvision's ``SqueezeExcitation``)."""
    return SqueezeExcite(channels, hidden=make_divisible(channels // 4, 8), gate_layer="hard_sigmoid")


class InvertedResidual(nn.Module):
    """expand 1×1 → depthwise k×k → attention (the SE slot) → project 1×1, + input when shapes allow."""

    def __init__(self, in_channels: int, cfg: Bneck, attn_layer: Optional[Any], norm_layer: Callable[[int], nn.Module]) -> None:
        super().__init__()
        act = _ACTS[cfg.act]
        layers: list[nn.Module] = []
        if cfg.expanded != in_channels:
            layers.append(ConvNormAct(in_channels, cfg.expanded, 1, norm_layer=norm_layer, act_layer=act))
        layers.append(ConvNormAct(cfg.expanded, cfg.expanded, cfg.kernel, cfg.stride, groups=cfg.expanded, norm_layer=norm_layer, act_layer=act))
        if attn_layer is not None:
            layers.append(attn_layer(cfg.expanded))
        layers.append(ConvNormAct(cfg.expanded, cfg.out, 1, norm_layer=norm_layer, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = cfg.stride == 1 and in_channels == cfg.out
        self.out_channels = cfg.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


class MobileNetV3(nn.Module):
    """MobileNetV3 with attention in its SE slots (see the module docstring).

    Args:
        config: the bottleneck rows (``LARGE`` or ``SMALL``); last_channel: the head's width (1280 / 1024).
        num_classes, in_chans: classifier outputs, input channels.
        attn: None (the native SE), a registered block-attention name, or a callable ``channels -> module``;
            attn_options: its options. native_se: with ``attn=None``, False leaves the slots empty.
        attn_stages: not taken (MobileNetV3 has SE slots, not stages): must be None.
        dropout: before the last linear layer (default 0.2).
        norm_eps: the BatchNorms' ε (default 0.001, torchvision's; timm's checkpoints need 1e-5, which
            ``create_model(..., weights=..., source="timm")`` sets).
    """

    def __init__(self, config: list[Bneck], last_channel: int, num_classes: int = 1000, in_chans: int = 3, attn: LayerSpec = None,
                 attn_options: Optional[dict] = None, native_se: bool = True, dropout: float = 0.2, fusion: LayerSpec = None,
                 attn_stages: Optional[list] = None, name: str = "mobilenet_v3", retrofit: bool = False, norm_eps: float = NORM_EPS) -> None:
        super().__init__()
        refuse_retrofit(name, retrofit)
        if fusion is not None or attn_stages is not None:
            raise ValueError(f"{name}: takes attention in its SE slots only (no fusion, no attn_stages)")
        attn_layer = block_factory(attn, attn_options, name) if attn is not None else (mobilenet_se if native_se else None)
        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=0.01)
        layers: list[nn.Module] = [ConvNormAct(in_chans, 16, 3, 2, norm_layer=norm, act_layer=nn.Hardswish)]
        channels = 16
        for cfg in config:
            layers.append(InvertedResidual(channels, cfg, attn_layer if cfg.se else None, norm))
            channels = cfg.out
        layers.append(ConvNormAct(channels, 6 * channels, 1, norm_layer=norm, act_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.layout = Layout(stem=("features.0",), stages=grouped_by_stride(1, [cfg.stride for cfg in config]),
                             feature_layer=f"features.{len(layers) - 1}", head=("classifier.3",))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 6 * channels
        self.classifier = nn.Sequential(nn.Linear(6 * channels, last_channel), nn.Hardswish(), nn.Dropout(dropout),
                                        nn.Linear(last_channel, num_classes))
        init_mobile(self, linear="normal")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.forward_features(x)), 1))


@register_model
def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    """MobileNetV3-Large (Howard et al. 2019, Table 1): 5,483,032 parameters, torchvision's count."""
    return MobileNetV3(LARGE, 1280, name="mobilenet_v3_large", **kwargs)


@register_model
def mobilenet_v3_small(**kwargs) -> MobileNetV3:
    """MobileNetV3-Small (Howard et al. 2019, Table 2): 2,542,856 parameters, torchvision's count."""
    return MobileNetV3(SMALL, 1024, name="mobilenet_v3_small", **kwargs)

"""Pieces the mobile backbones share (MobileNetV3, EfficientNet), in torchvision's key layout."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..layers._base import make_divisible

__all__ = ["ConvNormAct", "StochasticDepth", "init_mobile", "make_divisible"]


class ConvNormAct(nn.Sequential):
    """conv (no bias) → norm → activation, as torchvision's ``Conv2dNormActivation`` (keys ``0``, ``1``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d, act_layer: Optional[Callable[[], nn.Module]] = nn.ReLU) -> None:
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                  norm_layer(out_channels)]
        if act_layer is not None:
            layers.append(act_layer())
        super().__init__(*layers)


class StochasticDepth(nn.Module):
    """Drops a residual branch per sample with probability ``p`` in training, scaling survivors by
    ``1 / (1 − p)`` (torchvision's ``StochasticDepth(mode="row")``); the identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"StochasticDepth: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def init_mobile(model: nn.Module, linear: str) -> None:
    """torchvision's initialisation: convs Kaiming (fan-out), norms 1 and 0, linears ``"normal"``
    (N(0, 0.01), MobileNetV3) or ``"uniform"`` (U(±1/√out), EfficientNet); attention modules keep
    their own."""
    from ..layers._base import AttentionModule

    skip = {id(p) for m in model.modules() if isinstance(m, AttentionModule) for p in m.parameters()}
    for m in model.modules():
        if any(id(p) in skip for p in m.parameters(recurse=False)):
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear == "normal":
                nn.init.normal_(m.weight, 0, 0.01)
            else:
                bound = 1.0 / m.out_features ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)

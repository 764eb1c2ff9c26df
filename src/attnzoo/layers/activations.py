"""Activations and gates by name, so that a module's nonlinearity is a construction-time option
(``act_layer="silu"``, ``gate_layer="hard_sigmoid"``) that also works from the command line."""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import nn


class HardSigmoid(nn.Module):
    """``relu6(x + 3) / 6``, the piecewise-linear sigmoid of MobileNetV3 and eSE."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(x)


_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": HardSigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

ActLayer = Union[str, type, Callable[[], nn.Module]]


def create_act(spec: ActLayer, what: str = "act_layer") -> nn.Module:
    """A fresh activation module from a name (see ``list_acts()``), an ``nn.Module`` class or a
    zero-argument factory."""
    if isinstance(spec, str):
        try:
            return _LAYERS[spec]()
        except KeyError:
            raise ValueError(f"{what}: unknown activation {spec!r}; valid names: {', '.join(sorted(_LAYERS))}") from None
    if callable(spec):
        layer = spec()
        if isinstance(layer, nn.Module):
            return layer
    raise ValueError(f"{what}: expected an activation name, an nn.Module class or a factory, got {spec!r}")


def list_acts() -> list[str]:
    return sorted(_LAYERS)

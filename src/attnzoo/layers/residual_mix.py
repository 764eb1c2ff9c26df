"""A learnable residual mix that starts as the identity: ``x + γ·(m(x) − x)`` with γ = 0.

How :func:`attnzoo.retrofit` inserts attention and fusion into a pretrained network without changing
its outputs (see :mod:`attnzoo.models.retrofit` for why and for which modules go in bare).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class ResidualMix(nn.Module):
    """``x + γ·(m(x) − x)`` (attention) or ``(x + r) + γ·(m(x, r) − (x + r))`` (fusion), γ from 0."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        if residual is None:
            return x + self.gamma * (self.module(x) - x)
        plain = x + residual
        return plain + self.gamma * (self.module(x, residual) - plain)


def wrap(factory):
    """A layer factory whose modules come wrapped in :class:`ResidualMix` (keeps ``placement``)."""
    if factory is None:
        return None
    def wrapped(channels: int) -> nn.Module:
        module = factory(channels)
        return module if getattr(module, "identity_at_init", False) else ResidualMix(module)

    wrapped.placement = getattr(factory, "placement", "block")
    return wrapped

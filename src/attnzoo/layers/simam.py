"""SimAM: parameter-free attention from a neuron energy function."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, statistics_dtype
from .registry import register_attn


@register_attn("simam")
class SimAM(AttentionModule):
    """SimAM: weight each activation by how much it stands out from its channel, no parameters.

    Per channel, with ``n = H·W − 1``, ``d = (x − μ)²``, ``v = Σ d / n``:
    ``e⁻¹ = d / (4 (v + λ)) + 0.5`` and ``y = x ⊙ σ(e⁻¹)``. ``λ = 1e-4``.

    Args: channels ``C`` (checked only); e_lambda ``λ`` (default 1e-4).

    Reference: Yang, Zhang, Li, Xie. "SimAM: A Simple, Parameter-Free Attention Module for
    Convolutional Neural Networks", ICML 2021 (Eq. 5).

    Differences from the official code: with H = W = 1 it divides by ``n = 0`` (NaN); here
    ``n = max(H·W − 1, 1)``, which gives ``d = 0`` and a gate of ``σ(0.5)``.
    """

    def __init__(self, channels: int, e_lambda: float = 1e-4) -> None:
        super().__init__(channels)
        self.e_lambda = e_lambda
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n = max(x.shape[2] * x.shape[3] - 1, 1)
        xs = x.to(statistics_dtype(x))  # squares of |x| ~ 100 summed over H·W pass fp16's 65504
        d = (xs - xs.mean((2, 3), keepdim=True)).pow(2)
        energy_inv = d / (4 * (d.sum((2, 3), keepdim=True) / n + self.e_lambda)) + 0.5
        return x * self.gate(energy_inv).to(x.dtype)

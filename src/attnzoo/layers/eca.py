"""ECA: efficient channel attention, a 1-D convolution across channels."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._base import AttentionModule
from .registry import register_attn


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """ECA's adaptive kernel: ``t = int(|log2(C) + b| / γ)``, ``k = t`` if odd else ``t + 1``."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


@register_attn("eca")
class ECA(AttentionModule):
    """ECA: each channel's gate is a k-tap 1-D convolution over its neighbours' global means.

    ``y = x ⊙ σ(conv1d_k(GAP(x)))`` with the convolution running along the channel axis (one
    bias-free kernel of ``k`` weights shared by all channels, zero padding ``(k − 1) / 2``).

    Args:
        channels: ``C``.
        kernel_size: ``k``; default ``None`` = adaptive: ``t = int(|log2(C) + β| / γ)``, ``k = t``
            if odd else ``t + 1`` (C = 256 → 5, 2048 → 7).
        gamma, beta: ``γ = 2``, ``β = 1`` of the adaptive rule.
        min_kernel_size: lower bound on the adaptive ``k`` (default 1; timm's EcaModule uses 3,
            which differs for C < 8).

    Reference: Wang, Wu, Zhu, Li, Zuo, Hu. "ECA-Net: Efficient Channel Attention for Deep
    Convolutional Neural Networks", CVPR 2020, arXiv:1910.03151 (Eq. 12).

    Differences from common public copies: the official code takes ``k_size=3`` as an argument
    and never computes the adaptive size; here it is computed (ResNet-50 + ECA: 25,557,118
    parameters, 86 more than ResNet-50).
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: float = 2, beta: float = 1, min_kernel_size: int = 1) -> None:
        super().__init__(channels)
        k = max(eca_kernel_size(channels, gamma, beta), min_kernel_size) if kernel_size is None else kernel_size
        if k < 1 or k % 2 == 0:
            raise ValueError(f"ECA: kernel_size must be a positive odd int, got {k}")
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        s = self.gate(self.conv(x.mean((2, 3))[:, None, :])[:, 0])  # conv1d along the channels of GAP(x)
        return x * s[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"

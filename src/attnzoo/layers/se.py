"""Squeeze-and-Excitation channel attention, and its one-layer "effective" variant (eSE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import AttentionModule, hidden_width, pointwise
from .fused import fused_forward
from .registry import register_attn


@register_attn("se")
class SqueezeExcite(AttentionModule):
    """Squeeze-and-Excitation: reweight each channel by a gate computed from its global mean.

    ``s = σ(W2 · ReLU(W1 · GAP(x)))``, ``y = x ⊙ s`` (``s`` has shape ``(N, C, 1, 1)``).

    ``W1: C → h`` and ``W2: h → C`` are 1×1 convs with bias (as in the official Caffe
    model), ``h = max(min_hidden, C // reduction)``.

    Args:
        channels: input channels ``C``.
        reduction: ``r`` in ``h = C // r`` (default 16, the paper's choice).
        min_hidden: lower bound on ``h`` (default 8) so small ``C`` never gives a zero width.
        bias: whether the two 1×1 convs have a bias (default True).

    Reference: Hu, Shen, Sun. "Squeeze-and-Excitation Networks", CVPR 2018, arXiv:1709.01507.

    Differences from common public copies: the squeeze is a true global mean over H×W;
    the hidden width is an integer and never 0 (copies use ``C / r`` float division or
    let ``C // r`` reach 0); the default reduction is the paper's 16, not 1.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, bias: bool = True) -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = nn.Sigmoid()

    def gate_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        # The 1×1 convs act on a 1×1 map: run them as matrix products on (N, C) (same weights,
        # same result), which skips the convolution machinery (~100 µs per call on CPU).
        return self.gate(pointwise(self.fc2, self.act(pointwise(self.fc1, x.mean((2, 3)))))), None

    def fused_apply(self, kernels, x, identity=None, relu=False):
        # Pool, MLP and scale in one kernel call (fused_kernels.cpp); the kernel knows ReLU and
        # sigmoid only, so a swapped-in activation takes the PyTorch path.
        if type(self.act) is not nn.ReLU or type(self.gate) is not nn.Sigmoid:
            return None
        mlp = (self.fc1.weight.flatten(1), self.fc1.bias, self.fc2.weight.flatten(1), self.fc2.bias)
        return kernels.pooled_gates(x, identity, relu, *mlp, False, None, None, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = fused_forward(self, x)
        return x * self.gate_factors(x)[0][:, :, None, None] if y is None else y


class HardSigmoid(nn.Module):
    """``relu6(x + 3) / 6``, the piecewise-linear sigmoid of MobileNetV3 and eSE."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(x)


@register_attn("ese")
class EffectiveSqueezeExcite(AttentionModule):
    """Effective SE: SE with a single C→C layer (no bottleneck) and a hard sigmoid.

    ``y = x ⊙ hσ(W · GAP(x) + b)``, ``W: C → C`` a 1×1 conv with bias, ``hσ(z) = relu6(z + 3) / 6``.
    Keeping all C channels avoids the information loss of SE's C/r bottleneck.

    Args: channels ``C``.

    Reference: Lee, Park. "CenterMask: Real-Time Anchor-Free Instance Segmentation", CVPR 2020,
    arXiv:1911.06667 (Sec. 3.3, VoVNetV2).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = HardSigmoid()

    def gate_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.gate(pointwise(self.fc, x.mean((2, 3)))), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return x * self.gate_factors(x)[0][:, :, None, None]

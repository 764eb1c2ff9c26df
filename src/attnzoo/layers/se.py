"""Squeeze-and-Excitation channel attention, and its one-layer "effective" variant (eSE)."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ._base import Gates, GateModule, hidden_width, pointwise, rounded_width
from .activations import ActLayer, create_act
from .registry import register_attn


@register_attn("se")
class SqueezeExcite(GateModule):
    """Squeeze-and-Excitation: reweight each channel by a gate computed from its global mean.

    ``s = σ(W2 · ReLU(W1 · GAP(x)))``, ``y = x ⊙ s`` (``s`` has shape ``(N, C, 1, 1)``).

    ``W1: C → h`` and ``W2: h → C`` are 1×1 convs with bias (as in the official Caffe
    model), ``h = max(min_hidden, C // reduction)``.

    Args:
        channels: input channels ``C``.
        reduction: ``r`` in ``h = C // r`` (default 16, the paper's choice).
        min_hidden: lower bound on ``h`` (default 8) so small ``C`` never gives a zero width.
        bias: whether the two 1×1 convs have a bias (default True).
        round_to: round ``C / r`` to the nearest multiple of this instead (timm's ``rd_divisor``:
            8 in its SE; the result never below ``round_to``). Default None: ``C // r`` as above.
        hidden: the hidden width itself (timm's ``rd_channels``), overriding ``reduction``; how
            MobileNetV3 and EfficientNet build their native SE.
        act_layer, gate_layer: the hidden activation and the gate, by name (``"relu"``, ``"silu"``,
            ``"sigmoid"``, ``"hard_sigmoid"``, ...; see ``layers.activations``) or as a module class
            (defaults ``"relu"``, ``"sigmoid"``).

    Reference: Hu, Shen, Sun. "Squeeze-and-Excitation Networks", CVPR 2018, arXiv:1709.01507.

    Differences from common public copies: the squeeze is a true global mean over H×W;
    the hidden width is an integer and never 0 (copies use ``C / r`` float division or
    let ``C // r`` reach 0); the default reduction is the paper's 16, not 1.
    """

    viz_kind = "channel"

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, bias: bool = True, round_to: int | None = None,
                 act_layer: ActLayer = "relu", gate_layer: ActLayer = "sigmoid", hidden: int | None = None) -> None:
        super().__init__(channels)
        if hidden is None:
            hidden = hidden_width(channels, reduction, min_hidden) if round_to is None else rounded_width(channels, reduction, round_to)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = create_act(act_layer, "act_layer")
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = create_act(gate_layer, "gate_layer")

    def gates(self, x: torch.Tensor) -> Gates:
        """``s = σ(W2 · ReLU(W1 · GAP(x)))`` (N, C); ``forward`` returns ``x ⊙ s``."""
        # The 1×1 convs act on a 1×1 map: matrix products on (N, C), the same weights and result.
        s = self.gate(pointwise(self.fc2, self.act(pointwise(self.fc1, ops.global_mean(x)))))
        return s, None


@register_attn("ese")
class EffectiveSqueezeExcite(GateModule):
    """Effective SE: SE with a single C→C layer (no bottleneck) and a hard sigmoid.

    ``y = x ⊙ hσ(W · GAP(x) + b)``, ``W: C → C`` a 1×1 conv with bias, ``hσ(z) = relu6(z + 3) / 6``.
    Keeping all C channels avoids the information loss of SE's C/r bottleneck.

    Args: channels ``C``; gate_layer (default ``"hard_sigmoid"``).

    Reference: Lee, Park. "CenterMask: Real-Time Anchor-Free Instance Segmentation", CVPR 2020,
    arXiv:1911.06667 (Sec. 3.3, VoVNetV2).
    """

    def __init__(self, channels: int, gate_layer: ActLayer = "hard_sigmoid") -> None:
        super().__init__(channels)
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = create_act(gate_layer, "gate_layer")

    def gates(self, x: torch.Tensor) -> Gates:
        """``hσ(W · GAP(x) + b)`` (N, C); ``forward`` returns ``x ⊙`` it."""
        return self.gate(pointwise(self.fc, ops.global_mean(x))), None

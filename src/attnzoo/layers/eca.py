"""ECA: efficient channel attention, a 1-D convolution across channels; its circular (``ceca``) and
MLP (``ecam``) code variants."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import ops
from ..utils.constraints import Choice
from ._base import Gates, GateModule, rounded_width
from .activations import ActLayer, create_act
from .registry import register_attn


def _kernel_size(owner: str, channels: int, kernel_size: int | None, gamma: float, beta: float, min_kernel_size: int) -> int:
    if kernel_size is not None:
        return kernel_size
    # Taps beyond 2C + 1 only ever see the zero padding (a tiny γ would ask for billions of them).
    span = abs((math.log2(channels) + beta) / gamma)
    if span > 2 * channels + 1:
        raise ValueError(f"{owner}: gamma={gamma:g}, beta={beta:g} make the adaptive kernel {span:.3g} taps wide at {channels} "
                         f"channels; expected at most {2 * channels + 1} (or give kernel_size)")
    return max(eca_kernel_size(channels, gamma, beta), min_kernel_size)


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """ECA's adaptive kernel: ``t = int(|log2(C) + b| / γ)``, ``k = t`` if odd else ``t + 1``."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


@register_attn("eca")
class ECA(GateModule):
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
        gate_layer: the gate, by name or module class (default ``"sigmoid"``).

    Reference: Wang, Wu, Zhu, Li, Zuo, Hu. "ECA-Net: Efficient Channel Attention for Deep
    Convolutional Neural Networks", CVPR 2020, arXiv:1910.03151 (Eq. 12).

    Differences from common public copies: the official code takes ``k_size=3`` as an argument
    and never computes the adaptive size; here it is computed (ResNet-50 + ECA: 25,557,118
    parameters, 86 more than ResNet-50).
    """

    padding_mode = "zeros"

    viz_kind = "channel"

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: float = 2, beta: float = 1, min_kernel_size: int = 1,
                 gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        self.kernel_size = _kernel_size(type(self).__name__, channels, kernel_size, gamma, beta, min_kernel_size)
        k = self.kernel_size
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False, padding_mode=self.padding_mode)
        self.gate = create_act(gate_layer, "gate_layer")

    def gates(self, x: torch.Tensor) -> Gates:
        """``σ(conv1d_k(GAP(x)))`` (N, C), the conv running along the channels; ``forward`` returns ``x ⊙`` it."""
        return self.gate(self.conv(ops.global_mean(x)[:, None, :])[:, 0]), None

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"


@register_attn("ceca")
class CircularECA(ECA):
    """Circular ECA: ECA whose channel convolution wraps around (circular padding, not zeros).

    ``y = x ⊙ σ(conv1d_k(GAP(x)))`` with ``GAP(x)`` padded circularly by ``(k − 1) / 2``: the first
    and last channels are neighbours, so no channel sees zero padding (channels have no order
    that makes the ends special).

    Args: as :class:`ECA` (adaptive ``k``: 5 at C = 256).

    Reference: the ECA equation of Wang et al., CVPR 2020 (arXiv:1910.03151); the circular
    padding is timm's ``CecaModule`` (Chris Ha). timm clamps the adaptive ``k`` to at least 3
    (``min_kernel_size=3`` here); the counts agree for C ≥ 8.
    """

    padding_mode = "circular"


@register_attn("ecam")
class ECAM(GateModule):
    """ECA with a small MLP along the channel axis: a 1-tap expansion, ReLU, then the k-tap conv.

    ``d = GAP(x)`` as a 1-channel sequence of length C; ``h = ReLU(W_1 d)`` with ``W_1: 1 → m``
    (a 1-tap conv, ``m`` channels), ``s = σ(conv1d_k(h))`` (``m → 1``, k taps, zero padding),
    ``y = x ⊙ s``; with ``bias=True`` (timm's form) both convs add a bias, ``b_1`` and ``b_2``.
    With ``pools="avg+max"`` the same MLP also runs on the global max and the two logits are summed
    before the sigmoid (CBAM's pooling, ECA's conv).

    Args: channels ``C``; kernel_size / gamma / beta / min_kernel_size: as :class:`ECA`
    (adaptive ``k``); reduction: ``m = C / reduction`` rounded to a multiple of ``round_to``
    (defaults 8 and 8: m = 32 at C = 256, timm's ``rd_ratio=1/8, rd_divisor=8``); pools:
    ``"avg"`` (default) or ``"avg+max"``; bias: biases in both convs (default False; True is
    timm's); act_layer, gate_layer (defaults ``"relu"``, ``"sigmoid"``).

    Why the default has no biases, unlike timm's: the biases make the gate a free per-layer scalar
    on the residual branch, independent of the input. In attnzoo's default regime (plain ResNet-8,
    6 seeds over two data seeds, docs/results/ecam/ and ecam-fresh/) timm's form let that scalar shut the branch
    while the network sat at chance (one seed ended at 33%) and then open it fully: 5 of 6 runs were
    flagged for a last-stage gate saturated at 0.97–0.99 (the module had turned itself into the
    identity). Without the biases, as ECA itself, none was flagged. ``bias=True`` stays available.

    Reference: the ECA equation of Wang et al., CVPR 2020 (arXiv:1910.03151); ``ecam`` is
    timm's name for ``EcaModule(use_mlp=True)``, an experiment of timm's, not of the paper
    (192 parameters at C = 256; 225 with ``bias=True``, as timm's). ``pools="avg+max"`` is not in timm.
    """

    viz_kind = "channel"

    option_rules = {"pools": Choice(("avg", "avg+max"))}

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: float = 2, beta: float = 1,
                 min_kernel_size: int = 3, reduction: float = 8, round_to: int = 8, pools: str = "avg", bias: bool = False,
                 act_layer: ActLayer = "relu", gate_layer: ActLayer = "sigmoid") -> None:
        super().__init__(channels)
        self.pools = pools
        self.kernel_size = k = _kernel_size("ECAM", channels, kernel_size, gamma, beta, min_kernel_size)
        hidden = rounded_width(channels, reduction, round_to, round_limit=0.9)  # timm's make_divisible, as its EcaModule
        self.conv1 = nn.Conv1d(1, hidden, 1, bias=bias)
        self.act = create_act(act_layer, "act_layer")
        self.conv2 = nn.Conv1d(hidden, 1, k, padding=(k - 1) // 2, bias=bias)
        self.gate = create_act(gate_layer, "gate_layer")

    def gates(self, x: torch.Tensor) -> Gates:
        """``s = σ(Σ_d conv1d_k(ReLU(W_1 d)))`` over the descriptors ``d`` (N, C); ``forward`` returns ``x ⊙ s``."""
        descriptors = ops.global_pools(x) if self.pools == "avg+max" else (ops.global_mean(x),)
        logits = sum(self.conv2(self.act(self.conv1(d[:, None, :])))[:, 0] for d in descriptors)
        return self.gate(logits), None

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, pools={self.pools!r}"

"""Non-local block (Wang et al., CVPR 2018): self-attention over all positions with a residual
BatchNorm that starts at zero."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import AttentionModule, hidden_width, rounded_width
from .registry import register_attn
from .self_attn import DEFAULT_MAX_ATTN_ELEMENTS, _attend, _check_attention_size


@register_attn("nonlocal")
class NonLocal2d(AttentionModule):
    """Non-local block, embedded Gaussian: a residual self-attention with a BN whose weight starts at 0.

    ``f = softmax(θ(x)ᵀ φ(x))`` over keys, ``z = x + BN(W_z(g(x) fᵀ))``; ``θ, φ, g: C → d``
    (1×1 convs), ``W_z: d → C``, ``d = max(min_hidden, C // reduction)`` (with ``round_to``: timm's
    ``make_divisible(C / reduction, round_to)``, which moves up a multiple where rounding lost over
    10%). The BN weight and
    bias start at 0 so the block starts as the identity.

    Args:
        channels: ``C``. reduction: ``C // d`` (default 2, the paper's halving).
        min_hidden: lower bound on ``d`` (default 1).
        subsample: 2×2 max-pool ``φ`` and ``g`` (default True, as in the paper), which
            divides the attention matrix by about 4.
        max_attn_elements: cap on query × key positions per image (default 2**24).
        scale_logits: multiply the logits by ``C^-½`` (default False, the paper; timm's
            ``NonLocalAttn`` does, with ``reduction=8, round_to=8`` and ``subsample=False``).
        round_to: round ``d`` as timm does (default None: ``C // reduction``; timm's 8 gives 8
            where ``C // 8`` gives 2 at C = 16, 16 for 9 at C = 72).

    Reference: Wang, Girshick, Gupta, He. "Non-local Neural Networks", CVPR 2018,
    arXiv:1711.07971 (Fig. 2, Sec. 4.1).
    """

    viz_kind = "rows"

    identity_at_init = True  # its residual branch starts at exactly zero (retrofit inserts it as is)

    def __init__(
        self,
        channels: int,
        reduction: float = 2,
        min_hidden: int = 1,
        subsample: bool = True,
        max_attn_elements: int = DEFAULT_MAX_ATTN_ELEMENTS,
        scale_logits: bool = False,
        round_to: int | None = None,
    ) -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden) if round_to is None else rounded_width(channels, reduction, round_to, 0.9)
        self.subsample = subsample
        self.max_attn_elements = max_attn_elements
        self.logit_scale = channels**-0.5 if scale_logits else 1.0
        self.theta = nn.Conv2d(channels, hidden, 1)
        self.phi = nn.Conv2d(channels, hidden, 1)
        self.g = nn.Conv2d(channels, hidden, 1)
        self.gate = nn.Softmax(dim=-1)
        self.out_conv = nn.Conv2d(hidden, channels, 1)
        self.out_norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.out_norm.weight)
        nn.init.zeros_(self.out_norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, _, h, w = x.shape
        phi, g = self.phi(x), self.g(x)
        if self.subsample:
            # ceil_mode keeps 1×1 and odd sizes working (a 1×1 map stays 1×1).
            phi = F.max_pool2d(phi, 2, 2, ceil_mode=True)
            g = F.max_pool2d(g, 2, 2, ceil_mode=True)
        _check_attention_size(self, h * w, phi.shape[2] * phi.shape[3], self.max_attn_elements)
        theta = self.theta(x).flatten(2)  # (N, d, HW)
        y = _attend(self.gate, theta, phi.flatten(2), g.flatten(2), self.logit_scale).view(n, -1, h, w)
        return x + self.out_norm(self.out_conv(y))

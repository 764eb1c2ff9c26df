"""Lambda layer: content and position lambdas, linear functions that summarise context for every query."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionConv
from .registry import register_conv


@register_conv("lambda")
class LambdaLayer(AttentionConv):
    """Lambda layer (multi-query, intra-depth 1), in place of a 3×3 conv.

    ``Q = BN(W_q x)`` (``h`` heads of ``k`` channels), ``K = softmax_positions(W_k x)`` (``k``),
    ``V = BN(W_v x)`` (``v = C_out / h``). The content lambda ``λ^c = K Vᵀ`` (``k × v``) is shared by
    all positions; the position lambda of position ``n`` is ``λ^p_n = Σ_m E_{nm} V_m`` over an
    ``r × r`` neighbourhood — the "lambda convolution", one bias-free 2-D conv of ``k`` kernels
    run on each value channel. Each head's output is ``y_n = (λ^c + λ^p_n)ᵀ q_n``; heads are
    concatenated. With stride 2 a 2×2 average pool follows. Memory is linear in H·W.

    Args: channels (in); out_channels (default = in); stride (1 or 2); heads ``h`` (default 4; the largest count not above it that divides out_channels);
    key_dim ``k`` (default 16); radius: the scope ``r`` of the lambda convolution (default 23,
    the paper's ImageNet choice; timm uses 9).

    45,584 parameters at C = 256 with r = 23 (38,416 with r = 9; timm's ``LambdaLayer``, r = 9,
    has 38,432: its lambda convolution has a bias, ``k`` = 16 more).

    In a ResNet its block's last BatchNorm starts at 0 (``zero_init_residual = True``, as timm's
    LambdaResNets' ``zero_init_last``): ``y = (λ^c + λ^p)ᵀ q`` is quadratic in ``x`` — both ``q``
    and ``V`` are linear in it — and BatchNorm only undoes that with batch statistics; with running
    statistics (eval mode, at init or after a few steps) each layer squares the activation scale,
    and LambdaResNet-50's output reached 1e24 and then NaN at layer2.3.

    Reference: Bello. "LambdaNetworks: Modeling Long-Range Interactions Without Attention",
    ICLR 2021, arXiv:2102.08602 (Sec. 3-4, Fig. 3 and the appendix pseudo-code).
    """

    zero_init_residual = True

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, heads: int = 4,
                 key_dim: int = 16, radius: int = 23) -> None:
        super().__init__(channels, out_channels, stride, heads)
        heads = self.heads
        self.heads, self.key_dim, self.value_dim = heads, key_dim, self.out_channels // heads
        self.qkv = nn.Conv2d(channels, heads * key_dim + key_dim + self.value_dim, 1, bias=False)
        self.norm_q = nn.BatchNorm2d(heads * key_dim)
        self.norm_v = nn.BatchNorm2d(self.value_dim)
        self.gate = nn.Softmax(dim=-1)  # keys, normalised over positions
        self.position = nn.Conv2d(1, key_dim, radius, padding=radius // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, _, h, w = x.shape
        heads, kd, vd, m = self.heads, self.key_dim, self.value_dim, h * w
        q, k, v = self.qkv(x).split([heads * kd, kd, vd], dim=1)
        q = self.norm_q(q).view(n, heads, kd, m)
        v = self.norm_v(v)  # (N, v, H, W)
        keys = self.gate(k.reshape(n, kd, m))
        content = keys @ v.view(n, vd, m).transpose(1, 2)  # λ^c: (N, k, v)
        # λ^p: the lambda convolution on every value channel: (N·v, 1, H, W) -> (N, v, k, M).
        position = self.position(v.reshape(n * vd, 1, h, w)).view(n, vd, kd, m)
        out = torch.einsum("nhkm,nkv->nhvm", q, content) + torch.einsum("nhkm,nvkm->nhvm", q, position)
        return self.pool(out.reshape(n, self.out_channels, h, w))

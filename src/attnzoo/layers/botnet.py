"""BoTNet: multi-head self-attention with 2-D relative position logits, in place of a 3×3 conv."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionConv
from .registry import register_conv
from .self_attn import DEFAULT_MAX_ATTN_ELEMENTS, _check_attention_size


def relative_logits_1d(q: torch.Tensor, table: torch.Tensor, queries: int, keys: int, key_start: int) -> torch.Tensor:
    """Logits ``q_i · r_{k − i}`` of relative positions along one axis.

    q: (..., queries, d) queries along this axis at positions ``0..queries-1``; keys sit at
    positions ``key_start + 0..keys-1``; table: (2S − 1, d), row ``S − 1 + offset`` for offsets
    in ``[−(S − 1), S − 1]``. Returns (..., queries, keys).
    """
    centre = (table.shape[0] - 1) // 2
    farthest = max(abs(key_start + keys - 1), abs(key_start - (queries - 1)))
    if farthest > centre:
        raise ValueError(f"relative offsets up to {farthest} need tables of {2 * farthest + 1} rows, they have {table.shape[0]}")
    offsets = torch.arange(keys, device=q.device)[None, :] + key_start - torch.arange(queries, device=q.device)[:, None]
    all_offsets = q @ table.T  # (..., queries, 2S − 1)
    index = (offsets + centre).expand(*all_offsets.shape[:-1], keys)
    return all_offsets.gather(-1, index)


class RelativePosition2d(nn.Module):
    """Factorised 2-D relative position logits ``q · (r^h_{k−i} + r^w_{l−j})`` (BoTNet, HaloNet).

    ``max_offset``: the largest |offset| per axis; the tables have ``2·max_offset + 1`` rows of
    ``dim`` values each, initialised ``N(0, dim^−½)``.
    """

    def __init__(self, max_offset: int, dim: int) -> None:
        super().__init__()
        self.height = nn.Parameter(torch.randn(2 * max_offset + 1, dim) * dim**-0.5)
        self.width = nn.Parameter(torch.randn(2 * max_offset + 1, dim) * dim**-0.5)

    def forward(self, q: torch.Tensor, key_size: tuple[int, int], key_start: int = 0) -> torch.Tensor:
        """q: (B, qh, qw, d) -> logits (B, qh·qw, kh·kw) for keys on a kh × kw grid whose first row
        and column sit at ``key_start`` relative to the first query."""
        b, qh, qw, _ = q.shape
        kh, kw = key_size
        logits_w = relative_logits_1d(q, self.width, qw, kw, key_start)  # (B, qh, qw, kw)
        logits_h = relative_logits_1d(q.transpose(1, 2), self.height, qh, kh, key_start).transpose(1, 2)  # (B, qh, qw, kh)
        return (logits_h[..., :, None] + logits_w[..., None, :]).reshape(b, qh * qw, kh * kw)


@register_conv("bottleneck")
class BottleneckAttention(AttentionConv):
    """BoTNet's multi-head self-attention (MHSA) over all positions, with relative position logits.

    Per head (``h`` heads of ``d = C_out / h`` channels): ``q, k, v = W_qkv x`` (one bias-free 1×1
    conv), ``q ← q · d^−½``, ``A = softmax(q kᵀ + q · (r^h_{k−i} + r^w_{l−j}))`` over the
    ``H·W`` keys, ``o = A v``; heads concatenated. With stride 2 a 2×2 average pool follows (the
    paper's first block of c5). Unlike the other attention modules it replaces a bottleneck's
    3×3 conv; the block's BN and ReLU stay after it (``includes_norm = False``).

    Args: channels (in); out_channels (default = in); stride (1 or 2); heads (default 4; the largest count not above it that divides out_channels);
    feat_size ``S``: the largest side it will see — the relative tables cover offsets up to
    ``S − 1`` (default 16; the model ``botnet50`` passes 14, the c5 input at 224²);
    max_attn_elements: cap on heads × (H·W)² logits per image (default 2**24), above which a
    ``ValueError`` names the size instead of exhausting memory.

    200,576 parameters at C = 256 with S = 16, timm's ``BottleneckAttn(feat_size=16)``.

    Reference: Srinivas, Lin, Parmar, Shlens, Abbeel, Vaswani. "Bottleneck Transformers for
    Visual Recognition", CVPR 2021, arXiv:2101.11605 (Fig. 4, appendix pseudo-code).
    Differences: timm scales only the content logits (``scale_pos_embed=False`` by default);
    the paper scales ``q`` before both, as here. timm requires the input size to equal
    ``feat_size``; here any size up to it works (smaller maps use the central rows of the tables).
    """

    default_stages = "last"  # in a ResNet: the bottlenecks of the last stage only, as in the paper

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, heads: int = 4,
                 feat_size: int = 16, max_attn_elements: int = DEFAULT_MAX_ATTN_ELEMENTS) -> None:
        super().__init__(channels, out_channels, stride, heads)
        heads = self.heads
        self.heads, self.feat_size, self.max_attn_elements = heads, feat_size, max_attn_elements
        self.head_dim = self.out_channels // heads
        self.qkv = nn.Conv2d(channels, 3 * self.out_channels, 1, bias=False)
        self.pos = RelativePosition2d(feat_size - 1, self.head_dim)
        self.gate = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, _, h, w = x.shape
        if max(h, w) > self.feat_size:
            raise ValueError(f"BottleneckAttention: input of {h}×{w} exceeds feat_size={self.feat_size}; build it with feat_size >= {max(h, w)}")
        _check_attention_size(self, h * w * self.heads, h * w, self.max_attn_elements, remedy="use fewer heads or a smaller feature map")
        heads, d = self.heads, self.head_dim
        q, k, v = self.qkv(x).view(n, 3, heads, d, h * w).unbind(1)  # each (N, heads, d, HW)
        q = q.reshape(n * heads, d, h * w).transpose(1, 2) * d**-0.5  # (N·heads, HW, d)
        k, v = k.reshape(n * heads, d, h * w), v.reshape(n * heads, d, h * w)
        logits = q @ k + self.pos(q.view(n * heads, h, w, d), (h, w))
        out = (v @ self.gate(logits).transpose(1, 2)).view(n, self.out_channels, h, w)
        return self.pool(out)

"""HaloNet: blocked local self-attention, each block of queries attending to its block plus a halo."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .botnet import RelativePosition2d
from ._base import AttentionConv
from .registry import register_conv


@register_conv("halo")
class HaloAttention(AttentionConv):
    """Blocked local self-attention with a halo, in place of a 3×3 conv.

    The map is cut into ``b × b`` query blocks; each attends (per head, ``d = C_out / h``
    channels) to the ``(b + 2s) × (b + 2s)`` window around its block: ``q = W_q x · d^−½``,
    ``k, v = W_kv x`` (bias-free 1×1 convs), ``A = softmax(q kᵀ + q · (r^h + r^w))`` with 2-D
    relative position logits, ``o = A v``. Keys outside the image are masked out. Sizes that are not
    a multiple of ``b`` are padded to one and cropped back. With stride 2 a 2×2 average pool follows.
    Memory is linear in H·W (``h · b² · (b + 2s)²`` logits per block), so no size cap is needed.

    Args: channels (in); out_channels (default = in); stride (1 or 2); heads (default 8; the largest count not above it that divides out_channels);
    block_size ``b`` (default 8); halo_size ``s`` (default 3) — HaloNet's b = 8, h = 3.

    197,952 parameters at C = 256. timm's ``HaloAttn`` has 198,336: its relative tables have
    ``2(b + 2s) − 1`` = 27 rows per axis, but a query inside the block only ever sees offsets up
    to ``b + s − 1``, so 6 rows per axis are never used; here the tables have the 21 rows that are.

    Reference: Vaswani, Ramachandran, Srinivas, Parmar, Hechtman, Shlens. "Scaling Local
    Self-Attention for Parameter Efficient Visual Backbones", CVPR 2021, arXiv:2103.12731 (Sec. 2.2).
    Differences: timm attends to the zero-padded keys outside the image (their logits are the
    position terms alone) and requires H and W to be multiples of ``b``; here they are masked
    and any size works. timm strides by subsampling queries; here by average pooling.
    """

    default_stages = "last"  # in a ResNet: the bottlenecks of the last stage only, as in the paper

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, heads: int = 8,
                 block_size: int = 8, halo_size: int = 3) -> None:
        super().__init__(channels, out_channels, stride, heads)
        heads = self.heads
        self.heads, self.block_size, self.halo_size = heads, block_size, halo_size
        self.head_dim = self.out_channels // heads
        self.q = nn.Conv2d(channels, self.out_channels, 1, bias=False)
        self.kv = nn.Conv2d(channels, 2 * self.out_channels, 1, bias=False)
        self.pos = RelativePosition2d(block_size + halo_size - 1, self.head_dim)
        self.gate = nn.Softmax(dim=-1)

    def _windows(self, t: torch.Tensor) -> torch.Tensor:
        """(N, C, bh·b, bw·b) -> (N, C, bh, bw, win, win): each block's window, zero outside."""
        b, s = self.block_size, self.halo_size
        return F.pad(t, (s, s, s, s)).unfold(2, b + 2 * s, b).unfold(3, b + 2 * s, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, _, h, w = x.shape
        b, s, heads, d = self.block_size, self.halo_size, self.heads, self.head_dim
        bh, bw, win = -(-h // b), -(-w // b), b + 2 * s
        x = F.pad(x, (0, bw * b - w, 0, bh * b - h))
        # Queries: (N·heads·blocks, b·b, d); keys and values: (N·heads·blocks, win·win, d).
        q = self.q(x).view(n, heads, d, bh, b, bw, b).permute(0, 1, 3, 5, 4, 6, 2).reshape(-1, b * b, d) * d**-0.5
        kv = self._windows(self.kv(x)).reshape(n, 2, heads, d, bh, bw, win * win).permute(1, 0, 2, 4, 5, 6, 3)
        k, v = kv.reshape(2, -1, win * win, d).unbind(0)
        inside = self._windows(F.pad(x.new_ones(1, 1, h, w), (0, bw * b - w, 0, bh * b - h))).reshape(1, bh * bw, 1, win * win)
        logits = q @ k.transpose(1, 2) + self.pos(q.view(-1, b, b, d), (win, win), key_start=-s)
        logits = logits.view(n * heads, bh * bw, b * b, win * win).masked_fill(inside == 0, float("-inf"))
        out = self.gate(logits).view(-1, b * b, win * win) @ v  # (N·heads·blocks, b·b, d)
        out = out.view(n, heads, bh, bw, b, b, d).permute(0, 1, 6, 2, 4, 3, 5).reshape(n, self.out_channels, bh * b, bw * b)
        return self.pool(out[:, :, :h, :w])

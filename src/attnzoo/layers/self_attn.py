"""Image self-attention (SAGAN) and the attention helpers the non-local block shares (:mod:`.non_local`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ._base import AttentionModule, hidden_width
from .registry import register_attn

# Default cap on query positions × key positions per image: 2**24 fp32 logits = 64 MiB
# per sample before softmax. Raise it explicitly if you mean to pay for more.
DEFAULT_MAX_ATTN_ELEMENTS = 1 << 24


def _attend(gate: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``value · softmax(scale · queryᵀ key)ᵀ``, in fp32 even under autocast.

    query: (N, d, Lq), key: (N, d, Lk), value: (N, c, Lk) -> (N, c, Lq). When a hook watches
    ``gate`` the softmax runs through it on the explicit (N, Lq, Lk) matrix, so the hook sees the
    attention rows; otherwise the same product runs as one
    ``scaled_dot_product_attention`` call (scale 1), which never materialises that matrix.
    """
    out_dtype = value.dtype
    dtype = torch.promote_types(query.dtype, torch.float32)  # fp16/bf16 -> fp32, fp64 stays
    with torch.autocast(device_type=query.device.type, enabled=False):
        q, k, v = (t.to(dtype).transpose(1, 2) for t in (query, key, value))  # (N, L, ·)
        if ops.observed(gate):
            attn = gate(torch.bmm(q, k.transpose(1, 2)) * scale)  # (N, Lq, Lk)
            out = torch.bmm(attn, v)
        else:
            out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=scale)[:, 0]
    return out.transpose(1, 2).to(out_dtype)


def _check_attention_size(module: nn.Module, queries: int, keys: int, limit: int,
                          remedy: str = "subsample keys (kv_stride / subsample), use a smaller feature map") -> None:
    if queries * keys > limit:
        raise ValueError(
            f"{type(module).__name__}: attention over {queries} query × {keys} key positions "
            f"needs {queries * keys} logits per image, above max_attn_elements={limit}; "
            f"{remedy}, or raise max_attn_elements"
        )


@register_attn("self_attn")
class SelfAttention2d(AttentionModule):
    """SAGAN self-attention: every position attends to all positions, added back with a learned scale.

    With ``N = H·W`` positions: ``q = Wq x``, ``k = Wk x`` (``C → d``), ``v = Wv x`` (``C → C``),
    ``A = softmax(qᵀk)`` over keys (``N × N``), ``o = v Aᵀ``, ``y = γ·o + x`` with ``γ = 0`` at
    init, so the block starts as the identity. ``d = max(min_hidden, C // reduction)``.

    Memory grows as ``(H·W)²``: ``kv_stride > 1`` max-pools keys and values by that factor
    (SAGAN's generator uses 2), and inputs whose attention matrix would exceed
    ``max_attn_elements`` logits per image raise ``ValueError`` instead of exhausting memory.
    Logits and softmax run in fp32 under autocast.

    Args:
        channels: ``C``. reduction: ``C // d`` (default 8). min_hidden: lower bound on ``d`` (1).
        kv_stride: key/value subsampling (default 1, none).
        max_attn_elements: cap on ``H·W × keys`` per image (default 2**24).

    Reference: Zhang, Goodfellow, Metaxas, Odena. "Self-Attention Generative Adversarial
    Networks", ICML 2019, arXiv:1805.08318.
    """

    viz_kind = "rows"

    identity_at_init = True  # its residual branch starts at exactly zero (retrofit inserts it as is)

    def __init__(
        self,
        channels: int,
        reduction: float = 8,
        min_hidden: int = 1,
        kv_stride: int = 1,
        max_attn_elements: int = DEFAULT_MAX_ATTN_ELEMENTS,
    ) -> None:
        super().__init__(channels)
        if kv_stride < 1:
            raise ValueError(f"SelfAttention2d: kv_stride must be >= 1, got {kv_stride}")
        hidden = hidden_width(channels, reduction, min_hidden)
        self.kv_stride = kv_stride
        self.max_attn_elements = max_attn_elements
        self.query = nn.Conv2d(channels, hidden, 1)
        self.key = nn.Conv2d(channels, hidden, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Softmax(dim=-1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, c, h, w = x.shape
        kv = x
        if self.kv_stride > 1:
            kv = F.max_pool2d(x, self.kv_stride, self.kv_stride, ceil_mode=True)
        _check_attention_size(self, h * w, kv.shape[2] * kv.shape[3], self.max_attn_elements)
        q = self.query(x).flatten(2)  # (N, d, HW)
        k = self.key(kv).flatten(2)  # (N, d, L)
        v = self.value(kv).flatten(2)  # (N, C, L)
        out = _attend(self.gate, q, k, v).view(n, c, h, w)
        return x + self.gamma * out

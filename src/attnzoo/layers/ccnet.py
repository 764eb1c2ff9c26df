"""CCNet: criss-cross attention, each position attending to its row and column, applied recurrently."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, hidden_width
from .registry import register_attn


@register_attn("ccnet")
class CrissCrossAttention(AttentionModule):
    """Recurrent criss-cross attention (RCCA): each pass lets every position attend to the
    ``H + W − 1`` positions of its own row and column; two passes reach the whole image.

    One pass: ``q, k = W_q x, W_k x`` (``C → C/8``), ``v = W_v x`` (``C → C``); for position ``u``
    the logits are ``q_u · k_j`` over the positions ``j`` in u's column and row (u itself once),
    ``A_u = softmax`` over those ``H + W − 1`` logits, ``x'_u = γ · Σ_j A_uj v_j + x_u``, ``γ = 0``
    at init. The module applies that pass ``recurrence`` times with the same weights (R = 2 in the
    paper). Memory is ``H·W·(H + W)`` logits, not ``(H·W)²``.

    Args: channels ``C``; reduction (default 8) and min_hidden (default 1) of ``q, k``;
    recurrence ``R`` (default 2).

    Reference: Huang, Wang, Huang, Huang, Wei, Liu. "CCNet: Criss-Cross Attention for Semantic
    Segmentation", ICCV 2019, arXiv:1811.11721 (Sec. 3.2-3.3). The paper's head wraps RCCA in
    3×3 convs and concatenates it with the input for segmentation; here it is the attention alone,
    shape-preserving, placed after the last stage of a ResNet. The authors' code counts the centre
    in both the row and the column and masks one with −∞, as here.
    """

    identity_at_init = True
    placement = "head"

    def __init__(self, channels: int, reduction: float = 8, min_hidden: int = 1, recurrence: int = 2) -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden)
        self.recurrence = recurrence
        self.query = nn.Conv2d(channels, hidden, 1)
        self.key = nn.Conv2d(channels, hidden, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Softmax(dim=-1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def criss_cross(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: ``Σ_j A_uj v_j`` over each position's row and column, (N, C, H, W)."""
        h = x.shape[2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            dtype = torch.promote_types(q.dtype, torch.float32)
            q, k = q.to(dtype), k.to(dtype)
            column = torch.einsum("ncij,ncwj->nijw", q, k)  # (N, H, W, H): keys in u's column
            row = torch.einsum("ncij,nciw->nijw", q, k)  # (N, H, W, W): keys in u's row
            self_in_column = torch.eye(h, dtype=torch.bool, device=x.device)[:, None, :]  # (H, 1, H)
            column = column.masked_fill(self_in_column, float("-inf"))  # u counted once, in its row
            attn = self.gate(torch.cat([column, row], dim=-1))
        a_col, a_row = attn.to(v.dtype).split([h, attn.shape[-1] - h], dim=-1)
        return torch.einsum("nijw,ncwj->ncij", a_col, v) + torch.einsum("nijw,nciw->ncij", a_row, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        for _ in range(self.recurrence):
            x = x + self.gamma * self.criss_cross(x)
        return x

"""GCNet global context block."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.constraints import Choice
from ._base import AttentionModule, hidden_width, rounded_width
from .activations import ActLayer, create_act
from .registry import register_attn


@register_attn("gc")
class GlobalContext(AttentionModule):
    """Global context block: softmax attention pooling, a LayerNorm bottleneck, added to every pixel.

    ``α = softmax_j(W_k x_j)`` over the H·W positions (``W_k: C → 1``), ``c = Σ_j α_j x_j``,
    ``t = W_2 ReLU(LN(W_1 c))`` (``W_1: C → h``, ``W_2: h → C``, 1×1 convs with bias, LayerNorm
    over the ``h`` channels), ``y = x + t`` broadcast over H×W. ``W_2`` starts at zero, so the
    block starts as the identity. ``h = max(min_hidden, C // reduction)``, or with ``round_to``
    ``C / reduction`` rounded to the nearest multiple of it (timm's ``rd_divisor``, 1 in its
    ``GlobalContext``: 13 at C = 100 where ``C // 8`` is 12).

    Args: channels ``C``; reduction (default 16, the paper's r); min_hidden (default 8);
    fuse: ``"add"`` (default, the paper's best: ``y = x + t``) or ``"scale"`` (``y = x ⊙ σ(t)``,
    the paper's other fusion and timm's default — with ``reduction=8, ln_eps=1e-6`` it is timm's
    ``GlobalContext`` at widths divisible by 8, and with ``round_to=1`` too at any width); ln_eps: the
    LayerNorm's ε (default 1e-5); act_layer (default ``"relu"``); round_to (default None).

    Reference: Cao, Xu, Lin, Wei, Hu. "GCNet: Non-local Networks Meet Squeeze-Excitation Networks
    and Beyond", ICCV Workshops 2019, arXiv:1904.11492 (Fig. 4(d)).
    """

    identity_at_init = True  # its residual branch starts at exactly zero (retrofit inserts it as is)

    option_rules = {"fuse": Choice(("add", "scale"))}

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 8, fuse: str = "add", ln_eps: float = 1e-5,
                 act_layer: ActLayer = "relu", round_to: int | None = None) -> None:
        super().__init__(channels)
        self.fuse = fuse
        self.identity_at_init = fuse == "add"
        hidden = hidden_width(channels, reduction, min_hidden) if round_to is None else rounded_width(channels, reduction, round_to)
        self.attn_logits = nn.Conv2d(channels, 1, 1)
        self.gate = nn.Softmax(dim=-1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.norm = nn.LayerNorm([hidden, 1, 1], eps=ln_eps)
        self.act = create_act(act_layer, "act_layer")
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        if fuse == "add":  # the block starts as the identity
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, c = x.shape[:2]
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.attn_logits(x).flatten(1)  # (N, HW)
            weights = self.gate(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits)
        context = torch.bmm(x.flatten(2), weights.to(x.dtype)[:, :, None]).view(n, c, 1, 1)
        t = self.fc2(self.act(self.norm(self.fc1(context))))
        return x + t if self.fuse == "add" else x * torch.sigmoid(t)


@register_attn("gca")
class GlobalContextScale(GlobalContext):
    """Global context with the paper's other fusion: the context gates each channel, ``y = x ⊙ σ(t)``.

    ``t`` as in :class:`GlobalContext` (softmax attention pooling, ``W_2 ReLU(LN(W_1 c))``), then
    ``y = x ⊙ σ(t)`` broadcast over H×W: an SE whose squeeze is attention pooling rather than
    a mean. Not identity at init (``W_2`` keeps its default init: σ(t) starts near 0.5).

    Args: as :class:`GlobalContext`, with defaults reduction 8, min_hidden 1, ln_eps 1e-6 and
    fuse ``"scale"``: 16,993 parameters at C = 256, the count of timm's ``GlobalContext``; its
    hidden width at any C with ``round_to=1`` (``C // 8`` here: 12 vs timm's 13 at C = 100).

    Reference: Cao et al., ICCV Workshops 2019, arXiv:1904.11492 (Table 4, "scaling" fusion).

    Names: timm's ``create_attn`` uses the opposite names — its ``"gc"`` is this scaling form and
    its ``"gca"`` the additive one. Here ``gc`` is the paper's best (additive) block and ``gca``
    the gating form; pass ``fuse="add"`` to either for the other.
    """

    def __init__(self, channels: int, reduction: float = 8, min_hidden: int = 1, fuse: str = "scale", ln_eps: float = 1e-6,
                 act_layer: ActLayer = "relu", round_to: int | None = None) -> None:
        super().__init__(channels, reduction=reduction, min_hidden=min_hidden, fuse=fuse, ln_eps=ln_eps, act_layer=act_layer,
                         round_to=round_to)

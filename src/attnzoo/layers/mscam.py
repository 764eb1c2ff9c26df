"""Multi-scale channel attention (MS-CAM) and attentional feature fusion (AFF, iAFF)."""

from __future__ import annotations

import torch
from torch import nn

from ._base import AttentionModule, FusionModule, hidden_width
from .registry import register_attn, register_fusion

_BRANCH_PAIRS = {
    "global_local": ("global", "local"),
    "global_global": ("global1", "global2"),
    "local_local": ("local1", "local2"),
}


class ContextBranch(nn.Module):
    """``BN(PW2(ReLU(BN(PW1(·)))))``, a pointwise bottleneck ``C → h → C``.

    With ``global_pool=True`` it runs on ``GAP(x)`` and returns ``(N, C, 1, 1)``; otherwise on
    every pixel, returning ``(N, C, H, W)``.
    """

    def __init__(self, channels: int, hidden: int, global_pool: bool) -> None:
        super().__init__()
        self.global_pool = global_pool
        self.pw1 = nn.Conv2d(channels, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act = nn.ReLU(inplace=True)
        self.pw2 = nn.Conv2d(hidden, channels, 1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool:
            x = x.mean((2, 3), keepdim=True)
        return self.bn2(self.pw2(self.act(self.bn1(self.pw1(x)))))

    def extra_repr(self) -> str:
        return f"global_pool={self.global_pool}"


@register_attn("mscam")
class MSCAM(AttentionModule):
    """MS-CAM: channel attention that mixes a global (pooled) and a local (per-pixel) context.

    ``L(x) = BN(PW2(ReLU(BN(PW1(x)))))`` at full resolution, ``G(x)`` the same layers on
    ``GAP(x)``, ``M(x) = σ(L(x) + G(x))`` of shape ``(N, C, H, W)``, ``y = x ⊙ M(x)``.
    ``PW`` are 1×1 convs with bias, ``h = max(min_hidden, C // reduction)``.

    Args:
        channels: ``C``. reduction: ``r`` (default 4, the paper's CIFAR setting; the official
            ImageNet blocks use 16). min_hidden: lower bound on ``h`` (default 8).
        branches: ``"global_local"`` (default, the paper's best), ``"global_global"`` (two
            pooled branches: no full-resolution path, ``M`` is constant over space) or
            ``"local_local"`` (two per-pixel branches), the paper's ablation pairs.

    Reference: Dai, Gieseke, Oehmcke, Wu, Barnard. "Attentional Feature Fusion", WACV 2021,
    arXiv:2009.14082 (Fig. 2, Table 2).
    """

    def __init__(self, channels: int, reduction: float = 4, min_hidden: int = 8, branches: str = "global_local") -> None:
        super().__init__(channels)
        if branches not in _BRANCH_PAIRS:
            raise ValueError(f"MSCAM: branches must be one of {sorted(_BRANCH_PAIRS)}, got {branches!r}")
        hidden = hidden_width(channels, reduction, min_hidden)
        self.branches_kind = branches
        self.branches = nn.ModuleDict(
            {name: ContextBranch(channels, hidden, global_pool=name.startswith("global")) for name in _BRANCH_PAIRS[branches]}
        )
        self.gate = nn.Sigmoid()

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights ``M(x)``: ``(N, C, H, W)``, or ``(N, C, 1, 1)`` for global_global."""
        self.check_input(x)
        logits = None
        for branch in self.branches.values():
            out = branch(x)
            logits = out if logits is None else logits + out
        return self.gate(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, branches={self.branches_kind!r}"


@register_fusion("add")
class AddFusion(FusionModule):
    """The baseline fusion, a plain sum with no parameters: ``z = x + y``."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_pair(x, y)
        return x + y


@register_fusion("aff")
class AFF(FusionModule):
    """Attentional feature fusion: a soft per-element choice between two inputs.

    ``M = MS-CAM(x + y)``, ``z = scale · (M ⊙ x + (1 − M) ⊙ y)``.

    Args:
        channels: ``C``. reduction, min_hidden, branches: of the MS-CAM (defaults 4, 8,
            ``"global_local"``).
        scale: output factor, default 1 (the paper's equation). The official MXNet and PyTorch
            code use 2, so that ``M = 0.5`` reproduces ``x + y``.

    Reference: Dai et al., "Attentional Feature Fusion", WACV 2021, arXiv:2009.14082, Eq. (4).
    """

    def __init__(
        self, channels: int, reduction: float = 4, min_hidden: int = 8, branches: str = "global_local", scale: float = 1.0
    ) -> None:
        super().__init__(channels)
        self.scale = scale
        self.attn = MSCAM(channels, reduction=reduction, min_hidden=min_hidden, branches=branches)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_pair(x, y)
        m = self.attn.weights(x + y)
        z = y + m * (x - y)  # = M ⊙ x + (1 − M) ⊙ y
        return z * self.scale if self.scale != 1.0 else z

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale={self.scale}"


@register_fusion("iaff")
class IAFF(FusionModule):
    """Iterative AFF: AFF whose attention input, the sum of x and y, is itself an AFF.

    ``xi = M1(x + y) ⊙ x + (1 − M1(x + y)) ⊙ y``, then
    ``z = scale · (M2(xi) ⊙ x + (1 − M2(xi)) ⊙ y)``, where ``M1`` and ``M2`` are two MS-CAMs,
    each with **its own** local and global branches.

    Args: as :class:`AFF`.

    Reference: Dai et al., WACV 2021, arXiv:2009.14082, Fig. 3(b), Eq. (5).

    Differences from common public copies: the widely copied PyTorch port calls the first
    global branch in the second pass, so ``global_att2`` is never used (open-aff issue #31);
    here ``M2`` is a complete second MS-CAM, as in the MXNet code behind the paper.
    """

    def __init__(
        self, channels: int, reduction: float = 4, min_hidden: int = 8, branches: str = "global_local", scale: float = 1.0
    ) -> None:
        super().__init__(channels)
        self.scale = scale
        self.attn1 = MSCAM(channels, reduction=reduction, min_hidden=min_hidden, branches=branches)
        self.attn2 = MSCAM(channels, reduction=reduction, min_hidden=min_hidden, branches=branches)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_pair(x, y)
        diff = x - y
        xi = y + self.attn1.weights(x + y) * diff
        z = y + self.attn2.weights(xi) * diff
        return z * self.scale if self.scale != 1.0 else z

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale={self.scale}"

"""Multi-scale channel attention (MS-CAM, Dai et al., WACV 2021); AFF and iAFF use it (:mod:`.aff`)."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.constraints import Choice
from ._base import AttentionModule, hidden_width
from .registry import register_attn

# Branch names are module names: "pooled" (global context) and "pixel" (local context). They were
# "global" and "local" before, and "global" is a Python keyword, which breaks torch.export's
# generated code; old checkpoints are renamed as they load (MSCAM._load_from_state_dict).
_BRANCH_PAIRS = {
    "global_local": ("pooled", "pixel"),
    "global_global": ("pooled1", "pooled2"),
    "local_local": ("pixel1", "pixel2"),
}
_OLD_NAMES = {"global": "pooled", "local": "pixel", "global1": "pooled1", "global2": "pooled2", "local1": "pixel1", "local2": "pixel2"}


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

    viz_kind = "full"

    option_rules = {"branches": Choice(tuple(sorted(_BRANCH_PAIRS)))}

    def __init__(self, channels: int, reduction: float = 4, min_hidden: int = 8, branches: str = "global_local") -> None:
        super().__init__(channels)
        hidden = hidden_width(channels, reduction, min_hidden)
        self.branches_kind = branches
        self.branches = nn.ModuleDict(
            {name: ContextBranch(channels, hidden, global_pool=name.startswith("pooled")) for name in _BRANCH_PAIRS[branches]}
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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in [k for k in state_dict if k.startswith(prefix + "branches.")]:
            old = key[len(prefix + "branches."):].split(".", 1)
            if old[0] in _OLD_NAMES:
                state_dict[f"{prefix}branches.{_OLD_NAMES[old[0]]}.{old[1]}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

"""Multi-scale channel attention (MS-CAM, Dai et al., WACV 2021); AFF and iAFF use it (:mod:`.aff`)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import ops
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
            x = ops.global_mean(x)[:, :, None, None]
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

    def logits(self, x: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """``L(x) + G(x)`` as its two parts: the per-pixel logits ``(N, C, H, W)`` and the pooled
        ones ``(N, C)``, each summed over its branches (None where no branch is of that kind)."""
        self.check_input(x)
        local, pooled = None, None
        for branch in self.branches.values():
            out = branch(x)
            if branch.global_pool:
                out = out.flatten(1)
                pooled = out if pooled is None else pooled + out
            else:
                local = out if local is None else local + out
        return local, pooled

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights ``M(x)``: ``(N, C, H, W)``, or ``(N, C, 1, 1)`` for global_global."""
        local, pooled = self.logits(x)
        if pooled is not None:
            pooled = pooled[:, :, None, None]
        return self.gate(pooled if local is None else local if pooled is None else local + pooled)

    def fuses_gate(self) -> bool:
        """Whether ``M`` may be applied inside :func:`attnzoo.ops.mix` (never stored): not while a
        hook watches the gate, which must then run as itself."""
        return not ops.observed(self.gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fuses_gate():
            return x * self.weights(x)
        return ops.mix(x, None, *self.logits(x))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, branches={self.branches_kind!r}"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in [k for k in state_dict if k.startswith(prefix + "branches.")]:
            old = key[len(prefix + "branches."):].split(".", 1)
            if old[0] in _OLD_NAMES:
                state_dict[f"{prefix}branches.{_OLD_NAMES[old[0]]}.{old[1]}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

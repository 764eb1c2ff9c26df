"""Attentional feature fusion (Dai et al., WACV 2021): AFF and iAFF, and the plain addition they
replace. Their weights come from MS-CAM (:mod:`.mscam`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import ops
from ._base import FusionModule
from .mscam import MSCAM
from .registry import register_fusion


@register_fusion("add")
class AddFusion(FusionModule):
    """The baseline fusion, a plain sum with no parameters: ``z = x + y``."""

    def fuse(self, x: torch.Tensor, y: torch.Tensor, relu: bool) -> torch.Tensor:
        self.check_pair(x, y)
        return ops.gate(x, identity=y, relu=relu) if relu else x + y


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

    option_rules = MSCAM.option_rules

    def __init__(
        self, channels: int, reduction: float = 4, min_hidden: int = 8, branches: str = "global_local", scale: float = 1.0
    ) -> None:
        super().__init__(channels)
        self.scale = scale
        self.attn = MSCAM(channels, reduction=reduction, min_hidden=min_hidden, branches=branches)

    def fuse(self, x: torch.Tensor, y: torch.Tensor, relu: bool) -> torch.Tensor:
        self.check_pair(x, y)
        if not self.attn.fuses_gate():
            return _blend(x, y, self.attn.weights(x + y), self.scale, relu)
        return ops.mix(x, y, *self.attn.logits(x + y), scale=self.scale, relu=relu)

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

    option_rules = MSCAM.option_rules

    def __init__(
        self, channels: int, reduction: float = 4, min_hidden: int = 8, branches: str = "global_local", scale: float = 1.0
    ) -> None:
        super().__init__(channels)
        self.scale = scale
        self.attn1 = MSCAM(channels, reduction=reduction, min_hidden=min_hidden, branches=branches)
        self.attn2 = MSCAM(channels, reduction=reduction, min_hidden=min_hidden, branches=branches)

    def fuse(self, x: torch.Tensor, y: torch.Tensor, relu: bool) -> torch.Tensor:
        self.check_pair(x, y)
        if not (self.attn1.fuses_gate() and self.attn2.fuses_gate()):
            xi = _blend(x, y, self.attn1.weights(x + y), 1.0, False)
            return _blend(x, y, self.attn2.weights(xi), self.scale, relu)
        xi = ops.mix(x, y, *self.attn1.logits(x + y))
        return ops.mix(x, y, *self.attn2.logits(xi), scale=self.scale, relu=relu)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale={self.scale}"


def _blend(x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, scale: float, relu: bool) -> torch.Tensor:
    """``scale · (M ⊙ x + (1 − M) ⊙ y)`` from a materialised ``M`` (when a hook watches it)."""
    z = y + m * (x - y)
    z = z * scale if scale != 1.0 else z
    return F.relu(z) if relu else z

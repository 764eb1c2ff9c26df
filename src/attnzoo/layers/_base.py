"""Shared plumbing for every attention and fusion module: argument and input checks."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..utils.constraints import Choice


def hidden_width(channels: int, reduction: float, min_hidden: int) -> int:
    """Width of a squeeze bottleneck: ``max(min_hidden, channels // reduction)``, never 0."""
    if reduction <= 0:
        raise ValueError(f"reduction must be positive, got {reduction}")
    if min_hidden < 1:
        raise ValueError(f"min_hidden must be at least 1, got {min_hidden}")
    return max(int(min_hidden), int(channels // reduction))


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, at least ``divisor``, and moved up one
    multiple where that fell below ``round_limit · value`` (timm's and torchvision's ``make_divisible``:
    ``round_limit`` 0.9 by default; 0 never moves up)."""
    if divisor < 1:
        raise ValueError(f"round_to must be at least 1, got {divisor}")
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


def rounded_width(channels: int, reduction: float, divisor: int, round_limit: float = 0.0) -> int:
    """``C / r`` rounded to the nearest multiple of ``divisor``, at least ``divisor`` (timm's
    ``make_divisible`` with ``round_limit=0`` unless given)."""
    if reduction <= 0:
        raise ValueError(f"reduction must be positive, got {reduction}")
    return make_divisible(channels / reduction, divisor, round_limit)


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1×1 ``conv`` applied to pooled features ``x`` of shape (N, C_in): (N, C_out)."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


def statistics_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype for sums of squares and products of ``x``: fp32 at least (in fp16 a sum of squares
    of values near 100 passes 65504), fp64 kept."""
    return torch.promote_types(x.dtype, torch.float32)


def check_channels(module: str, channels: int) -> int:
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise ValueError(f"{module}: channels must be a positive int, got {channels!r}")
    return channels


class AttentionModule(nn.Module):
    """Base of every attention module: ``y = m(x)`` with ``y.shape == x.shape``.

    Subclasses call ``self.check_input(x)`` first in ``forward`` so that a wrong
    input fails with a ``ValueError`` naming the module and both shapes rather than
    a bare shape error from a conv or matmul deep inside.
    """

    # Where its paper puts it (models/slots.py): "block", "stage" (between stages) or "head".
    placement: str = "block"
    # What `attnzoo viz` draws of its gate (viz/capture.py): "spatial" (an H×W map), "channel" (a
    # C-vector), "full" (C×H×W), "rows" (attention rows), "regions" (boxes); None: nothing.
    viz_kind: Optional[str] = None

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_channels(type(self).__name__, channels)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (N, {self.channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if x.numel() == 0:
            raise ValueError(f"{type(self).__name__}: got an empty input of shape {tuple(x.shape)}; expected at least one image of at least one pixel")

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


Gates = tuple[Optional[torch.Tensor], Optional[torch.Tensor]]  # (channel (N, C), spatial (N, 1, H, W)); None = 1


class GateModule(AttentionModule):
    """Base of the modules that only gate their input: ``y = x ⊙ a ⊙ b`` with a per-channel gate
    ``a`` (N, C) and / or a per-pixel gate ``b`` (N, 1, H, W), which :meth:`gates` computes.

    ``forward`` applies them with :func:`attnzoo.ops.gate`; in a residual block
    :meth:`forward_residual` also ends the block, ``relu(x ⊙ a ⊙ b + identity)``, in the same op.
    """

    def gates(self, x: torch.Tensor) -> Gates:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return ops.gate(x, *self.gates(x))

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``relu(self(x) + identity)``: one op, unless a hook watches this module or one of its
        parts (then the module runs as itself)."""
        if ops.observed(self, *self.children()):
            return F.relu(self(x) + identity)
        self.check_input(x)
        return ops.gate(x, *self.gates(x), identity=identity, relu=True)


class FusionModule(AttentionModule):
    """Base of every fusion module: ``z = m(x, y)`` with ``x``, ``y`` and ``z`` of one shape.

    Subclasses say their equation in :meth:`fuse`; in a residual block (``x`` the branch,
    ``y`` the identity) :meth:`forward_residual` gives ``ReLU(z)`` with the ReLU in the same op.
    """

    def fuse(self, x: torch.Tensor, y: torch.Tensor, relu: bool) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fuse(x, y, relu=False)

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``relu(self(x, identity))``: one op, unless a hook watches this module (then it runs as itself)."""
        if ops.observed(self) or type(self).fuse is FusionModule.fuse:  # a subclass that defines forward only
            return F.relu(self(x, identity))
        return self.fuse(x, identity, relu=True)

    def check_pair(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.check_input(x)
        if x.shape != y.shape:
            raise ValueError(
                f"{type(self).__name__}: inputs must have the same shape, "
                f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
            )


def group_norm(norm: nn.GroupNorm, z: torch.Tensor) -> torch.Tensor:
    """``norm(z)``, also when each group holds a single value (a 1×1 map with one channel per
    group), which ``F.group_norm`` refuses: the value minus its own mean is 0, so the result is
    the bias."""
    if z[0].numel() // norm.num_groups > 1:
        return norm(z)
    shape = (1, -1) + (1,) * (z.dim() - 2)
    return (z - z) * norm.weight.view(shape) + norm.bias.view(shape)


class ConvReplacement(AttentionModule):
    """Base of the 3×3-conv replacements (``conv=...``): input channels checked as for every module;
    the output may differ (``out_channels``, ``stride``)."""

    includes_norm = True  # the block drops its own BN + ReLU after the 3×3 conv

    def __init__(self, channels: int, out_channels: int | None, stride: int) -> None:
        super().__init__(channels)
        self.out_channels = out_channels or channels
        self.stride = stride


class AttentionConv(ConvReplacement):
    """Base of self-attention in place of a conv (BoTNet, HaloNet, lambda layers): stride 1 or 2 (then
    a 2×2 average pool after the attention), ``heads`` reduced to the largest count that divides
    ``out_channels`` (so small widths build); the block keeps its BN + ReLU after it."""

    includes_norm = False

    option_rules = {"stride": Choice((1, 2))}

    def __init__(self, channels: int, out_channels: int | None, stride: int, heads: int) -> None:
        super().__init__(channels, out_channels, stride)
        self.heads = divisible_groups(self.out_channels, self.out_channels, heads)
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()


def divisible_groups(channels: int, out_channels: int, groups: int) -> int:
    """The largest group count ≤ ``groups`` dividing both widths (so small test widths still build)."""
    return max(g for g in range(1, groups + 1) if channels % g == 0 and out_channels % g == 0)

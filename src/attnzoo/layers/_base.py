"""Shared plumbing for every attention and fusion module: argument and input checks."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def hidden_width(channels: int, reduction: float, min_hidden: int) -> int:
    """Width of a squeeze bottleneck: ``max(min_hidden, channels // reduction)``, never 0."""
    if reduction <= 0:
        raise ValueError(f"reduction must be positive, got {reduction}")
    if min_hidden < 1:
        raise ValueError(f"min_hidden must be at least 1, got {min_hidden}")
    return max(int(min_hidden), int(channels // reduction))


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1×1 ``conv`` applied to pooled features ``x`` of shape (N, C_in): (N, C_out)."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


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

    def gate_factors(self, x: torch.Tensor) -> Optional[tuple[Optional[torch.Tensor], Optional[torch.Tensor]]]:
        """For a module that only gates its input: ``(a, b)`` with
        ``self(x) == x ⊙ a.view(N, C, 1, 1) ⊙ b.view(N, 1, H, W)``, a channel gate ``a`` (N, C) and a
        spatial gate ``b`` (N, H·W), either of them None (= 1). None (the default) for every other
        module. With the fused kernels a residual block applies the factors, adds the identity and
        takes the ReLU in one pass (:func:`attnzoo.layers.fused.gated_residual`).
        """
        return None

    def gated_sum(self, x: torch.Tensor, identity: torch.Tensor) -> Optional[torch.Tensor]:
        """``self(x) + identity`` for a module that only gates its input, with the gate applied and
        the identity added in one ``addcmul`` pass (a residual block's end); None for other modules.
        Skips ``forward``: the caller makes sure no hook watches it."""
        factors = self.gate_factors(x)
        if factors is None:
            return None
        n, c, h, w = x.shape
        channel_gate, spatial_gate = factors
        if channel_gate is not None and spatial_gate is not None:
            x, channel_gate = x * channel_gate.view(n, c, 1, 1), None
        gate = channel_gate.view(n, c, 1, 1) if channel_gate is not None else spatial_gate.view(n, 1, h, w)
        return torch.addcmul(identity, x, gate)

    def fused_apply(
        self, kernels, x: torch.Tensor, identity: Optional[torch.Tensor] = None, relu: bool = False
    ) -> Optional[torch.Tensor]:
        """``self(x)`` (``relu(self(x) + identity)`` if given) through the fused CPU kernels
        (:mod:`attnzoo.layers.fused`), or None where they do not apply. By default the gates come
        from :meth:`gate_factors` and one kernel pass applies them; CBAM overrides this with a kernel
        that computes its gates as well.
        """
        factors = self.gate_factors(x)
        return None if factors is None else kernels.scale(x, *factors, identity, relu)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class FusionModule(AttentionModule):
    """Base of every fusion module: ``z = m(x, y)`` with ``x``, ``y`` and ``z`` of one shape."""

    def check_pair(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.check_input(x)
        if x.shape != y.shape:
            raise ValueError(
                f"{type(self).__name__}: inputs must have the same shape, "
                f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
            )

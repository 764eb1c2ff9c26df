"""The reference implementations: each op as its equation in plain PyTorch, differentiated by autograd.

These define what every kernel must compute. They run where ``attnzoo.ops.use("reference")`` asks
for them, and wherever a graph is captured for deployment (``torch.export``, ONNX, ``torch.jit``
and FX tracing), so an exported model holds only standard operators.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def gate(x: Tensor, channel: Optional[Tensor] = None, spatial: Optional[Tensor] = None,
         identity: Optional[Tensor] = None, relu: bool = False) -> Tensor:
    """``y = x ⊙ channel ⊙ spatial (+ identity)``, then ``relu`` if asked: channel (N, C), spatial (N, 1, H, W)."""
    y = x
    if channel is not None:
        y = y * channel[:, :, None, None]
    if spatial is not None:
        y = y * spatial
    if identity is not None:
        y = y + identity
    return F.relu(y) if relu else y


def global_mean(x: Tensor) -> Tensor:
    """``mean_{H,W}(x)`` as (N, C): the sum over H×W, accumulated in fp32 at least (a channel's fp16
    sum passes 65504 at a constant 25 over 56×56), divided by H·W. (As a sum, its backward is a
    broadcast view of the (N, C) gradient, not a full-size division as ``Tensor.mean``'s.)"""
    total = x.sum((2, 3), dtype=torch.promote_types(x.dtype, torch.float32))
    return (total / (x.shape[2] * x.shape[3])).to(x.dtype)


def global_pools(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean_{H,W}(x), max_{H,W}(x))``, each (N, C); tied maxima share the max's gradient (``amax``)."""
    return global_mean(x), x.amax((2, 3))


def channel_pools(x: Tensor, scale: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(mean_C(x'), max_C(x'))`` of ``x' = x ⊙ scale`` (scale (N, C), or none), each (N, 1, H, W).

    The max is ``Tensor.max(1)``: NaN propagates, and a tied maximum sends its whole gradient to the
    first channel holding it (as max pooling does; ``amax`` would split it).
    """
    scaled = x if scale is None else x * scale[:, :, None, None]
    return scaled.mean(1, keepdim=True), scaled.max(1, keepdim=True).values


def rank1_gate(x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, identity: Optional[Tensor] = None,
               relu: bool = False) -> Tensor:
    """``y = x ⊙ σ(ReLU(scale ⊗ spatial + shift)) (+ identity)``, then ``relu`` if asked: spatial
    (N, 1, H, W), scale and shift (N, C) — HA-CNN's soft attention, whose gate is a ConvBlock of
    a rank-1 map (its conv and BN fold into a scale and a shift per image and channel)."""
    attention = torch.sigmoid(torch.relu(torch.addcmul(shift[:, :, None, None], scale[:, :, None, None], spatial)))
    return gate(x * attention, identity=identity, relu=relu)


def mix(x: Tensor, y: Optional[Tensor], local: Optional[Tensor], pooled: Optional[Tensor], scale: float = 1.0,
        relu: bool = False) -> Tensor:
    """``z = scale · (y + M ⊙ (x − y))`` (= ``M ⊙ x + (1 − M) ⊙ y``), or ``scale · x ⊙ M`` without
    ``y``, with ``M = σ(local + pooled)``: local (N, C, H, W), pooled (N, C), either may be absent;
    then ``relu`` if asked — MS-CAM's gate and attentional feature fusion (``attnzoo.ops.mix``
    checks that one of the logits is given)."""
    if pooled is not None:
        pooled = pooled[:, :, None, None]
    weights = torch.sigmoid(pooled if local is None else local if pooled is None else local + pooled)
    z = x * weights if y is None else y + weights * (x - y)
    if scale != 1.0:
        z = z * scale
    return F.relu(z) if relu else z

"""The ops' kernels in PyTorch operators, for every device (CPU, and CUDA without Triton).

Forward and backward follow autograd's own steps for the reference equations — the same products in
the same order, so in float64 they give the reference's values bit for bit, except CBAM's two-gate
backward and the channel pools' backward with a scale, which sum in another order (equal to within
rounding). The backward works from the input and the small gates alone: no intermediate full-size
tensor is kept between forward and backward (CBAM keeps one copy of its input, not three).
"""

from __future__ import annotations

from typing import Optional

import torch

Tensor = torch.Tensor


def result_dtype(*tensors: Optional[Tensor]) -> torch.dtype:
    """The dtype PyTorch's type promotion gives ``x * a * b + identity`` (None entries ignored)."""
    dtype = None
    for t in tensors:
        if t is not None:
            dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    return dtype


def _nchw(v: Tensor) -> Tensor:
    return v[:, :, None, None]


def gate(x: Tensor, channel: Optional[Tensor], spatial: Optional[Tensor], identity: Optional[Tensor], relu: bool) -> Tensor:
    out = torch.empty_like(x, dtype=result_dtype(x, channel, spatial, identity))
    if channel is not None:
        torch.mul(x, _nchw(channel), out=out)
        if spatial is not None:
            out.mul_(spatial)
    elif spatial is not None:
        torch.mul(x, spatial, out=out)
    elif identity is not None:  # a plain block end: x + identity in one pass
        torch.add(x, identity, out=out)
    else:
        out.copy_(x)
    if identity is not None and (channel is not None or spatial is not None):
        out.add_(identity)
    return out.relu_() if relu else out


def gate_backward(grad: Tensor, x: Optional[Tensor], channel: Optional[Tensor], spatial: Optional[Tensor], y: Optional[Tensor],
                  identity_dtype: Optional[torch.dtype]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(grad_x, grad_channel, grad_spatial, grad_identity); an empty tensor for an absent input.
    ``y`` is the forward's output when it ended in the ReLU (its mask), else None; ``x`` may be
    None when there is no gate (nothing then reads it). grad_x comes in grad's dtype where x is None."""
    empty = grad.new_empty(0)
    pre = grad if y is None else torch.ops.aten.threshold_backward(grad, y, 0)  # ReLU's backward, as autograd's
    grad_identity = pre.to(identity_dtype) if identity_dtype is not None else empty
    if channel is not None and spatial is not None:
        grad_x, grad_channel, grad_spatial = _both_gates_backward(pre, x, channel, spatial)
        return grad_x, grad_channel, grad_spatial, grad_identity
    grad_scaled = pre if spatial is None else pre * spatial  # d/d(x ⊙ channel)
    grad_spatial = (pre * x).sum(1, keepdim=True).to(spatial.dtype) if spatial is not None else empty
    grad_channel = empty
    if channel is not None:
        grad_channel = (grad_scaled * x).sum((2, 3)).to(channel.dtype)
        grad_x = grad_scaled * _nchw(channel)
    else:
        grad_x = grad_scaled
    return (grad_x if x is None else grad_x.to(x.dtype)), grad_channel, grad_spatial, grad_identity


def _both_gates_backward(pre: Tensor, x: Tensor, channel: Tensor, spatial: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """CBAM's ``x ⊙ a ⊙ b``: ``g ⊙ x`` once, contracted with ``a`` over channels for ``b``'s gradient
    (a matrix-vector product per image) and, scaled by ``b`` in place, summed over pixels for
    ``a``'s: four full-size writes where autograd's own graph makes six."""
    n, c, h, w = x.shape
    gx = pre * x
    if gx.is_contiguous():
        grad_spatial = torch.bmm(channel[:, None, :].to(gx.dtype), gx.view(n, c, h * w)).view(n, 1, h, w)
    else:
        grad_spatial = (gx * _nchw(channel)).sum(1, keepdim=True)
    # In place unless a double backward is being recorded (the contraction above keeps gx for it).
    grad_channel = (gx * spatial if torch.is_grad_enabled() else gx.mul_(spatial)).sum((2, 3))
    grad_x = (pre * spatial).mul_(_nchw(channel))
    return grad_x.to(x.dtype), grad_channel.to(channel.dtype), grad_spatial.to(spatial.dtype)


def global_pools(x: Tensor, with_max: bool) -> tuple[Tensor, Tensor]:
    mean = x.mean((2, 3))
    return mean, (x.amax((2, 3)) if with_max else mean.new_empty(0))


def global_pools_backward(grad_mean: Optional[Tensor], grad_max: Optional[Tensor], x: Tensor, maximum: Tensor) -> Tensor:
    """The mean's gradient as a broadcast view (no full-size write when it is alone); the max's
    shared equally by tied maxima, as ``amax``'s backward does (NaN where the max is NaN)."""
    n, c, h, w = x.shape
    grad = None
    if grad_max is not None:
        mask = x == _nchw(maximum)
        grad = (_nchw(grad_max) / mask.sum((2, 3), keepdim=True)) * mask
    if grad_mean is not None:
        spread = _nchw(grad_mean / (h * w)).expand(n, c, h, w)
        grad = spread if grad is None else grad + spread
    if grad is None:
        return torch.zeros_like(x)
    return grad.to(x.dtype)


def channel_pools(x: Tensor, scale: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(mean_C, max_C, argmax channel as int32), each (N, 1, H, W), of ``x ⊙ scale``."""
    scaled = x if scale is None else x * _nchw(scale)
    maximum, index = scaled.max(1, keepdim=True)
    mean = scaled.mean(1, keepdim=True)
    # The outputs' layout is fixed (contiguous), whatever the input's, as the fake kernel says.
    return mean.contiguous(), maximum.contiguous(), index.to(torch.int32).contiguous()


def channel_pools_backward(grad_mean: Optional[Tensor], grad_max: Optional[Tensor], x: Tensor, scale: Optional[Tensor],
                           index: Tensor) -> tuple[Tensor, Tensor]:
    """(grad_x, grad_scale): the mean's gradient spread over C, the max's to its argmax channel —
    ``∂/∂x = s ⊙ (g_mean / C + [c = argmax] g_max)`` and ``∂/∂s_c = Σ_p x (g_mean / C + [c = argmax] g_max)``,
    written as one full-size product each plus scatters of N·H·W values (no full-size temporary)."""
    n, c, h, w = x.shape
    dtype = result_dtype(x, scale)
    spread = (grad_mean / c).to(dtype) if grad_mean is not None else x.new_zeros((n, 1, h, w), dtype=dtype)
    top = grad_max.to(dtype) if grad_max is not None else None
    index = index.long()
    if scale is None:
        grad_x = spread.expand(n, c, h, w).contiguous(memory_format=_format(x))
        if top is not None:
            grad_x.scatter_add_(1, index, top)
        return grad_x.to(x.dtype), x.new_empty(0)
    scale4 = _nchw(scale.to(dtype))
    grad_x = spread * scale4
    grad_scale = (x * spread).sum((2, 3))
    if top is not None:
        grad_x.scatter_add_(1, index, top * scale.to(dtype).gather(1, index.view(n, -1)).view_as(top))
        grad_scale.scatter_add_(1, index.view(n, -1), (top * x.gather(1, index).to(dtype)).view(n, -1))
    return grad_x.to(x.dtype), grad_scale.to(scale.dtype)


def _format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format


# --- HA soft attention's gate and MS-CAM's: the gate is recomputed in backward, never stored -------

def _sigmoid_backward(grad: Tensor, weights: Tensor) -> Tensor:
    """σ's backward from its output, in autograd's order: ``grad ⊙ (1 − σ) ⊙ σ``."""
    return grad * (1 - weights) * weights


def rank1_gate(x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, identity: Optional[Tensor], relu: bool) -> Tensor:
    out = torch.empty_like(x, dtype=result_dtype(x, spatial, scale, shift, identity))
    pre = torch.addcmul(_nchw(shift), _nchw(scale), spatial)
    torch.mul(x, pre.relu_().sigmoid_(), out=out)
    if identity is not None:
        out.add_(identity)
    return out.relu_() if relu else out


def rank1_gate_backward(grad: Tensor, x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, y: Optional[Tensor],
                        identity_dtype: Optional[torch.dtype]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(grad_x, grad_spatial, grad_scale, grad_shift, grad_identity) from ``x`` and the small inputs:
    ``A = σ(ReLU(t))``, ``t = scale ⊗ spatial + shift``, recomputed; ``∂/∂x = g ⊙ A``,
    ``d = [t > 0] (g ⊙ x)(1 − A) A``, ``∂/∂shift = Σ_p d``, ``∂/∂scale = Σ_p d ⊙ spatial``,
    ``∂/∂spatial = Σ_c d ⊙ scale``."""
    pre = grad if y is None else torch.ops.aten.threshold_backward(grad, y, 0)
    grad_identity = pre.to(identity_dtype) if identity_dtype is not None else grad.new_empty(0)
    logits = torch.addcmul(_nchw(shift), _nchw(scale), spatial)
    weights = torch.sigmoid(torch.relu(logits))
    grad_x = (pre * weights).to(x.dtype)
    d = torch.where(logits > 0, _sigmoid_backward(pre * x, weights), 0)
    return (grad_x, (d * _nchw(scale)).sum(1, keepdim=True).to(spatial.dtype), (d * spatial).sum((2, 3)).to(scale.dtype),
            d.sum((2, 3)).to(shift.dtype), grad_identity)


def mix_logits(local: Optional[Tensor], pooled: Optional[Tensor]) -> Tensor:
    """``local + pooled`` broadcast over pixels, either absent."""
    if local is None:
        return _nchw(pooled)
    return local if pooled is None else local + _nchw(pooled)


def mix(x: Tensor, y: Optional[Tensor], local: Optional[Tensor], pooled: Optional[Tensor], scale: float, relu: bool) -> Tensor:
    out = torch.empty_like(x, dtype=result_dtype(x, y, local, pooled))
    weights = torch.sigmoid(mix_logits(local, pooled))
    if y is None:
        torch.mul(x, weights, out=out)
    else:
        torch.sub(x, y, out=out).mul_(weights).add_(y)
    if scale != 1.0:
        out.mul_(scale)
    return out.relu_() if relu else out


def mix_backward(grad: Tensor, x: Tensor, y: Optional[Tensor], local: Optional[Tensor], pooled: Optional[Tensor],
                 z: Optional[Tensor], scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(grad_x, grad_y, grad_local, grad_pooled) from the inputs (``M`` recomputed); ``z`` is the
    output where the op ended in a ReLU. With ``g' = scale · g``: ``∂/∂x = g' ⊙ M``,
    ``∂/∂y = g' − g' ⊙ M``, ``∂/∂local = (g' ⊙ (x − y))(1 − M) M``, ``∂/∂pooled = Σ_p ∂/∂local``."""
    pre = grad if z is None else torch.ops.aten.threshold_backward(grad, z, 0)
    if scale != 1.0:
        pre = pre * scale
    weights = torch.sigmoid(mix_logits(local, pooled))
    grad_x = pre * weights
    grad_y = grad.new_empty(0) if y is None else (pre - grad_x).to(y.dtype)
    grad_logits = _sigmoid_backward(pre * (x if y is None else x - y), weights)
    grad_local = grad_logits.to(local.dtype) if local is not None else grad.new_empty(0)
    grad_pooled = grad_logits.sum((2, 3)).to(pooled.dtype) if pooled is not None else grad.new_empty(0)
    return grad_x.to(x.dtype), grad_y, grad_local, grad_pooled

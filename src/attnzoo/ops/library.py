"""The custom ops, registered with ``torch.library``: schema, fake (meta) kernel, autograd formula,
a default kernel in PyTorch operators (:mod:`.aten_kernels`) and a CUDA kernel in Triton
(:mod:`.triton_kernels`, used where Triton imports; the PyTorch kernel otherwise).

Being custom ops, they trace under ``torch.compile(fullgraph=True)`` (the fake kernels give shapes,
dtypes and layouts), differentiate through their registered backward (which works from the input
and the small gates only), and keep their dtype rules under autocast: they compute in the dtypes
they are given, as the reference equations would.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Optional

import torch
from torch.library import custom_op

from . import aten_kernels as aten

Tensor = torch.Tensor


@functools.cache
def triton_kernels() -> Optional[ModuleType]:
    """:mod:`.triton_kernels`, or None where Triton does not import (then CUDA runs the PyTorch kernels)."""
    try:
        from . import triton_kernels as module
    except ImportError:
        return None
    return module


def triton_for(x: Tensor) -> Optional[ModuleType]:
    """The Triton kernels where they take ``x`` (a CUDA tensor of a supported dtype, Triton importable), else None."""
    kernels = triton_kernels() if x.device.type == "cuda" else None
    return kernels if kernels is not None and kernels.supports(x) else None




def _register_cuda(op, name: str) -> None:
    """``op``'s CUDA kernel: the Triton kernel ``name`` where it takes the input, the PyTorch one otherwise."""
    def kernel(x, *args, **kwargs):
        kernels = triton_for(x)
        return getattr(aten if kernels is None else kernels, name)(x, *args, **kwargs)
    op.register_kernel("cuda")(kernel)


def _require_triton(x: Tensor) -> ModuleType:
    kernels = triton_for(x)
    if kernels is None:
        raise RuntimeError(f"attnzoo: this backward op runs on CUDA with Triton only, got a {x.device.type} tensor")
    return kernels


# --- gate: y = relu?(x ⊙ channel ⊙ spatial + identity) ------------------------------------------

@custom_op("attnzoo::gate", mutates_args=())
def gate(x: Tensor, channel: Optional[Tensor], spatial: Optional[Tensor], identity: Optional[Tensor], relu: bool) -> Tensor:
    return aten.gate(x, channel, spatial, identity, relu)


@gate.register_fake
def _gate_fake(x, channel, spatial, identity, relu):
    return torch.empty_like(x, dtype=aten.result_dtype(x, channel, spatial, identity))


@custom_op("attnzoo::gate_backward", mutates_args=())
def gate_backward_op(grad: Tensor, x: Tensor, channel: Optional[Tensor], spatial: Optional[Tensor], y: Optional[Tensor],
                     with_identity: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The Triton backward as an opaque op (CUDA only: elsewhere the backward runs as PyTorch operators)."""
    return _require_triton(x).gate_backward(grad, x, channel, spatial, y, with_identity)


@gate_backward_op.register_fake
def _gate_backward_fake(grad, x, channel, spatial, y, with_identity):
    def like(t: Optional[Tensor]) -> Tensor:
        return grad.new_empty(0) if t is None else torch.empty_like(t)
    return torch.empty_like(x), like(channel), like(spatial), (torch.empty_like(grad) if with_identity else grad.new_empty(0))


def _gate_setup(ctx, inputs, output) -> None:
    x, channel, spatial, identity, relu = inputs
    ctx.identity_dtype = None if identity is None else identity.dtype
    ctx.x_dtype = x.dtype
    gated = channel is not None or spatial is not None  # only the gates' gradients read x
    ctx.save_for_backward(x if gated else None, channel, spatial, output if relu else None)


def _gate_backward(ctx, grad):
    x, channel, spatial, y = ctx.saved_tensors
    if triton_for(grad) is not None:
        grads = torch.ops.attnzoo.gate_backward(grad, grad if x is None else x, channel, spatial, y, ctx.identity_dtype is not None)
        grad_identity = grads[3].to(ctx.identity_dtype) if ctx.identity_dtype is not None else None
        grads = grads[:3] + (grad_identity,)
    else:
        grads = aten.gate_backward(grad, x, channel, spatial, y, ctx.identity_dtype)
    grad_x, grad_channel, grad_spatial, grad_identity = grads
    return (grad_x.to(ctx.x_dtype), grad_channel if channel is not None else None, grad_spatial if spatial is not None else None,
            grad_identity if ctx.identity_dtype is not None else None, None)


gate.register_autograd(_gate_backward, setup_context=_gate_setup)
_register_cuda(gate, "gate")


# --- global pools: mean_{H,W}(x) and max_{H,W}(x) --------------------------------------------------

@custom_op("attnzoo::global_pools", mutates_args=())
def global_pools(x: Tensor, with_max: bool) -> tuple[Tensor, Tensor]:
    return aten.global_pools(x, with_max)


@global_pools.register_fake
def _global_pools_fake(x, with_max):
    n, c = x.shape[:2]
    return x.new_empty((n, c)), (x.new_empty((n, c)) if with_max else x.new_empty(0))


def _global_pools_setup(ctx, inputs, output) -> None:
    x, with_max = inputs
    ctx.with_max = with_max
    # The mean's backward needs only the shape: keep x only when the max is asked for.
    ctx.save_for_backward(x if with_max else None, output[1] if with_max else None)
    ctx.shape, ctx.dtype = x.shape, x.dtype


def _global_pools_backward(ctx, grad_mean, grad_max):
    x, maximum = ctx.saved_tensors
    if not ctx.with_max:
        n, c, h, w = ctx.shape
        spread = (grad_mean / (h * w)).to(ctx.dtype)[:, :, None, None].expand(n, c, h, w)
        return spread, None
    if triton_for(x) is not None:
        return torch.ops.attnzoo.global_pools_backward(grad_mean, grad_max, x, maximum), None
    return aten.global_pools_backward(grad_mean, grad_max, x, maximum), None


@custom_op("attnzoo::global_pools_backward", mutates_args=())
def global_pools_backward_op(grad_mean: Optional[Tensor], grad_max: Optional[Tensor], x: Tensor, maximum: Tensor) -> Tensor:
    """The Triton backward of the pools with the max as an opaque op (CUDA only)."""
    return _require_triton(x).global_pools_backward(grad_mean, grad_max, x, maximum)


@global_pools_backward_op.register_fake
def _global_pools_backward_fake(grad_mean, grad_max, x, maximum):
    return torch.empty_like(x)


global_pools.register_autograd(_global_pools_backward, setup_context=_global_pools_setup)
_register_cuda(global_pools, "global_pools")


# --- channel pools: mean_C(x ⊙ s) and max_C(x ⊙ s) -------------------------------------------------

@custom_op("attnzoo::channel_pools", mutates_args=())
def channel_pools(x: Tensor, scale: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    return aten.channel_pools(x, scale)


@channel_pools.register_fake
def _channel_pools_fake(x, scale):
    n, _, h, w = x.shape
    dtype = aten.result_dtype(x, scale)
    return (x.new_empty((n, 1, h, w), dtype=dtype), x.new_empty((n, 1, h, w), dtype=dtype),
            x.new_empty((n, 1, h, w), dtype=torch.int32))


def _channel_pools_setup(ctx, inputs, output) -> None:
    x, scale = inputs
    ctx.mark_non_differentiable(output[2])
    ctx.save_for_backward(x, scale, output[2])


def _channel_pools_backward(ctx, grad_mean, grad_max, _grad_index):
    x, scale, index = ctx.saved_tensors
    backward = aten.channel_pools_backward if triton_for(x) is None else torch.ops.attnzoo.channel_pools_backward
    grad_x, grad_scale = backward(grad_mean, grad_max, x, scale, index)
    return grad_x, (grad_scale if scale is not None else None)


@custom_op("attnzoo::channel_pools_backward", mutates_args=())
def channel_pools_backward_op(grad_mean: Optional[Tensor], grad_max: Optional[Tensor], x: Tensor, scale: Optional[Tensor],
                              index: Tensor) -> tuple[Tensor, Tensor]:
    """The Triton backward of the channel pools as an opaque op (CUDA only)."""
    return _require_triton(x).channel_pools_backward(grad_mean, grad_max, x, scale, index)


@channel_pools_backward_op.register_fake
def _channel_pools_backward_fake(grad_mean, grad_max, x, scale, index):
    return torch.empty_like(x), (x.new_empty(0) if scale is None else torch.empty_like(scale))


channel_pools.register_autograd(_channel_pools_backward, setup_context=_channel_pools_setup)
_register_cuda(channel_pools, "channel_pools")


# --- rank-1 gate: y = relu?(x ⊙ σ(ReLU(scale ⊗ spatial + shift)) + identity) (HA soft attention) ---

@custom_op("attnzoo::rank1_gate", mutates_args=())
def rank1_gate(x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, identity: Optional[Tensor], relu: bool) -> Tensor:
    return aten.rank1_gate(x, spatial, scale, shift, identity, relu)


@rank1_gate.register_fake
def _rank1_gate_fake(x, spatial, scale, shift, identity, relu):
    return torch.empty_like(x, dtype=aten.result_dtype(x, spatial, scale, shift, identity))


def _rank1_gate_setup(ctx, inputs, output) -> None:
    x, spatial, scale, shift, identity, relu = inputs
    ctx.identity_dtype = None if identity is None else identity.dtype
    ctx.save_for_backward(x, spatial, scale, shift, output if relu else None)  # the gate is recomputed, never kept


def _rank1_gate_backward(ctx, grad):
    x, spatial, scale, shift, y = ctx.saved_tensors
    if triton_for(grad) is not None:
        grads = list(torch.ops.attnzoo.rank1_gate_backward(grad, x, spatial, scale, shift, y, ctx.identity_dtype is not None))
        grads[4] = grads[4].to(ctx.identity_dtype) if ctx.identity_dtype is not None else None
    else:
        grads = list(aten.rank1_gate_backward(grad, x, spatial, scale, shift, y, ctx.identity_dtype))
        grads[4] = grads[4] if ctx.identity_dtype is not None else None
    return (*grads, None)


@custom_op("attnzoo::rank1_gate_backward", mutates_args=())
def rank1_gate_backward_op(grad: Tensor, x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, y: Optional[Tensor],
                           with_identity: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The Triton backward of the rank-1 gate as an opaque op (CUDA only)."""
    return _require_triton(x).rank1_gate_backward(grad, x, spatial, scale, shift, y, with_identity)


@rank1_gate_backward_op.register_fake
def _rank1_gate_backward_fake(grad, x, spatial, scale, shift, y, with_identity):
    return (torch.empty_like(x), torch.empty_like(spatial), torch.empty_like(scale), torch.empty_like(shift),
            torch.empty_like(grad) if with_identity else grad.new_empty(0))


rank1_gate.register_autograd(_rank1_gate_backward, setup_context=_rank1_gate_setup)
_register_cuda(rank1_gate, "rank1_gate")


# --- mix: z = relu?(scale · (y + σ(local + pooled) ⊙ (x − y))) (MS-CAM, AFF, iAFF) ----------------

@custom_op("attnzoo::mix", mutates_args=())
def mix(x: Tensor, y: Optional[Tensor], local: Optional[Tensor], pooled: Optional[Tensor], scale: float, relu: bool) -> Tensor:
    return aten.mix(x, y, local, pooled, scale, relu)


@mix.register_fake
def _mix_fake(x, y, local, pooled, scale, relu):
    return torch.empty_like(x, dtype=aten.result_dtype(x, y, local, pooled))


def _mix_setup(ctx, inputs, output) -> None:
    x, y, local, pooled, scale, relu = inputs
    ctx.scale = scale
    ctx.save_for_backward(x, y, local, pooled, output if relu else None)  # M is recomputed, never kept


def _mix_backward(ctx, grad):
    x, y, local, pooled, z = ctx.saved_tensors
    if triton_for(grad) is not None:
        grads = torch.ops.attnzoo.mix_backward(grad, x, y, local, pooled, z, ctx.scale)
    else:
        grads = aten.mix_backward(grad, x, y, local, pooled, z, ctx.scale)
    grad_x, grad_y, grad_local, grad_pooled = grads
    return (grad_x, grad_y if y is not None else None, grad_local if local is not None else None,
            grad_pooled if pooled is not None else None, None, None)


@custom_op("attnzoo::mix_backward", mutates_args=())
def mix_backward_op(grad: Tensor, x: Tensor, y: Optional[Tensor], local: Optional[Tensor], pooled: Optional[Tensor],
                    z: Optional[Tensor], scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The Triton backward of the mix as an opaque op (CUDA only)."""
    return _require_triton(x).mix_backward(grad, x, y, local, pooled, z, scale)


@mix_backward_op.register_fake
def _mix_backward_fake(grad, x, y, local, pooled, z, scale):
    def like(t: Optional[Tensor]) -> Tensor:
        return grad.new_empty(0) if t is None else torch.empty_like(t)
    return torch.empty_like(x), like(y), like(local), like(pooled)


mix.register_autograd(_mix_backward, setup_context=_mix_setup)
_register_cuda(mix, "mix")

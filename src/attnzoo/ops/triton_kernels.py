"""The ops' CUDA kernels, in Triton: forward and backward, fp32/fp16/bf16 (fp64 too), NCHW and
channels-last, any H×W. Every kernel addresses its tensors through (batch, channel, pixel) strides,
so both layouts run without a copy; sums accumulate in fp32 (fp64 for fp64 data).

Passes over the feature map (each kernel reads what it needs once):

- ``gate``: one read of ``x`` (and ``identity``), one write of ``y``.
- ``gate_backward``: one read of ``grad``, ``x`` (and ``y`` for the ReLU mask); one write of
  ``grad_x`` (and ``grad_identity``); the per-channel and per-pixel gate gradients are reduced in
  the same pass into small per-tile partial sums (summed afterwards: deterministic, no atomics).
- ``global_pools``: one read (mean and max together); its backward with the max reads ``x`` twice
  (the tie count, then the gradient) and writes once.
- ``channel_pools``: one read of ``x`` (mean, max and the first argmax channel); its backward one
  read of ``x``, one write of ``grad_x``, with the scale's gradient reduced on the way.
- ``rank1_gate`` (HA soft attention): one read of ``x`` (and ``identity``), one write; its backward
  one read of ``grad`` and ``x`` (and ``y``), writes of ``grad_x`` (and ``grad_identity``), the gate
  recomputed from the small inputs and the three small gradients reduced in the same pass.
- ``mix`` (MS-CAM, AFF): one read of ``x``, ``y`` and the full-size logits, one write; its backward
  one read of each of those and ``grad``, writes of ``grad_x``, ``grad_y`` and ``grad_local``, with
  the pooled logits' gradient reduced on the way.

Tested on CPU through Triton's interpreter (``TRITON_INTERPRET=1``) against the reference ops;
written for the Triton that ships with CUDA torch (3.x).
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

Tensor = torch.Tensor
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def supports(x: Tensor) -> bool:
    """Whether these kernels take ``x``: a 4-D floating tensor of a supported dtype (on CUDA, or on
    any device under ``TRITON_INTERPRET=1``)."""
    return x.dim() == 4 and x.dtype in DTYPES and (x.device.type == "cuda" or triton.knobs.runtime.interpret)


def _strides(t: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
    """``t`` (made contiguous only if its H and W cannot be walked as one pixel axis) and its
    (batch, channel, pixel) strides."""
    n, c, h, w = t.shape
    if h > 1 and w > 1 and t.stride(2) != w * t.stride(3):
        t = t.contiguous()
    pixel = t.stride(3) if w > 1 else t.stride(2)
    return t, (t.stride(0), t.stride(1), pixel)


def _blocks(x: Tensor) -> tuple[int, int]:
    """(channel, pixel) tile: long along the axis that is contiguous in memory."""
    channels_last = x.stride(1) == 1 and x.shape[1] > 1
    return (64, 32) if channels_last else (16, 128)


def _f64(x: Tensor) -> bool:
    return x.dtype == torch.float64


# --- tiles ---------------------------------------------------------------------------------------

@triton.jit
def _tile(C, P, BC: tl.constexpr, BP: tl.constexpr):
    """This program's tile of a (N·⌈C/BC⌉, ⌈P/BP⌉) grid: image ``n``, channel and pixel block
    numbers, their indices and masks, and the tile's mask."""
    cblocks = tl.cdiv(C, BC)
    n = tl.program_id(0) // cblocks
    cb = tl.program_id(0) % cblocks
    pb = tl.program_id(1)
    c = cb * BC + tl.arange(0, BC)
    p = pb * BP + tl.arange(0, BP)
    mc, mp = c < C, p < P
    return n, cb, pb, c, p, mc, mp, mc[:, None] & mp[None, :]


@triton.jit
def _load_tile(ptr, n, c, p, sn, sc, sp, m, F64: tl.constexpr):
    """The (channel, pixel) tile of a tensor addressed by (batch, channel, pixel) strides, in the
    accumulation dtype (fp32; fp64 for fp64 data)."""
    v = tl.load(ptr + n * sn + c[:, None] * sc + p[None, :] * sp, mask=m, other=0.0)
    return v.to(tl.float64) if F64 else v.to(tl.float32)


@triton.jit
def _store_tile(ptr, value, n, c, p, sn, sc, sp, m):
    """``value`` into the (channel, pixel) tile of a (batch, channel, pixel)-strided tensor, in its dtype."""
    tl.store(ptr + n * sn + c[:, None] * sc + p[None, :] * sp, value.to(ptr.dtype.element_ty), mask=m)


# --- gate ----------------------------------------------------------------------------------------

@triton.jit
def _gate_kernel(x_ptr, a_ptr, b_ptr, r_ptr, y_ptr, C, P, sxn, sxc, sxp, srn, src, srp, syn, syc, syp,
                 HAS_A: tl.constexpr, HAS_B: tl.constexpr, HAS_R: tl.constexpr, RELU: tl.constexpr, F64: tl.constexpr,
                 BC: tl.constexpr, BP: tl.constexpr):
    n, _, _, c, p, mc, mp, m = _tile(C, P, BC, BP)
    v = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
    if HAS_A:
        v = v * tl.load(a_ptr + n * C + c, mask=mc, other=0.0).to(v.dtype)[:, None]
    if HAS_B:
        v = v * tl.load(b_ptr + n * P + p, mask=mp, other=0.0).to(v.dtype)[None, :]
    if HAS_R:
        v = v + _load_tile(r_ptr, n, c, p, srn, src, srp, m, F64)
    if RELU:
        v = tl.where(v <= 0, 0.0, v)  # NaN stays NaN, as torch.relu
    _store_tile(y_ptr, v, n, c, p, syn, syc, syp, m)


def _flat(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.reshape(t.shape[0], -1).contiguous()


def gate(x: Tensor, channel: Optional[Tensor], spatial: Optional[Tensor], identity: Optional[Tensor], relu: bool) -> Tensor:
    from .aten_kernels import result_dtype

    n, c, h, w = x.shape
    x, sx = _strides(x)
    y = torch.empty_like(x, dtype=result_dtype(x, channel, spatial, identity))
    y_, sy = _strides(y)
    r, sr = _strides(identity) if identity is not None else (x, sx)
    bc, bp = _blocks(x)
    grid = (n * triton.cdiv(c, bc), triton.cdiv(h * w, bp))
    _gate_kernel[grid](x, _flat(channel) if channel is not None else x, _flat(spatial) if spatial is not None else x, r, y_,
                       c, h * w, *sx, *sr, *sy, HAS_A=channel is not None, HAS_B=spatial is not None,
                       HAS_R=identity is not None, RELU=relu, F64=_f64(y), BC=bc, BP=bp)
    return y


@triton.jit
def _gate_backward_kernel(g_ptr, x_ptr, a_ptr, b_ptr, y_ptr, gx_ptr, gr_ptr, pa_ptr, pb_ptr, C, P,
                          sgn, sgc, sgp, sxn, sxc, sxp, syn, syc, syp,
                          HAS_A: tl.constexpr, HAS_B: tl.constexpr, RELU: tl.constexpr, WITH_R: tl.constexpr,
                          F64: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr):
    cblocks, pblocks = tl.cdiv(C, BC), tl.cdiv(P, BP)
    n, cb, pb, c, p, mc, mp, m = _tile(C, P, BC, BP)
    g = _load_tile(g_ptr, n, c, p, sgn, sgc, sgp, m, F64)
    if RELU:  # ReLU's backward as autograd's threshold_backward: the gradient where y > 0, else 0
        yv = _load_tile(y_ptr, n, c, p, syn, syc, syp, m, F64)
        g = tl.where(yv > 0, g, 0.0)
    if WITH_R:
        _store_tile(gr_ptr, g, n, c, p, sxn, sxc, sxp, m)
    gs = g  # the gradient of x ⊙ a
    if HAS_B:
        bv = tl.load(b_ptr + n * P + p, mask=mp, other=0.0).to(g.dtype)
        gs = g * bv[None, :]
    if HAS_A or HAS_B:  # only the gates' gradients read x
        xv = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
    if HAS_A:
        av = tl.load(a_ptr + n * C + c, mask=mc, other=0.0).to(g.dtype)
        _store_tile(gx_ptr, (gs * av[:, None]), n, c, p, sxn, sxc, sxp, m)
        tl.store(pa_ptr + (n * C + c) * pblocks + pb, tl.sum(gs * xv, axis=1), mask=mc)
        xv = xv * av[:, None]
    else:
        _store_tile(gx_ptr, gs, n, c, p, sxn, sxc, sxp, m)
    if HAS_B:
        tl.store(pb_ptr + (n * cblocks + cb) * P + p, tl.sum(g * xv, axis=0), mask=mp)


def gate_backward(grad: Tensor, x: Tensor, channel: Optional[Tensor], spatial: Optional[Tensor], y: Optional[Tensor],
                  with_identity: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(grad_x, grad_channel, grad_spatial, grad_identity in grad's dtype); empty for an absent input."""
    n, c, h, w = x.shape
    (x, sx), (grad, sg), (yv, sy), (bc, bp), (cblocks, pblocks), acc = _backward_layout(grad, x, y)
    grad_x = torch.empty_like(x)
    grad_identity = torch.empty_like(x, dtype=grad.dtype) if with_identity else grad.new_empty(0)
    partial_a = torch.empty(n, c, pblocks, dtype=acc, device=x.device) if channel is not None else grad.new_empty(0)
    partial_b = torch.empty(n, cblocks, h * w, dtype=acc, device=x.device) if spatial is not None else grad.new_empty(0)
    _gate_backward_kernel[(n * cblocks, pblocks)](
        grad, x, _flat(channel) if channel is not None else x, _flat(spatial) if spatial is not None else x, yv, grad_x,
        grad_identity if with_identity else grad_x, partial_a, partial_b, c, h * w, *sg, *sx, *sy,
        HAS_A=channel is not None, HAS_B=spatial is not None, RELU=y is not None, WITH_R=with_identity, F64=_f64(x), BC=bc, BP=bp)
    grad_channel = partial_a.sum(2).to(channel.dtype) if channel is not None else grad.new_empty(0)
    grad_spatial = partial_b.sum(1).view(n, 1, h, w).to(spatial.dtype) if spatial is not None else grad.new_empty(0)
    return grad_x, grad_channel, grad_spatial, grad_identity


def _backward_layout(grad: Tensor, x: Tensor, y: Optional[Tensor]):
    """What a gate's backward kernel is launched with: ``x`` made dense (the gradients are written
    with its strides), ``grad`` and ``y`` (the forward's output, for a ReLU's mask; else x) with their
    strides, the tile, the grid's block counts and the accumulation dtype."""
    x, sx = _strides(_dense(x))
    grad, sg = _strides(grad)
    yv, sy = _strides(y) if y is not None else (x, sx)
    bc, bp = _blocks(x)
    blocks = triton.cdiv(x.shape[1], bc), triton.cdiv(x.shape[2] * x.shape[3], bp)
    return (x, sx), (grad, sg), (yv, sy), (bc, bp), blocks, torch.float64 if _f64(x) else torch.float32


def _dense(x: Tensor) -> Tensor:
    return x if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last) else x.contiguous()


# --- global pools --------------------------------------------------------------------------------

@triton.jit
def _global_pools_kernel(x_ptr, mean_ptr, max_ptr, C, P, sxn, sxc, sxp,
                         WITH_MAX: tl.constexpr, F64: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr):
    cblocks = tl.cdiv(C, BC)
    n = tl.program_id(0) // cblocks
    c = (tl.program_id(0) % cblocks) * BC + tl.arange(0, BC)
    mc = c < C
    total = tl.zeros((BC,), dtype=tl.float64 if F64 else tl.float32)
    best = tl.full((BC,), float("-inf"), dtype=total.dtype)
    nan = tl.zeros((BC,), dtype=tl.int32)
    for p0 in tl.range(0, P, BP):
        p = p0 + tl.arange(0, BP)
        m = mc[:, None] & (p < P)[None, :]
        v = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
        total += tl.sum(v, axis=1)
        if WITH_MAX:  # NaN tracked apart: the max of a row holding NaN is NaN, as amax's
            best = tl.maximum(best, tl.max(tl.where(m, v, float("-inf")), axis=1))
            nan = tl.maximum(nan, tl.max((v != v).to(tl.int32), axis=1))
    tl.store(mean_ptr + n * C + c, (total / P).to(mean_ptr.dtype.element_ty), mask=mc)
    if WITH_MAX:
        tl.store(max_ptr + n * C + c, tl.where(nan > 0, float("nan"), best).to(max_ptr.dtype.element_ty), mask=mc)


def global_pools(x: Tensor, with_max: bool) -> tuple[Tensor, Tensor]:
    n, c, h, w = x.shape
    x, sx = _strides(x)
    mean = x.new_empty((n, c))
    maximum = x.new_empty((n, c)) if with_max else x.new_empty(0)
    bc = 32
    _global_pools_kernel[(n * triton.cdiv(c, bc),)](x, mean, maximum if with_max else mean, c, h * w, *sx,
                                                    WITH_MAX=with_max, F64=_f64(x), BC=bc, BP=64)
    return mean, maximum


@triton.jit
def _global_pools_backward_kernel(x_ptr, max_ptr, gmean_ptr, gmax_ptr, gx_ptr, C, P, sxn, sxc, sxp,
                                  HAS_MEAN: tl.constexpr, HAS_MAX: tl.constexpr, F64: tl.constexpr,
                                  BC: tl.constexpr, BP: tl.constexpr):
    cblocks = tl.cdiv(C, BC)
    n = tl.program_id(0) // cblocks
    c = (tl.program_id(0) % cblocks) * BC + tl.arange(0, BC)
    mc = c < C
    acc_type = tl.float64 if F64 else tl.float32
    spread = tl.zeros((BC,), dtype=acc_type)
    if HAS_MEAN:
        spread = tl.load(gmean_ptr + n * C + c, mask=mc, other=0.0).to(acc_type) / P
    share = tl.zeros((BC,), dtype=acc_type)
    best = tl.load(max_ptr + n * C + c, mask=mc, other=0.0).to(acc_type)
    if HAS_MAX:  # amax's backward: the gradient over the count of tied maxima, at each of them
        count = tl.zeros((BC,), dtype=acc_type)
        for p0 in tl.range(0, P, BP):
            p = p0 + tl.arange(0, BP)
            m = mc[:, None] & (p < P)[None, :]
            v = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
            count += tl.sum((m & (v == best[:, None])).to(acc_type), axis=1)
        share = tl.load(gmax_ptr + n * C + c, mask=mc, other=0.0).to(acc_type) / count
    for p0 in tl.range(0, P, BP):
        p = p0 + tl.arange(0, BP)
        m = mc[:, None] & (p < P)[None, :]
        v = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
        g = share[:, None] * (v == best[:, None]).to(acc_type) + spread[:, None]
        _store_tile(gx_ptr, g, n, c, p, sxn, sxc, sxp, m)


def global_pools_backward(grad_mean: Optional[Tensor], grad_max: Optional[Tensor], x: Tensor, maximum: Tensor) -> Tensor:
    n, c, h, w = x.shape
    x, sx = _strides(_dense(x))
    grad_x = torch.empty_like(x)
    bc = 32
    _global_pools_backward_kernel[(n * triton.cdiv(c, bc),)](
        x, maximum.contiguous(), x if grad_mean is None else grad_mean.contiguous(), x if grad_max is None else grad_max.contiguous(),
        grad_x, c, h * w, *sx, HAS_MEAN=grad_mean is not None, HAS_MAX=grad_max is not None, F64=_f64(x), BC=bc, BP=64)
    return grad_x


# --- channel pools -------------------------------------------------------------------------------

@triton.jit
def _channel_pools_kernel(x_ptr, s_ptr, mean_ptr, max_ptr, idx_ptr, C, P, sxn, sxc, sxp,
                          HAS_S: tl.constexpr, F64: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr):
    n = tl.program_id(0)
    p = tl.program_id(1) * BP + tl.arange(0, BP)
    mp = p < P
    acc_type = tl.float64 if F64 else tl.float32
    total = tl.zeros((BP,), dtype=acc_type)
    best = tl.full((BP,), float("-inf"), dtype=acc_type)
    index = tl.zeros((BP,), dtype=tl.int32)
    for c0 in tl.range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        mc = c < C
        m = mc[:, None] & mp[None, :]
        v = tl.load(x_ptr + n * sxn + c[:, None] * sxc + p[None, :] * sxp, mask=m, other=0.0)
        if HAS_S:  # x ⊙ s rounded to the output dtype first, as the reference's product is
            v = (v.to(acc_type) * tl.load(s_ptr + n * C + c, mask=mc, other=0.0).to(acc_type)[:, None]).to(mean_ptr.dtype.element_ty)
        v = v.to(acc_type)
        total += tl.sum(tl.where(m, v, 0.0), axis=0)
        # This tile's maximum and its first channel (the first NaN if any), then merged: an earlier
        # tile keeps a tie, so the first maximal channel wins as in Tensor.max(1).
        isnan = (v != v) & m
        has_nan = tl.max(isnan.to(tl.int32), axis=0) > 0
        first_nan = tl.min(tl.where(isnan, c[:, None], C), axis=0)
        top = tl.max(tl.where(m & ~isnan, v, float("-inf")), axis=0)
        first_top = tl.min(tl.where(m & ~isnan & (v == top[None, :]), c[:, None], C), axis=0)
        tile_best = tl.where(has_nan, float("nan"), top)
        tile_index = tl.where(has_nan, first_nan, first_top)
        take = (tile_best > best) | (has_nan & (best == best))
        best = tl.where(take, tile_best, best)
        index = tl.where(take, tile_index, index)
    tl.store(mean_ptr + n * P + p, (total / C).to(mean_ptr.dtype.element_ty), mask=mp)
    tl.store(max_ptr + n * P + p, best.to(max_ptr.dtype.element_ty), mask=mp)
    tl.store(idx_ptr + n * P + p, index, mask=mp)


def channel_pools(x: Tensor, scale: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    from .aten_kernels import result_dtype

    n, c, h, w = x.shape
    x, sx = _strides(x)
    dtype = result_dtype(x, scale)
    mean, maximum = (x.new_empty((n, 1, h, w), dtype=dtype) for _ in range(2))
    index = x.new_empty((n, 1, h, w), dtype=torch.int32)
    bc, bp = (32, 32) if x.stride(1) == 1 else (8, 128)
    _channel_pools_kernel[(n, triton.cdiv(h * w, bp))](x, x if scale is None else scale.contiguous(), mean, maximum, index,
                                                       c, h * w, *sx, HAS_S=scale is not None, F64=dtype == torch.float64,
                                                       BC=bc, BP=bp)
    return mean, maximum, index


@triton.jit
def _channel_pools_backward_kernel(x_ptr, s_ptr, gmean_ptr, gmax_ptr, idx_ptr, gx_ptr, ps_ptr, C, P, sxn, sxc, sxp,
                                   HAS_S: tl.constexpr, HAS_MEAN: tl.constexpr, HAS_MAX: tl.constexpr, F64: tl.constexpr,
                                   BC: tl.constexpr, BP: tl.constexpr):
    pblocks = tl.cdiv(P, BP)
    n, _, pb, c, p, mc, mp, m = _tile(C, P, BC, BP)
    acc_type = tl.float64 if F64 else tl.float32
    g = tl.zeros((BC, BP), dtype=acc_type)  # the gradient of x ⊙ s: the mean's share plus the max's at its channel
    if HAS_MEAN:
        g += (tl.load(gmean_ptr + n * P + p, mask=mp, other=0.0).to(acc_type) / C)[None, :]
    if HAS_MAX:
        index = tl.load(idx_ptr + n * P + p, mask=mp, other=-1)
        top = tl.load(gmax_ptr + n * P + p, mask=mp, other=0.0).to(acc_type)
        g += tl.where(c[:, None] == index[None, :], top[None, :], 0.0)
    if HAS_S:
        sv = tl.load(s_ptr + n * C + c, mask=mc, other=0.0).to(acc_type)
        xv = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
        tl.store(ps_ptr + (n * C + c) * pblocks + pb, tl.sum(g * xv, axis=1), mask=mc)
        g = g * sv[:, None]
    _store_tile(gx_ptr, g, n, c, p, sxn, sxc, sxp, m)


def channel_pools_backward(grad_mean: Optional[Tensor], grad_max: Optional[Tensor], x: Tensor, scale: Optional[Tensor],
                           index: Tensor) -> tuple[Tensor, Tensor]:
    n, c, h, w = x.shape
    x, sx = _strides(_dense(x))
    bc, bp = _blocks(x)
    pblocks = triton.cdiv(h * w, bp)
    grad_x = torch.empty_like(x)
    acc = torch.float64 if _f64(x) else torch.float32
    partial = torch.empty(n, c, pblocks, dtype=acc, device=x.device) if scale is not None else x.new_empty(0)
    _channel_pools_backward_kernel[(n * triton.cdiv(c, bc), pblocks)](
        x, x if scale is None else scale.contiguous(), x if grad_mean is None else grad_mean.contiguous(),
        x if grad_max is None else grad_max.contiguous(), index.contiguous(), grad_x, partial if scale is not None else x,
        c, h * w, *sx, HAS_S=scale is not None, HAS_MEAN=grad_mean is not None, HAS_MAX=grad_max is not None,
        F64=_f64(x), BC=bc, BP=bp)
    return grad_x, (partial.sum(2).to(scale.dtype) if scale is not None else x.new_empty(0))


# --- rank-1 gate (HA soft attention) -------------------------------------------------------------

@triton.jit
def _sigmoid(t):
    return 1.0 / (1.0 + tl.exp(-t))


@triton.jit
def _rank1_gate_kernel(x_ptr, s_ptr, u_ptr, v_ptr, r_ptr, y_ptr, C, P, sxn, sxc, sxp, srn, src, srp, syn, syc, syp,
                       HAS_R: tl.constexpr, RELU: tl.constexpr, F64: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr):
    n, _, _, c, p, mc, mp, m = _tile(C, P, BC, BP)
    v = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
    s = tl.load(s_ptr + n * P + p, mask=mp, other=0.0).to(v.dtype)
    u = tl.load(u_ptr + n * C + c, mask=mc, other=0.0).to(v.dtype)
    b = tl.load(v_ptr + n * C + c, mask=mc, other=0.0).to(v.dtype)
    t = u[:, None] * s[None, :] + b[:, None]
    v = v * _sigmoid(tl.where(t <= 0, 0.0, t))
    if HAS_R:
        v = v + _load_tile(r_ptr, n, c, p, srn, src, srp, m, F64)
    if RELU:
        v = tl.where(v <= 0, 0.0, v)
    _store_tile(y_ptr, v, n, c, p, syn, syc, syp, m)


def rank1_gate(x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, identity: Optional[Tensor], relu: bool) -> Tensor:
    from .aten_kernels import result_dtype

    n, c, h, w = x.shape
    x, sx = _strides(x)
    y = torch.empty_like(x, dtype=result_dtype(x, spatial, scale, shift, identity))
    y_, sy = _strides(y)
    r, sr = _strides(identity) if identity is not None else (x, sx)
    bc, bp = _blocks(x)
    _rank1_gate_kernel[(n * triton.cdiv(c, bc), triton.cdiv(h * w, bp))](
        x, _flat(spatial), _flat(scale), _flat(shift), r, y_, c, h * w, *sx, *sr, *sy,
        HAS_R=identity is not None, RELU=relu, F64=_f64(y), BC=bc, BP=bp)
    return y


@triton.jit
def _rank1_gate_backward_kernel(g_ptr, x_ptr, s_ptr, u_ptr, v_ptr, y_ptr, gx_ptr, gr_ptr, ps_ptr, pu_ptr, pv_ptr, C, P,
                                sgn, sgc, sgp, sxn, sxc, sxp, syn, syc, syp,
                                RELU: tl.constexpr, WITH_R: tl.constexpr, F64: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr):
    cblocks, pblocks = tl.cdiv(C, BC), tl.cdiv(P, BP)
    n, cb, pb, c, p, mc, mp, m = _tile(C, P, BC, BP)
    g = _load_tile(g_ptr, n, c, p, sgn, sgc, sgp, m, F64)
    if RELU:
        yv = _load_tile(y_ptr, n, c, p, syn, syc, syp, m, F64)
        g = tl.where(yv > 0, g, 0.0)
    if WITH_R:
        _store_tile(gr_ptr, g, n, c, p, sxn, sxc, sxp, m)
    xv = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
    s = tl.load(s_ptr + n * P + p, mask=mp, other=0.0).to(g.dtype)
    u = tl.load(u_ptr + n * C + c, mask=mc, other=0.0).to(g.dtype)
    b = tl.load(v_ptr + n * C + c, mask=mc, other=0.0).to(g.dtype)
    t = u[:, None] * s[None, :] + b[:, None]
    a = _sigmoid(tl.where(t <= 0, 0.0, t))
    _store_tile(gx_ptr, (g * a), n, c, p, sxn, sxc, sxp, m)
    d = tl.where(m & (t > 0), g * xv * (1.0 - a) * a, 0.0)  # through σ, then ReLU's mask (NaN: 0, as autograd)
    tl.store(pv_ptr + (n * C + c) * pblocks + pb, tl.sum(d, axis=1), mask=mc)
    tl.store(pu_ptr + (n * C + c) * pblocks + pb, tl.sum(d * s[None, :], axis=1), mask=mc)
    tl.store(ps_ptr + (n * cblocks + cb) * P + p, tl.sum(d * u[:, None], axis=0), mask=mp)


def rank1_gate_backward(grad: Tensor, x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, y: Optional[Tensor],
                        with_identity: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(grad_x, grad_spatial, grad_scale, grad_shift, grad_identity in grad's dtype, or empty)."""
    n, c, h, w = x.shape
    (x, sx), (grad, sg), (yv, sy), (bc, bp), (cblocks, pblocks), acc = _backward_layout(grad, x, y)
    grad_x = torch.empty_like(x)
    grad_identity = torch.empty_like(x, dtype=grad.dtype) if with_identity else grad.new_empty(0)
    partial_s = torch.empty(n, cblocks, h * w, dtype=acc, device=x.device)
    partial_u, partial_v = (torch.empty(n, c, pblocks, dtype=acc, device=x.device) for _ in range(2))
    _rank1_gate_backward_kernel[(n * cblocks, pblocks)](
        grad, x, _flat(spatial), _flat(scale), _flat(shift), yv, grad_x, grad_identity if with_identity else grad_x,
        partial_s, partial_u, partial_v, c, h * w, *sg, *sx, *sy,
        RELU=y is not None, WITH_R=with_identity, F64=_f64(x), BC=bc, BP=bp)
    return (grad_x, partial_s.sum(1).view(n, 1, h, w).to(spatial.dtype), partial_u.sum(2).to(scale.dtype),
            partial_v.sum(2).to(shift.dtype), grad_identity)


# --- mix (MS-CAM, AFF, iAFF) ---------------------------------------------------------------------

@triton.jit
def _mix_weights(l_ptr, q_ptr, n, c, p, C, sln, slc, slp, mc, m, HAS_L: tl.constexpr, HAS_Q: tl.constexpr, F64: tl.constexpr,
                 BC: tl.constexpr, BP: tl.constexpr):
    """``M = σ(local + pooled)`` on this tile, either logits absent (forward and backward recompute it alike)."""
    logits = tl.zeros((BC, BP), dtype=tl.float64 if F64 else tl.float32)
    if HAS_L:
        logits += _load_tile(l_ptr, n, c, p, sln, slc, slp, m, F64)
    if HAS_Q:
        logits += tl.load(q_ptr + n * C + c, mask=mc, other=0.0).to(logits.dtype)[:, None]
    return _sigmoid(logits)


@triton.jit
def _mix_kernel(x_ptr, y_ptr, l_ptr, q_ptr, z_ptr, C, P, scale, sxn, sxc, sxp, syn, syc, syp, sln, slc, slp, szn, szc, szp,
                HAS_Y: tl.constexpr, HAS_L: tl.constexpr, HAS_Q: tl.constexpr, RELU: tl.constexpr, F64: tl.constexpr,
                BC: tl.constexpr, BP: tl.constexpr):
    n, _, _, c, p, mc, mp, m = _tile(C, P, BC, BP)
    xv = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
    weights = _mix_weights(l_ptr, q_ptr, n, c, p, C, sln, slc, slp, mc, m, HAS_L, HAS_Q, F64, BC, BP)
    if HAS_Y:
        yv = _load_tile(y_ptr, n, c, p, syn, syc, syp, m, F64)
        z = yv + weights * (xv - yv)
    else:
        z = xv * weights
    z = z * scale
    if RELU:
        z = tl.where(z <= 0, 0.0, z)
    _store_tile(z_ptr, z, n, c, p, szn, szc, szp, m)


def _full(t: Optional[Tensor], like: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
    """A full-size optional input and its strides (``like``'s as a stand-in when absent)."""
    return _strides(t) if t is not None else _strides(like)


def mix(x: Tensor, y: Optional[Tensor], local: Optional[Tensor], pooled: Optional[Tensor], scale: float, relu: bool) -> Tensor:
    from .aten_kernels import result_dtype

    n, c, h, w = x.shape
    x, sx = _strides(x)
    (y_, sy), (l_, sl) = _full(y, x), _full(local, x)
    z = torch.empty_like(x, dtype=result_dtype(x, y, local, pooled))
    z_, sz = _strides(z)
    bc, bp = _blocks(x)
    _mix_kernel[(n * triton.cdiv(c, bc), triton.cdiv(h * w, bp))](
        x, y_, l_, x if pooled is None else _flat(pooled), z_, c, h * w, float(scale), *sx, *sy, *sl, *sz,
        HAS_Y=y is not None, HAS_L=local is not None, HAS_Q=pooled is not None, RELU=relu, F64=_f64(z), BC=bc, BP=bp)
    return z


@triton.jit
def _mix_backward_kernel(g_ptr, x_ptr, y_ptr, l_ptr, q_ptr, z_ptr, gx_ptr, gy_ptr, gl_ptr, pq_ptr, C, P, scale,
                         sgn, sgc, sgp, sxn, sxc, sxp, syn, syc, syp, sln, slc, slp, szn, szc, szp,
                         HAS_Y: tl.constexpr, HAS_L: tl.constexpr, HAS_Q: tl.constexpr, RELU: tl.constexpr,
                         F64: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr):
    pblocks = tl.cdiv(P, BP)
    n, _, pb, c, p, mc, mp, m = _tile(C, P, BC, BP)
    g = _load_tile(g_ptr, n, c, p, sgn, sgc, sgp, m, F64)
    if RELU:
        zv = _load_tile(z_ptr, n, c, p, szn, szc, szp, m, F64)
        g = tl.where(zv > 0, g, 0.0)
    g = g * scale
    weights = _mix_weights(l_ptr, q_ptr, n, c, p, C, sln, slc, slp, mc, m, HAS_L, HAS_Q, F64, BC, BP)
    xv = _load_tile(x_ptr, n, c, p, sxn, sxc, sxp, m, F64)
    gx = g * weights
    _store_tile(gx_ptr, gx, n, c, p, sxn, sxc, sxp, m)
    if HAS_Y:
        yv = _load_tile(y_ptr, n, c, p, syn, syc, syp, m, F64)
        _store_tile(gy_ptr, (g - gx), n, c, p, sxn, sxc, sxp, m)
        xv = xv - yv
    d = tl.where(m, g * xv * (1.0 - weights) * weights, 0.0)
    if HAS_L:
        _store_tile(gl_ptr, d, n, c, p, sxn, sxc, sxp, m)
    if HAS_Q:
        tl.store(pq_ptr + (n * C + c) * pblocks + pb, tl.sum(d, axis=1), mask=mc)


def mix_backward(grad: Tensor, x: Tensor, y: Optional[Tensor], local: Optional[Tensor], pooled: Optional[Tensor],
                 z: Optional[Tensor], scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(grad_x, grad_y, grad_local, grad_pooled); empty for an absent input. The full-size
    gradients are written with x's strides."""
    n, c, h, w = x.shape
    (x, sx), (grad, sg), (z_, sz), (bc, bp), (cblocks, pblocks), acc = _backward_layout(grad, x, z)
    (y_, sy), (l_, sl) = _full(y, x), _full(local, x)
    grad_x = torch.empty_like(x)
    grad_y = torch.empty_like(x, dtype=y.dtype) if y is not None else grad.new_empty(0)
    grad_local = torch.empty_like(x, dtype=local.dtype) if local is not None else grad.new_empty(0)
    partial = torch.empty(n, c, pblocks, dtype=acc, device=x.device) if pooled is not None else grad.new_empty(0)
    _mix_backward_kernel[(n * cblocks, pblocks)](
        grad, x, y_, l_, x if pooled is None else _flat(pooled), z_, grad_x, grad_y if y is not None else grad_x,
        grad_local if local is not None else grad_x, partial if pooled is not None else grad_x, c, h * w, float(scale),
        *sg, *sx, *sy, *sl, *sz,
        HAS_Y=y is not None, HAS_L=local is not None, HAS_Q=pooled is not None, RELU=z is not None, F64=_f64(x), BC=bc, BP=bp)
    grad_pooled = partial.sum(2).to(pooled.dtype) if pooled is not None else grad.new_empty(0)
    return grad_x, grad_y, grad_local, grad_pooled

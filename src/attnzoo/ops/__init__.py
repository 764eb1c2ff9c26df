"""The operations attention modules share, with one reference and fast kernels per device.

Every module's ``forward`` is its equation written with these ops; each op is its equation in
:mod:`.reference` and a custom op (:mod:`.library`) whose kernels are:

=================  ==================================  ===========================================
op                 computes                            kernels
=================  ==================================  ===========================================
``gate``           ``relu?(x ⊙ a ⊙ b + identity)``     PyTorch (any device), Triton (CUDA)
``global_mean``    ``mean_{H,W}(x)``                   PyTorch, Triton
``global_pools``   ``(mean_{H,W}(x), max_{H,W}(x))``   PyTorch, Triton
``channel_pools``  ``(mean_C, max_C)`` of ``x ⊙ s``    PyTorch, Triton
``rank1_gate``     ``x ⊙ σ(ReLU(u ⊗ s + v))``          PyTorch, Triton
``mix``            ``y + σ(l + g) ⊙ (x − y)``          PyTorch, Triton
=================  ==================================  ===========================================

``a`` is a per-channel gate (N, C), ``b`` a per-pixel gate (N, 1, H, W); ``rank1_gate`` is HA-CNN's
soft attention (``u``, ``v`` (N, C), ``s`` (N, 1, H, W)), ``mix`` MS-CAM's gate and attentional
feature fusion (``l`` full-size logits, ``g`` per-channel ones); both recompute their gate in
backward instead of storing it. The backward of each
custom op works from the input and the small gates alone, so a gated block keeps one copy of its
input for backward. Means accumulate in fp32, so fp16 inputs whose sums pass 65504 stay finite.

Which implementation runs is decided in :mod:`.selection`: the custom ops by default, the
reference equations under ``attnzoo.ops.use("reference")`` and whenever a graph is captured for
deployment (``torch.export``, ONNX, tracing). Where the device has no kernel of its own (no CUDA
with Triton), ``gate`` with one gate or none, the global pools, ``rank1_gate`` and ``mix`` run as their equations too: there
the custom op's Python dispatch (about 0.7 ms per ResNet-50 block end, forward and backward, on the
reference CPU) costs more than the pass it could save; CBAM's two gates and its channel pools keep
the op, for a backward that keeps one copy of the input instead of three. The C++ CPU kernels for inference stay a separate
conversion step, :func:`attnzoo.fused.convert`.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import library, reference
from .selection import MODES, capturing, current, observed, reference_now, use

Tensor = torch.Tensor


def _check(op: str, x: Tensor, channel: Optional[Tensor] = None, spatial: Optional[Tensor] = None, identity: Optional[Tensor] = None,
           **more: Optional[Tensor]) -> None:
    """Every given tensor's shape: ``channel`` and ``more``'s per-channel entries (N, C), ``spatial``
    (N, 1, H, W), ``identity`` and ``more``'s full-size ones (N, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"attnzoo.ops.{op}: expected x of shape (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    shapes = {"channel": (n, c), "spatial": (n, 1, h, w), "identity": (n, c, h, w), "y": (n, c, h, w), "local": (n, c, h, w),
              "pooled": (n, c), "scale": (n, c), "shift": (n, c)}
    given = {"channel": channel, "spatial": spatial, "identity": identity, **more}
    for name, t in given.items():
        want = shapes[name]
        if t is not None and tuple(t.shape) != want:
            raise ValueError(f"attnzoo.ops.{op}: expected {name} of shape {want} for x of shape {tuple(x.shape)}, got {tuple(t.shape)}")


def gate(x: Tensor, channel: Optional[Tensor] = None, spatial: Optional[Tensor] = None, identity: Optional[Tensor] = None,
         relu: bool = False) -> Tensor:
    """``y = x ⊙ channel ⊙ spatial (+ identity)``, then ReLU if ``relu``: channel (N, C), spatial (N, 1, H, W).

    With ``identity`` and ``relu`` it is a residual block's end, ``relu(attn(x) + identity)``, in
    one pass over memory where the device has a kernel for it.
    """
    _check("gate", x, channel, spatial, identity)
    # Without a device kernel, one gate (or none) is the equation: the custom op's Python dispatch
    # costs more than the pass it could save; two gates (CBAM) keep the op for its leaner backward.
    if reference_now() or (library.triton_for(x) is None and (channel is None or spatial is None)):
        return reference.gate(x, channel, spatial, identity, relu)
    return torch.ops.attnzoo.gate(x, channel, spatial, identity, relu)


def global_mean(x: Tensor) -> Tensor:
    """``mean_{H,W}(x)`` as (N, C), accumulated in fp32."""
    _check("global_mean", x)
    if reference_now() or library.triton_for(x) is None:  # without a device kernel, the equation is as lean
        return reference.global_mean(x)
    return torch.ops.attnzoo.global_pools(x, False)[0]


def global_pools(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean_{H,W}(x), max_{H,W}(x))``, each (N, C), in one pass where the device has a kernel."""
    _check("global_pools", x)
    if reference_now() or library.triton_for(x) is None:
        return reference.global_pools(x)
    return torch.ops.attnzoo.global_pools(x, True)


def channel_pools(x: Tensor, scale: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(mean_C(x ⊙ scale), max_C(x ⊙ scale))``, each (N, 1, H, W); scale (N, C) or None.

    ``x ⊙ scale`` is never stored: backward recomputes what it needs from ``x``, ``scale`` and the
    argmax channel. A tied maximum sends its gradient to the first channel holding it.
    """
    _check("channel_pools", x, scale)
    if reference_now():
        return reference.channel_pools(x, scale)
    mean, maximum, _index = torch.ops.attnzoo.channel_pools(x, scale)
    return mean, maximum


def rank1_gate(x: Tensor, spatial: Tensor, scale: Tensor, shift: Tensor, identity: Optional[Tensor] = None,
               relu: bool = False) -> Tensor:
    """``y = x ⊙ σ(ReLU(scale ⊗ spatial + shift)) (+ identity)``, then ReLU if ``relu``: spatial
    (N, 1, H, W), scale and shift (N, C). HA-CNN's soft attention (and, with ``identity`` and
    ``relu``, the end of its residual block): the full-size gate is never stored — backward
    recomputes it from ``x`` and the small inputs.
    """
    _check("rank1_gate", x, spatial=spatial, identity=identity, scale=scale, shift=shift)
    if reference_now() or library.triton_for(x) is None:
        return reference.rank1_gate(x, spatial, scale, shift, identity, relu)
    return torch.ops.attnzoo.rank1_gate(x, spatial, scale, shift, identity, relu)


def mix(x: Tensor, y: Optional[Tensor] = None, local: Optional[Tensor] = None, pooled: Optional[Tensor] = None,
        scale: float = 1.0, relu: bool = False) -> Tensor:
    """``z = scale · (y + M ⊙ (x − y))`` (= ``M ⊙ x + (1 − M) ⊙ y``), or ``scale · x ⊙ M`` without
    ``y``, with ``M = σ(local + pooled)`` (local (N, C, H, W), pooled (N, C), at least one given),
    then ReLU if ``relu``. MS-CAM's gate and attentional feature fusion: ``M`` is never stored —
    backward recomputes it from the logits.
    """
    _check("mix", x, y=y, local=local, pooled=pooled)
    if local is None and pooled is None:
        raise ValueError("attnzoo.ops.mix: expected local or pooled logits, got neither")
    if reference_now() or library.triton_for(x) is None:
        return reference.mix(x, y, local, pooled, scale, relu)
    return torch.ops.attnzoo.mix(x, y, local, pooled, float(scale), relu)


__all__ = ["MODES", "capturing", "channel_pools", "current", "gate", "global_mean", "global_pools", "library", "mix", "observed",
           "rank1_gate", "reference", "reference_now", "use"]

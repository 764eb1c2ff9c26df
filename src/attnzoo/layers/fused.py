"""Optional fused CPU kernels for SE, CBAM (and its halves) and HA soft attention.

In eager PyTorch every pooling and every elementwise step is its own pass over the feature map;
these C++ kernels (``fused_kernels.cpp``, parallelised with ATen's thread pool) do a module's work
in the passes its equation needs: pool once, scale once. SE and CBAM run as one kernel call each
(``pooled_gates``: pooling, MLP, spatial convolution and the apply pass), and outputs of 16 MiB or
more are written with streaming stores, which skip the read a normal store makes of each line it
fills. They are off by default — the library is pure PyTorch — and are built on first use with
``torch.utils.cpp_extension`` (needs a C++ compiler and ``ninja``; about a minute, then cached)::

    import attnzoo
    attnzoo.layers.fused.enable()     # True if the kernels built; False (with a warning) if not

They are used only where they compute exactly what the PyTorch path computes and nothing needs
more: fp32 contiguous CPU tensors, no autograd (``torch.no_grad`` / ``inference_mode``), not while
``torch.compile`` traces, the module's activations the stock ones, BatchNorms in eval mode, and no
forward hook on a module whose forward the kernel replaces (a hook must see what it watches run).
Tests check each module's fused output against its PyTorch path.

ResNet blocks also end in one pass with them: ``relu(attn(x) + identity)`` for SE, CBAM and its
halves and HA-CNN's soft attention (their own kernels) and the other gating modules (eSE, ECA,
HA-CNN's spatial and channel attention; see ``AttentionModule.gate_factors`` and ``fused_apply``) and ``relu(x + identity)`` without attention,
so a benchmark against the plain network compares like with like.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch
from torch import nn

from ._base import AttentionModule

_state: dict = {"enabled": False, "module": None, "error": None}


def _build() -> Optional[ModuleType]:
    if _state["module"] is None and _state["error"] is None:
        try:
            from torch.utils.cpp_extension import load

            _state["module"] = load(
                name="attnzoo_fused",
                sources=[str(Path(__file__).with_name("fused_kernels.cpp"))],
                # ATen's parallel_for is OpenMP in torch's CPU builds: without -fopenmp it runs serially.
                extra_cflags=["-O3", "-ffast-math", "-march=native", "-fopenmp"],
                extra_ldflags=["-fopenmp"],  # (glibc's libmvec gives vectorised expf under -ffast-math)
                verbose=False,
            )
        except Exception as e:  # no compiler, no ninja, build error: stay on the PyTorch path
            _state["error"] = f"{type(e).__name__}: {e}"
            warnings.warn(f"attnzoo fused kernels unavailable, using PyTorch ops: {_state['error'][:300]}", stacklevel=3)
    return _state["module"]


def enable(enabled: bool = True) -> bool:
    """Turn the fused kernels on (building them if needed) or off; returns whether they are on."""
    _state["enabled"] = bool(enabled) and _build() is not None
    return _state["enabled"]


def is_enabled() -> bool:
    return _state["enabled"]


def hooked(module: nn.Module) -> bool:
    """Whether a forward hook would observe ``module`` (its own or a global one)."""
    from torch.nn.modules import module as module_mod

    return bool(
        module._forward_hooks or module._forward_pre_hooks
        or module_mod._global_forward_hooks or module_mod._global_forward_pre_hooks
    )


def kernels_for(x: torch.Tensor, *replaced: nn.Module) -> Optional[ModuleType]:
    """The kernel module if ``x`` may take the fused path, else None.

    ``replaced``: the modules whose forward the fused path skips; a hook on any of them rules it out.
    """
    if not _state["enabled"]:
        return None
    if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or not x.is_contiguous():
        return None
    if torch.compiler.is_compiling() or any(hooked(m) for m in replaced):
        return None
    return _state["module"]


def fused_forward(module: AttentionModule, x: torch.Tensor) -> Optional[torch.Tensor]:
    """``module(x)`` through the kernels (``module.fused_apply``), or None where they do not apply.

    Meant to be called from ``module.forward``, which then runs its PyTorch ops if it gets None; a
    hook on any module inside ``module`` rules the kernels out (their forwards are skipped).
    """
    kernels = kernels_for(x, *itertools.islice(module.modules(), 1, None))
    return None if kernels is None else module.fused_apply(kernels, x)


def gated_residual(x: torch.Tensor, identity: torch.Tensor, attn: Optional[nn.Module], relu: nn.Module) -> Optional[torch.Tensor]:
    """``relu(attn(x) + identity)``, the end of a residual block, in one pass over memory.

    ``attn`` may be None (no attention). Returns None where the kernels do not apply — off, ``x`` or
    ``identity`` unsuitable, ``attn`` without a fused path (``fused_apply`` is None: not a pure
    gate), or a hook on ``relu``, ``attn`` or any module inside it (whose forwards are skipped) — and
    the caller then runs the modules.
    """
    kernels = kernels_for(x, relu) if attn is None else kernels_for(x, relu, *attn.modules())
    if kernels is None or identity.shape != x.shape or identity.dtype != x.dtype or not identity.is_contiguous():
        return None
    if attn is None:
        return kernels.scale(x, None, None, identity, True)
    if not isinstance(attn, AttentionModule):
        return None
    attn.check_input(x)
    return attn.fused_apply(kernels, x, identity, True)

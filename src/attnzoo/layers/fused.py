"""Optional fused CPU kernels for CBAM (and its halves) and HA soft attention.

In eager PyTorch every pooling and every elementwise step is its own pass over the feature map;
these C++ kernels (``fused_kernels.cpp``, parallelised with ATen's thread pool) do a module's work
in the passes its equation needs: pool once, scale once. (SE, whose PyTorch mean and multiply are
already one pass each, gained nothing measurable, so it stays on PyTorch ops.) They are off by default — the library is
pure PyTorch — and are built on first use with ``torch.utils.cpp_extension`` (needs a C++ compiler
and ``ninja``; about a minute, then cached)::

    import attnzoo
    attnzoo.layers.fused.enable()     # True if the kernels built; False (with a warning) if not

They are used only where they compute exactly what the PyTorch path computes and nothing needs
more: fp32 contiguous CPU tensors, no autograd (``torch.no_grad`` / ``inference_mode``), not while
``torch.compile`` traces, and no forward hook on the module's gate (a hook must see the gate run).
Tests check each module's fused output against its PyTorch path.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch
from torch import nn

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


def kernels_for(x: torch.Tensor, *gates: nn.Module) -> Optional[ModuleType]:
    """The kernel module if ``x`` may take the fused path, else None."""
    if not _state["enabled"]:
        return None
    if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or not x.is_contiguous():
        return None
    if torch.compiler.is_compiling() or any(hooked(g) for g in gates):
        return None
    return _state["module"]

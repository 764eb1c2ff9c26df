"""Which implementation an op call takes: the rule, in one place.

- ``"auto"`` (default): the registered custom ops (``torch.ops.attnzoo.*``) where they pay — every
  op on CUDA where Triton imports (its kernels), and elsewhere CBAM's two-gate ``gate`` and
  ``channel_pools`` (PyTorch operators with a backward that keeps one copy of the input); the other
  calls run as their equations there (the custom op's Python dispatch would cost more than it saves:
  see :mod:`attnzoo.ops`). The reference equations wherever a graph is captured for deployment
  (``torch.export``, ONNX, ``torch.jit.trace``, FX), so exported files hold standard operators only.
- ``"reference"``: the equations in :mod:`attnzoo.ops.reference` everywhere.

A module whose gate someone watches (a forward hook on it, or a global one) must still run that
gate; :func:`observed` is how the modules ask, so that no module reads torch's hook globals itself.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing
from torch.nn.modules import module as _module

MODES = ("auto", "reference")
_state = {"mode": "auto"}


def current() -> str:
    """The mode in force: ``"auto"`` or ``"reference"``."""
    return _state["mode"]


class use(contextlib.AbstractContextManager):
    """Choose the implementation for the process: ``attnzoo.ops.use("reference")``; used as
    ``with attnzoo.ops.use("reference"): ...`` it restores the previous mode when the block ends."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"attnzoo.ops.use: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.previous, _state["mode"] = _state["mode"], mode

    def __exit__(self, *exc) -> None:
        _state["mode"] = self.previous


def capturing() -> bool:
    """Whether a graph is being captured for deployment (export, jit or FX tracing)."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing() or is_fx_symbolic_tracing()


def reference_now() -> bool:
    """Whether op calls take the reference equations now."""
    return current() == "reference" or capturing()


def observed(*modules: nn.Module) -> bool:
    """Whether a forward hook (the module's own, or a global one) would see any of ``modules``."""
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)

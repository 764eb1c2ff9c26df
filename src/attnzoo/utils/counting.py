"""Parameter and multiply-accumulate counting.

MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
convolutions, matrix products (``mm``, ``bmm``, ``addmm``, attention) as 2 FLOPs per MAC and
ignores pooling, normalisation and elementwise ops; we report its total divided by 2. This
is the convention of papers' "FLOPs" for CNNs (ResNet-50 ≈ 4.1 G at 224×224).
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_macs(module: nn.Module, inputs: Union[Sequence[int], torch.Tensor, Sequence[torch.Tensor]]) -> int:
    """Multiply-accumulates of one eval-mode forward pass on ``inputs``.

    ``inputs`` is an input shape, a tensor, or a sequence of tensors (e.g. a fusion's ``x, y``).
    """
    if isinstance(inputs, torch.Tensor):
        args: tuple = (inputs,)
    elif all(isinstance(t, torch.Tensor) for t in inputs):
        args = tuple(inputs)
    else:
        args = (torch.zeros(tuple(inputs)),)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*args)
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2

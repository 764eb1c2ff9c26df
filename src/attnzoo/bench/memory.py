"""Memory measurements that mean the same thing on every device.

On CPU there is no allocator high-water mark to read, so we report the bytes autograd keeps
for the backward pass (saved tensors, counted once per storage) — the activation memory a
module adds to training. On CUDA we also report ``torch.cuda.max_memory_allocated`` deltas.
"""

from __future__ import annotations

from typing import Callable

import torch


def saved_activation_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of distinct storages autograd saves for backward while running ``fn``."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak allocated bytes above the starting point while running ``fn`` on a CUDA device."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start

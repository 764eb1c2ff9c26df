"""Optional fused C++ CPU kernels for inference, applied to a finished model.

In eager PyTorch every pooling and every elementwise step of an attention module is its own pass
over the feature map; these kernels (``csrc/fused_kernels.cpp``, parallelised with ATen's thread
pool) do a module's work in the passes its equation needs. SE and CBAM (and its halves) run as
one kernel call each (pooling, MLP, spatial convolution, apply pass), HA-CNN's soft attention in
three, the other gating modules (eSE, ECA, HA-CNN's spatial and channel maps) as one apply pass;
ResNet blocks end in that same pass — ``relu(attn(x) + identity)``, or ``relu(x + identity)``
without attention — and outputs of 16 MiB or more are written with streaming stores.

The library itself is pure PyTorch; the kernels are a conversion step, like timm's
``reparameterize_model``::

    import attnzoo.fused
    fast = attnzoo.fused.convert(model.eval())   # RuntimeError (saying why) if they cannot be built
    with torch.inference_mode():
        y = fast(x)

``convert`` swaps each eligible module's class for a fused twin: same parameters and state-dict
keys. A twin runs its kernel only where the result is exactly what the module computes — fp32
contiguous CPU tensors, no autograd, not while ``torch.compile`` traces, the stock ReLU/sigmoid,
eval-mode BatchNorms, no forward hook on a module whose forward the kernel skips — and the
module's own PyTorch code everywhere else. The kernels are built on first use (a C++ compiler and
``ninja``, about a minute, then cached per CPU; see :mod:`attnzoo.fused.build`).
"""

from .build import error, kernels
from .twins import TWINS, convert, converted, revert


def available() -> bool:
    """Whether the kernels are built (building them now if needed)."""
    return kernels() is not None


__all__ = ["TWINS", "available", "convert", "converted", "error", "revert"]

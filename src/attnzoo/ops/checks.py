"""Check the ops on this machine against their reference equations: values and gradients, every
dtype, both layouts, odd sizes. On CUDA this checks the Triton kernels; anywhere else the PyTorch
kernels. ``python -c "from attnzoo.ops.checks import against_reference; ..."`` or
scripts/gpu_bench.sh run it; tests/ops/test_cuda.py asserts it on a CUDA machine.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import reference

# Each op through its registered custom op — the device's kernel — whatever the selection rule would
# pick for the call (on a CPU the rule runs most calls as their equations: checking those would
# compare the reference with itself).
CUSTOM: dict[str, Callable] = {
    "gate": lambda x, channel=None, spatial=None, identity=None, relu=False: torch.ops.attnzoo.gate(x, channel, spatial, identity, relu),
    "global_mean": lambda x: torch.ops.attnzoo.global_pools(x, False)[0],
    "global_pools": lambda x: torch.ops.attnzoo.global_pools(x, True),
    "channel_pools": lambda x, scale=None: torch.ops.attnzoo.channel_pools(x, scale)[:2],
    "rank1_gate": lambda x, spatial, scale, shift, identity=None, relu=False: torch.ops.attnzoo.rank1_gate(
        x, spatial, scale, shift, identity, relu),
    "mix": lambda x, y=None, local=None, pooled=None, scale=1.0, relu=False: torch.ops.attnzoo.mix(x, y, local, pooled, scale, relu),
}

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 3e-3}  # largest difference relative to the largest value
SHAPES = [(2, 5, 3, 7), (1, 70, 1, 1), (3, 33, 9, 11), (1, 3, 1, 13)]
LARGE_SHAPES = [(16, 256, 28, 28), (1, 2048, 7, 7)]


def cases(device: torch.device, dtype: torch.dtype, channels_last: bool, shape) -> dict[str, tuple[str, tuple, dict]]:
    """Each op call to check, as (op name, inputs, keyword options), on random inputs of ``shape``."""
    g = torch.Generator(device="cpu").manual_seed(0)
    n, c, h, w = shape

    def rand(*size, positive=False):
        t = torch.rand(size, generator=g) if positive else torch.randn(size, generator=g)
        return t.to(device=device, dtype=dtype)

    x = rand(*shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    a, b, r = rand(n, c, positive=True), rand(n, 1, h, w, positive=True), rand(*shape)
    u, v, local, pooled = rand(n, c), rand(n, c), rand(*shape), rand(n, c)
    return {
        "gate(x, a, b, identity, relu)": ("gate", (x, a, b, r), {"relu": True}),
        "gate(x, a)": ("gate", (x, a), {}),
        "gate(x, spatial=b)": ("gate", (x, None, b), {}),
        "gate(x, identity, relu)": ("gate", (x, None, None, r), {"relu": True}),
        "global_mean": ("global_mean", (x,), {}),
        "global_pools": ("global_pools", (x,), {}),
        "channel_pools(x)": ("channel_pools", (x,), {}),
        "channel_pools(x, a)": ("channel_pools", (x, a), {}),
        "rank1_gate(x, s, u, v)": ("rank1_gate", (x, b, u, v), {}),
        "rank1_gate(x, s, u, v, identity, relu)": ("rank1_gate", (x, b, u, v, r), {"relu": True}),
        "mix(x, local, pooled)": ("mix", (x, None, local, pooled), {}),
        "mix(x, y, local, pooled, relu)": ("mix", (x, r, local, pooled), {"relu": True}),
        "mix(x, y, pooled, scale=2)": ("mix", (x, r, None, pooled), {"scale": 2.0}),
    }


def outputs_and_gradients(fn: Callable, inputs: tuple) -> list[torch.Tensor]:
    """``fn``'s outputs and the gradients of its inputs for fixed random cotangents, in fp32."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in inputs]
    out = fn(*leaves)
    outs = out if isinstance(out, tuple) else (out,)
    g = torch.Generator(device="cpu").manual_seed(1)
    cotangents = [torch.randn(o.shape, generator=g).to(o) for o in outs]
    present = [t for t in leaves if t is not None]
    return [t.float() for t in outs + torch.autograd.grad(outs, present, cotangents)]


def against_reference(device: str | torch.device = "cuda", smoke: bool = False) -> list[dict]:
    """One row per (op, dtype, layout, shape): the largest relative difference between the custom
    ops on ``device`` (its kernels) and the reference equations, and whether it is within the dtype's tolerance with
    NaN in the same places."""
    device = torch.device(device)
    rows = []
    for dtype_name, dtype in DTYPES.items():
        for channels_last in (False, True):
            for shape in SHAPES if smoke else SHAPES + LARGE_SHAPES:
                for op, (name, inputs, options) in cases(device, dtype, channels_last, shape).items():
                    got = outputs_and_gradients(lambda *t: CUSTOM[name](*t, **options), inputs)
                    want = outputs_and_gradients(lambda *t: getattr(reference, name)(*t, **options), inputs)
                    worst = max(((p - q).abs().max() / q.abs().max().clamp_min(1e-6)).item() for p, q in zip(got, want))
                    same_nan = all(torch.equal(torch.isnan(p), torch.isnan(q)) for p, q in zip(got, want))
                    rows.append({"op": op, "dtype": dtype_name, "channels_last": channels_last, "shape": list(shape),
                                 "max_rel_diff": worst, "ok": bool(worst <= TOLERANCE[dtype_name] and same_nan)})
    return rows

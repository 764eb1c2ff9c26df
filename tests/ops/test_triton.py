"""The CUDA kernels (Triton), run on CPU through Triton's interpreter, against the reference ops."""

import os

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[test]' brings it)")
assert os.environ.get("TRITON_INTERPRET") == "1", "tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported"

from attnzoo.ops import aten_kernels, reference  # noqa: E402
from attnzoo.ops import triton_kernels as tk  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")  # the interpreter's numpy

SHAPES = [(2, 5, 3, 7), (1, 70, 1, 1), (3, 33, 9, 11), (1, 3, 1, 13)]  # odd sizes, 1×1, batch 1, C past one tile
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def _inputs(shape, dtype, channels_last, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    gates = (torch.rand(n, c, generator=g, dtype=torch.float64).to(dtype), torch.rand(n, 1, h, w, generator=g, dtype=torch.float64).to(dtype))
    return x, gates[0], gates[1], torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def _close(got, want, dtype):
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got.double(), want.double(), rtol=tol, atol=tol, equal_nan=True)


def _reference_grads(fn, inputs, cotangents, dtype=torch.float64):
    leaves = [t.detach().to(dtype).requires_grad_() if t is not None else None for t in inputs]
    outs = fn(*leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    grads = torch.autograd.grad(outs, [t for t in leaves if t is not None], [c.to(o.dtype) for c, o in zip(cotangents, outs)])
    return outs, grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", [(True, True, True, True), (True, False, False, False), (False, True, False, False),
                                  (False, False, True, True), (True, True, False, False)])
def test_gate_forward_and_backward(case, shape, channels_last, dtype):
    x, a, b, r = _inputs(shape, dtype, channels_last)
    has_a, has_b, has_r, relu = case
    a, b, r = (a if has_a else None), (b if has_b else None), (r if has_r else None)
    y = tk.gate(x, a, b, r, relu)
    assert y.dtype == dtype and y.stride() == x.stride()
    grad = torch.randn(y.shape, dtype=torch.float64).to(dtype)
    want, want_grads = _reference_grads(lambda *t: reference.gate(*t, relu=relu), (x, a, b, r), (grad,))
    _close(y, want[0], dtype)
    got = tk.gate_backward(grad, x, a, b, y if relu else None, r is not None)
    present = [g for g, t in zip(got, (x, a, b, r)) if t is not None]
    for g, w in zip(present, want_grads):
        _close(g, w, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_global_pools_forward_and_backward(shape, channels_last, dtype):
    x = _inputs(shape, dtype, channels_last)[0]
    x[:, :, 0, 0] = x.amax((2, 3))  # ties: amax shares the gradient among them
    n, c = shape[:2]
    g_mean, g_max = torch.randn(n, c, dtype=torch.float64).to(dtype), torch.randn(n, c, dtype=torch.float64).to(dtype)
    mean, maximum = tk.global_pools(x, True)
    want, want_grads = _reference_grads(reference.global_pools, (x,), (g_mean, g_max))
    _close(mean, want[0], dtype)
    _close(maximum, want[1], dtype)
    _close(tk.global_pools_backward(g_mean, g_max, x, maximum), want_grads[0], dtype)
    _close(tk.global_pools(x, False)[0], want[0], dtype)
    only_max = aten_kernels.global_pools_backward(None, g_max.double(), x.double(), maximum.double())
    _close(tk.global_pools_backward(None, g_max, x, maximum), only_max, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_scale", [False, True])
def test_channel_pools_forward_and_backward(with_scale, shape, channels_last, dtype):
    x, a, _, _ = _inputs(shape, dtype, channels_last)
    if shape[1] > 3:
        x[:, 2] = x[:, 0]  # tied channels: the first takes the maximum's gradient
    scale = a if with_scale else None
    n, _, h, w = shape
    g_mean, g_max = (torch.randn(n, 1, h, w, dtype=torch.float64).to(dtype) for _ in range(2))
    mean, maximum, index = tk.channel_pools(x, scale)
    # In the input's dtype: x ⊙ s rounds there, and which channel holds the maximum depends on it.
    want, want_grads = _reference_grads(reference.channel_pools, (x, scale), (g_mean, g_max), dtype)
    _close(mean, want[0], dtype)
    _close(maximum, want[1], dtype)
    if dtype == torch.float64:  # the argmax rule, exactly: Tensor.max's first maximal channel
        scaled = x if scale is None else x * scale[:, :, None, None]
        assert torch.equal(index.long(), scaled.max(1, keepdim=True).indices)
    got = tk.channel_pools_backward(g_mean, g_max, x, scale, index)
    _close(got[0], want_grads[0], dtype)
    if with_scale:
        _close(got[1], want_grads[1], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("end", [False, True])
def test_rank1_gate_forward_and_backward(end, shape, channels_last, dtype):
    x, _, _, r = _inputs(shape, dtype, channels_last)
    g = torch.Generator().manual_seed(3)
    n, c, h, w = shape
    s, u, v = (torch.randn(size, generator=g, dtype=torch.float64).to(dtype) for size in ((n, 1, h, w), (n, c), (n, c)))
    identity = r if end else None
    y = tk.rank1_gate(x, s, u, v, identity, end)
    assert y.dtype == dtype and y.stride() == x.stride()
    grad = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype)
    want, want_grads = _reference_grads(lambda *t: reference.rank1_gate(*t, relu=end), (x, s, u, v, identity), (grad,))
    _close(y, want[0], dtype)
    got = tk.rank1_gate_backward(grad, x, s, u, v, y if end else None, end)
    for p, q in zip(got[:4] + ((got[4],) if end else ()), want_grads):
        _close(p, q, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", ["gate", "fusion", "fusion end scale 2", "pooled only", "local only"])
def test_mix_forward_and_backward(case, shape, channels_last, dtype):
    x, _, _, y = _inputs(shape, dtype, channels_last)
    g = torch.Generator().manual_seed(5)
    n, c = shape[:2]
    local = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    pooled = torch.randn(n, c, generator=g, dtype=torch.float64).to(dtype)
    args = {"gate": (x, None, local, pooled), "fusion": (x, y, local, pooled), "fusion end scale 2": (x, y, local, pooled),
            "pooled only": (x, y, None, pooled), "local only": (x, None, local, None)}[case]
    scale, relu = (2.0, True) if case == "fusion end scale 2" else (1.0, False)
    z = tk.mix(*args, scale, relu)
    assert z.dtype == dtype and z.stride() == x.stride()
    grad = torch.randn(z.shape, generator=g, dtype=torch.float64).to(dtype)
    want, want_grads = _reference_grads(lambda *t: reference.mix(*t, scale=scale, relu=relu), args, (grad,))
    _close(z, want[0], dtype)
    got = tk.mix_backward(grad, *args, z if relu else None, scale)
    present = [p for p, t in zip(got, args) if t is not None]
    for p, q in zip(present, want_grads):
        _close(p, q, dtype)


def test_nan_and_inf_pass_through_like_pytorch():
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    x[0, 2, 1, 1], x[0, 4, 1, 1] = float("nan"), float("nan")
    x[1, 3, 0, 0], x[1, 5, 2, 2] = float("inf"), float("-inf")
    mean, maximum, index = tk.channel_pools(x, None)
    ref_max, ref_index = x.max(1, keepdim=True)
    torch.testing.assert_close(maximum, ref_max, equal_nan=True)
    assert torch.equal(index.long(), ref_index) and index[0, 0, 1, 1] == 2  # the first NaN's channel
    torch.testing.assert_close(tk.global_pools(x, True)[1], x.amax((2, 3)), equal_nan=True)
    r = torch.randn_like(x)
    torch.testing.assert_close(tk.gate(x, None, None, r, True), torch.relu(x + r), equal_nan=True)
    s, u, v = torch.randn(2, 1, 3, 3, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    s[1, 0, 1, 1], u[0, 1] = float("nan"), float("inf")
    torch.testing.assert_close(tk.rank1_gate(x, s, u, v, r, True), reference.rank1_gate(x, s, u, v, r, True), equal_nan=True)
    local = torch.randn_like(x)
    local[0, 0, 0, 0], local[1, 1, 1, 1] = float("nan"), float("-inf")
    torch.testing.assert_close(tk.mix(x, r, local, v, 1.0, False), reference.mix(x, r, local, v), equal_nan=True)


def test_expanded_and_strided_inputs_are_read_through_their_strides():
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)[:, ::2]  # every other channel: not dense
    grad = torch.ones(1, 1, 1, 1, dtype=torch.float64).expand(2, 4, 5, 5)  # the gradient of a sum: stride 0
    a = torch.rand(2, 4, dtype=torch.float64)
    torch.testing.assert_close(tk.gate(x, a, None, None, False), x * a[:, :, None, None])
    got = tk.gate_backward(grad, x, a, None, None, False)
    torch.testing.assert_close(got[0], grad * a[:, :, None, None])
    torch.testing.assert_close(got[1], x.sum((2, 3)))

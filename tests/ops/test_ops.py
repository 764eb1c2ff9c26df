"""The op layer: each custom op against its reference equation, in values and gradients."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

import attnzoo
from attnzoo import ops
from attnzoo.ops.checks import CUSTOM
from torch.utils._python_dispatch import TorchDispatchMode

F64 = torch.float64


def _gate_inputs(shape, dtype=F64, channels_last=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = torch.randn(shape, generator=g, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return (x, torch.rand(n, c, generator=g, dtype=dtype), torch.rand(n, 1, h, w, generator=g, dtype=dtype),
            torch.randn(shape, generator=g, dtype=dtype))


def _run(fn, inputs, grads_seed=1):
    inputs = [t.detach().requires_grad_() if t is not None else None for t in inputs]
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    g = torch.Generator().manual_seed(grads_seed)
    cotangents = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in outs]
    leaves = [t for t in inputs if t is not None]
    return outs, torch.autograd.grad(outs, leaves, cotangents)


def _both(name, *args, **kwargs):
    """The op through its custom op and through the reference equation: outputs and input gradients."""
    fast = _run(lambda *a: CUSTOM[name](*a, **kwargs), args)
    with ops.use("reference"):
        ref = _run(lambda *a: getattr(ops, name)(*a, **kwargs), args)
    return fast, ref


GATE_CASES = [  # which of channel, spatial, identity are given, and relu
    (True, True, True, True), (True, False, False, False), (False, True, False, False), (True, True, False, False),
    (False, False, True, True), (True, False, True, True), (False, True, True, False),
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", GATE_CASES)
def test_gate_equals_its_equation_bit_for_bit_in_float64(case, channels_last):
    x, a, b, r = _gate_inputs((2, 5, 3, 7), channels_last=channels_last)
    has_a, has_b, has_r, relu = case
    args = (x, a if has_a else None, b if has_b else None, r if has_r else None)
    (out, grads), (ref_out, ref_grads) = _both("gate", *args, relu=relu)
    assert torch.equal(out[0], ref_out[0])
    exact = not channels_last and not (has_a and has_b)  # both gates (CBAM) and channels-last sums add in another order
    for p, q in zip(grads, ref_grads):
        torch.testing.assert_close(p, q, rtol=0, atol=0 if exact else 1e-14)
    assert out[0].is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("name", ["global_mean", "global_pools"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_global_pools_equal_their_equations(name, channels_last):
    x = _gate_inputs((3, 4, 5, 6), channels_last=channels_last)[0]
    x[0, 1, 2, :2] = x[0, 1].max() + 1  # a tied maximum: amax shares its gradient
    (out, grads), (ref_out, ref_grads) = _both(name, x)
    for p, q in zip(out, ref_out):  # Tensor.mean (the kernel) and sum / (H·W) (the equation) may round apart
        torch.testing.assert_close(p, q, rtol=0, atol=1e-15)
    torch.testing.assert_close(grads[0], ref_grads[0], rtol=0, atol=1e-15)


@pytest.mark.parametrize("with_scale", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_pools_equal_their_equation_with_the_first_maximum_rule(with_scale, channels_last):
    x, a, _, _ = _gate_inputs((2, 6, 4, 3), channels_last=channels_last)
    x[:, 3] = x[:, 1]  # tied channels: the first holds the maximum's whole gradient
    args = (x, a if with_scale else None)
    (out, grads), (ref_out, ref_grads) = _both("channel_pools", *args)
    assert all(torch.equal(p, q) for p, q in zip(out, ref_out))
    for p, q in zip(grads, ref_grads):  # with a scale, the backward sums its two terms in another order
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14 if channels_last or with_scale else 0)


def test_gradcheck_every_op():
    x, a, b, r = (t.requires_grad_() for t in _gate_inputs((2, 3, 4, 5)))
    for args in ((x, a, b, r), (x, a, None, r), (x, None, b, None), (x, None, None, r)):
        assert torch.autograd.gradcheck(lambda *t: CUSTOM["gate"](*t, relu=True), args)
    for name in ("global_mean", "global_pools", "channel_pools"):
        assert torch.autograd.gradcheck(CUSTOM[name], (x,))
    assert torch.autograd.gradcheck(CUSTOM["channel_pools"], (x, a))
    assert torch.autograd.gradgradcheck(lambda *t: CUSTOM["gate"](*t), (x, a, b))  # the backward is differentiable too


def test_without_a_device_kernel_one_gate_runs_as_its_equation():
    # CPU: the custom op's dispatch costs more than a single gate's pass; CBAM's two gates and the
    # pools keep it (their backward keeps one copy of the input).
    x, a, b, r = _gate_inputs((2, 3, 4, 5))

    class Calls(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(str(func))
            return func(*args, **(kwargs or {}))

    def ops_called(fn):
        with Calls() as calls:
            fn(x, a, b, r)
        return {name for name in calls.seen if name.startswith("attnzoo")}
    assert ops_called(lambda x, a, b, r: ops.gate(x, a, identity=r, relu=True)) == set()
    assert ops_called(lambda x, a, b, r: ops.gate(x, a, b)) == {"attnzoo.gate.default"}
    assert ops_called(lambda x, a, b, r: ops.channel_pools(x, a)) == {"attnzoo.channel_pools.default"}
    assert ops_called(lambda x, a, b, r: ops.global_pools(x)) == set()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 6), w=st.integers(1, 6), cl=st.booleans())
def test_ops_match_the_reference_on_any_shape(n, c, h, w, cl):
    x, a, b, r = _gate_inputs((n, c, h, w), channels_last=cl, seed=n * 1000 + c * 100 + h * 10 + w)
    for name, args, kwargs in (("gate", (x, a, b, r), {"relu": True}), ("global_pools", (x,), {}), ("channel_pools", (x, a), {})):
        (out, grads), (ref_out, ref_grads) = _both(name, *args, **kwargs)
        for p, q in zip(out + grads, ref_out + ref_grads):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-14)


def test_nan_and_inf_pass_through_as_in_pytorch():
    x, a, b, r = _gate_inputs((2, 4, 3, 3))
    x[0, 1, 1, 1], x[1, 2, 0, 0], x[1, 3, 2, 2] = float("nan"), float("inf"), float("-inf")
    for name, args, kwargs in (("gate", (x, a, b, r), {"relu": True}), ("global_pools", (x,), {}), ("channel_pools", (x,), {})):
        (out, grads), (ref_out, ref_grads) = _both(name, *args, **kwargs)
        for p, q in zip(out + grads, ref_out + ref_grads):
            torch.testing.assert_close(p, q, equal_nan=True)
    # With a scale, the outputs and x's gradient as PyTorch's; the scale's gradient at an infinite
    # input may be NaN where autograd's is ±inf (inf · (u + v) is summed as inf · u + inf · v).
    (out, grads), (ref_out, ref_grads) = _both("channel_pools", x, a)
    for p, q in zip(out + grads[:1], ref_out + ref_grads[:1]):
        torch.testing.assert_close(p, q, equal_nan=True)
    finite = torch.isfinite(x).flatten(2).all(2)
    torch.testing.assert_close(grads[1][finite], ref_grads[1][finite])
    assert torch.isnan(ops.gate(x, relu=True)[0, 1, 1, 1])  # the ReLU keeps NaN


def test_means_accumulate_in_fp32_so_fp16_sums_past_65504_stay_finite():
    x = torch.full((1, 2, 56, 56), 25.0, dtype=torch.float16)  # a channel's sum: 78,400 > 65504
    for global_mean in (ops.global_mean, CUSTOM["global_mean"], lambda t: ops.global_pools(t)[0], lambda t: CUSTOM["global_pools"](t)[0]):
        assert global_mean(x).tolist() == [[25.0, 25.0]]  # the equation and the kernel
    big = torch.full((1, 3000, 2, 2), 30.0, dtype=torch.float16)
    assert ops.channel_pools(big)[0].flatten().tolist() == [30.0] * 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_dtypes_promote_as_the_equation_does(dtype):
    x, a, b, r = _gate_inputs((2, 3, 4, 5), dtype=torch.float32)
    y = ops.gate(x.to(dtype), a, b.to(dtype), r.to(dtype))
    assert y.dtype == torch.float32  # dtype * fp32 promotes, as x * a would
    assert ops.channel_pools(x.to(dtype), a)[0].dtype == torch.float32
    xg = x.to(dtype).requires_grad_()
    ag = a.clone().requires_grad_()
    ops.gate(xg, ag, relu=True).sum().backward()
    assert xg.grad.dtype == dtype and ag.grad.dtype == torch.float32


def test_the_backward_keeps_the_input_and_small_gates_only():
    from attnzoo.bench.memory import saved_activation_bytes

    x, a, b, r = (t.float().requires_grad_() for t in _gate_inputs((4, 32, 16, 16)))
    size = x.numel() * 4
    assert saved_activation_bytes(lambda: ops.channel_pools(x, a)) <= 1.1 * size
    assert saved_activation_bytes(lambda: ops.gate(x, a, b)) <= 1.1 * size
    assert saved_activation_bytes(lambda: CUSTOM["gate"](x, identity=r, relu=True)) <= 1.1 * size  # a plain block end: its output only
    with ops.use("reference"):  # autograd's own graph keeps x ⊙ a as well
        assert saved_activation_bytes(lambda: ops.gate(x, a, b)) >= 2 * size


@pytest.mark.parametrize("kwargs, match", [
    ({"channel": torch.ones(2, 4)}, r"expected channel of shape \(2, 3\)"),
    ({"spatial": torch.ones(2, 3, 4, 5)}, r"expected spatial of shape \(2, 1, 4, 5\)"),
    ({"identity": torch.ones(2, 3, 4, 4)}, r"expected identity of shape \(2, 3, 4, 5\)"),
])
def test_wrong_shapes_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.gate(torch.ones(2, 3, 4, 5), **kwargs)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, C, H, W\)"):
        ops.global_mean(torch.ones(3, 4))


def test_use_switches_to_the_reference_and_restores():
    assert ops.current() == "auto"
    with ops.use("reference"):
        assert ops.current() == "reference" and ops.reference_now()
    assert ops.current() == "auto" and not ops.reference_now()
    with pytest.raises(ValueError, match="mode must be one of auto, reference"):
        ops.use("fast")


def test_graph_capture_takes_the_reference_so_exports_hold_standard_operators():
    model = attnzoo.create_model("cifar_resnet8", attn="cbam", num_classes=10).eval()
    program = torch.export.export(model, (torch.randn(2, 3, 16, 16),))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("attnzoo" in t for t in targets), targets
    traced = torch.jit.trace(model, (torch.randn(2, 3, 16, 16),), check_trace=False)
    assert "attnzoo::" not in str(traced.inlined_graph)


def test_observed_sees_own_and_global_hooks():
    m = torch.nn.ReLU()
    assert not ops.observed(m)
    handle = m.register_forward_hook(lambda *_: None)
    assert ops.observed(m)
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        assert ops.observed(m)
    finally:
        handle.remove()
    assert not ops.observed(m)


@pytest.mark.parametrize("case", ["gate all", "gate end", "pools", "mean", "channel pools", "channel pools unscaled",
                                  "rank1", "rank1 end", "mix", "mix fusion end", "mix pooled only"])
def test_torch_library_opcheck_passes(case):
    # PyTorch's own check of a custom op: schema, fake (meta) kernel against the real one, registered
    # autograd, and tracing under AOT autograd.
    x, a, b, r = (t.float().requires_grad_() for t in _gate_inputs((2, 3, 4, 5)))
    u, v = (torch.randn(2, 3).requires_grad_() for _ in range(2))
    op, args = {"rank1": (torch.ops.attnzoo.rank1_gate.default, (x, b, u, v, None, False)),
                "rank1 end": (torch.ops.attnzoo.rank1_gate.default, (x, b, u, v, r, True)),
                "mix": (torch.ops.attnzoo.mix.default, (x, None, r, a, 1.0, False)),
                "mix fusion end": (torch.ops.attnzoo.mix.default, (x, r, b.expand_as(x).contiguous(), a, 2.0, True)),
                "mix pooled only": (torch.ops.attnzoo.mix.default, (x, r, None, a, 1.0, False)),
                "gate all": (torch.ops.attnzoo.gate.default, (x, a, b, r, True)),
                "gate end": (torch.ops.attnzoo.gate.default, (x, None, None, r, True)),
                "pools": (torch.ops.attnzoo.global_pools.default, (x, True)),
                "mean": (torch.ops.attnzoo.global_pools.default, (x, False)),
                "channel pools": (torch.ops.attnzoo.channel_pools.default, (x, a)),
                "channel pools unscaled": (torch.ops.attnzoo.channel_pools.default, (x, None))}[case]
    torch.library.opcheck(op, args)


# --- rank1_gate (HA soft attention) and mix (MS-CAM, AFF) --------------------------------------------

def _rank1_inputs(shape, channels_last=False, seed=0):
    x, _, s, r = _gate_inputs(shape, channels_last=channels_last, seed=seed)
    g = torch.Generator().manual_seed(seed + 7)
    n, c = shape[:2]
    return x, torch.randn(n, 1, *shape[2:], generator=g, dtype=F64), torch.randn(n, c, generator=g, dtype=F64), \
        torch.randn(n, c, generator=g, dtype=F64), r


def _mix_inputs(shape, channels_last=False, seed=0):
    x, _, _, y = _gate_inputs(shape, channels_last=channels_last, seed=seed)
    g = torch.Generator().manual_seed(seed + 11)
    return x, y, torch.randn(shape, generator=g, dtype=F64), torch.randn(shape[:2], generator=g, dtype=F64)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("end", [False, True])
def test_rank1_gate_equals_its_equation(end, channels_last):
    x, s, u, v, r = _rank1_inputs((2, 5, 3, 7), channels_last)
    s[0, 0, 0, :3] = -10.0  # pre-activations below 0: the ReLU's flat part, where no gradient flows
    (out, grads), (ref_out, ref_grads) = _both("rank1_gate", x, s, u, v, r if end else None, relu=end)
    assert torch.equal(out[0], ref_out[0])  # the same operations in the same order
    for p, q in zip(grads, ref_grads):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)
    assert out[0].is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kind", ["gate", "fusion", "fusion end scale 2", "pooled only", "local only"])
def test_mix_equals_its_equation(kind, channels_last):
    x, y, local, pooled = _mix_inputs((2, 5, 3, 7), channels_last)
    args = {"gate": (x, None, local, pooled), "fusion": (x, y, local, pooled), "fusion end scale 2": (x, y, local, pooled),
            "pooled only": (x, y, None, pooled), "local only": (x, None, local, None)}[kind]
    options = {"scale": 2.0, "relu": True} if kind == "fusion end scale 2" else {}
    (out, grads), (ref_out, ref_grads) = _both("mix", *args, **options)
    torch.testing.assert_close(out[0], ref_out[0], rtol=0, atol=1e-15)
    for p, q in zip(grads, ref_grads):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)


def test_gradcheck_rank1_gate_and_mix():
    x, s, u, v, r = (t.requires_grad_() for t in _rank1_inputs((2, 3, 4, 5)))
    assert torch.autograd.gradcheck(lambda *t: CUSTOM["rank1_gate"](*t, relu=True), (x, s, u, v, r))
    assert torch.autograd.gradcheck(CUSTOM["rank1_gate"], (x, s, u, v))
    x, y, local, pooled = (t.requires_grad_() for t in _mix_inputs((2, 3, 4, 5)))
    assert torch.autograd.gradcheck(lambda *t: CUSTOM["mix"](*t, scale=2.0, relu=True), (x, y, local, pooled))
    assert torch.autograd.gradcheck(CUSTOM["mix"], (x, None, local, pooled))
    assert torch.autograd.gradgradcheck(CUSTOM["mix"], (x, y, local, pooled))  # the backward is differentiable too
    assert torch.autograd.gradgradcheck(CUSTOM["rank1_gate"], (x, s, u, v))


def test_rank1_gate_and_mix_keep_the_input_not_the_gate_for_backward():
    from attnzoo.bench.memory import saved_activation_bytes

    x, s, u, v, r = (t.float().requires_grad_() for t in _rank1_inputs((4, 32, 16, 16)))
    size = x.numel() * 4
    assert saved_activation_bytes(lambda: CUSTOM["rank1_gate"](x, s, u, v)) <= 1.1 * size  # x (and the small inputs)
    with ops.use("reference"):  # autograd's graph keeps the gate's ReLU and sigmoid outputs as well
        assert saved_activation_bytes(lambda: ops.rank1_gate(x, s, u, v)) >= 3 * size
    x, y, local, pooled = (t.float().requires_grad_() for t in _mix_inputs((4, 32, 16, 16)))
    assert saved_activation_bytes(lambda: CUSTOM["mix"](x, y, local, pooled)) <= 3.1 * size  # x, y and the logits


def test_rank1_gate_and_mix_pass_nan_and_inf_through_as_pytorch():
    x, s, u, v, r = _rank1_inputs((2, 4, 3, 3))
    x[0, 1, 1, 1], s[1, 0, 2, 2], u[1, 3] = float("nan"), float("nan"), float("inf")
    (out, _), (ref_out, _) = _both("rank1_gate", x, s, u, v, r, relu=True)
    torch.testing.assert_close(out[0], ref_out[0], equal_nan=True)
    x, y, local, pooled = _mix_inputs((2, 4, 3, 3))
    local[0, 1, 1, 1], x[1, 2, 0, 0], pooled[1, 3] = float("nan"), float("inf"), float("-inf")
    (out, _), (ref_out, _) = _both("mix", x, y, local, pooled)
    torch.testing.assert_close(out[0], ref_out[0], equal_nan=True)


def test_rank1_gate_and_mix_name_wrong_arguments():
    x = torch.ones(2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"rank1_gate: expected spatial of shape \(2, 1, 4, 5\)"):
        ops.rank1_gate(x, torch.ones(2, 3, 4, 5), torch.ones(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"rank1_gate: expected shift of shape \(2, 3\)"):
        ops.rank1_gate(x, torch.ones(2, 1, 4, 5), torch.ones(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match=r"mix: expected pooled of shape \(2, 3\)"):
        ops.mix(x, pooled=torch.ones(2, 3, 1, 1))
    with pytest.raises(ValueError, match="mix: expected local or pooled logits, got neither"):
        ops.mix(x, x)

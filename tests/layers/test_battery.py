"""The battery every registered attention and fusion module must pass."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck
from torch.func import functional_call

import attnzoo
from tests.conftest import ALL_MODULES, build, inputs_for, randomize_

C = 16


def test_registries_are_complete_and_sorted():
    seeds = ["se", "cbam", "cbam_channel", "cbam_spatial", "self_attn", "nonlocal", "mscam", "ha_soft", "ha_spatial", "ha_channel"]
    zoo = ["eca", "ese", "gc", "coord", "bam", "simam", "triplet", "ge", "sge"]
    second_wave = ["ecam", "ceca", "gca", "lcbam", "scoord", "strip", "ela", "bat",
                   "danet", "danet_position", "danet_channel", "ccnet", "psa", "shuffle", "ema", "a2net"]
    assert attnzoo.list_attn() == sorted(seeds + zoo + second_wave)
    assert attnzoo.list_fusion() == ["add", "aff", "iaff"]
    assert attnzoo.list_conv() == ["bottleneck", "halo", "lambda", "sk", "splat"]


@pytest.mark.parametrize("create, kind", [(attnzoo.create_attn, "attention"), (attnzoo.create_fusion, "fusion"), (attnzoo.create_conv, "conv")])
def test_unknown_name_lists_valid_names(create, kind):
    with pytest.raises(ValueError, match=rf"unknown {kind} module 'nope'.*valid names: .*"):
        create("nope", 16)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_forward_keeps_shape(name):
    m = build(name, C)
    out = m(*inputs_for(name, (2, C, 9, 7)))
    assert out.shape == (2, C, 9, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODULES)
def test_backward_reaches_every_parameter(name):
    # A parameter is dead if no gradient reaches it in train mode nor in eval mode (a conv bias
    # right before a BatchNorm gets none in train mode, where the BN subtracts the batch mean,
    # but is used in eval mode).
    m = randomize_(build(name, C))
    x = tuple(t.requires_grad_() for t in inputs_for(name, (3, C, 6, 5)))
    for mode in (True, False):
        m.train(mode)
        out = m(*x)
        (out * torch.randn_like(out)).sum().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"{name}: parameters without gradient: {dead}"
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in x)


@pytest.mark.parametrize("name", ALL_MODULES)
@pytest.mark.parametrize("size", [(1, 1), (1, 6), (5, 1), (3, 3), (7, 5)])
def test_tiny_and_odd_sizes_batch1_eval(name, size):
    m = randomize_(build(name, C)).eval()
    with torch.no_grad():
        out = m(*inputs_for(name, (1, C, *size)))
    assert out.shape == (1, C, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODULES)
def test_gradcheck_float64_inputs_and_parameters(name):
    m = randomize_(build(name, 8)).double()
    x = inputs_for(name, (2, 8, 4, 3), dtype=torch.float64)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in m.named_parameters())
    x = tuple(t.requires_grad_() for t in x)

    def f(*tensors):
        torch.manual_seed(0)  # the same dropout mask in every evaluation (BAT has a Dropout2d)
        return functional_call(m, dict(zip(names, tensors[len(x):])), tensors[: len(x)])

    # fast_mode checks the Jacobian along random directions: as strict for wrong gradients,
    # and what keeps the check affordable for modules with thousands of parameters.
    assert gradcheck(f, x + params, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_bf16_autocast_is_finite_and_close(name):
    m = randomize_(build(name, C), std=0.3).eval()
    x = inputs_for(name, (2, C, 8, 8))
    with torch.no_grad():
        ref = m(*x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(*x)
    assert torch.isfinite(low).all()
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel < 0.05, f"{name}: bf16 relative error {rel:.3g}"


@pytest.mark.parametrize("name", ALL_MODULES)
def test_wrong_channel_count_names_module_and_shapes(name):
    m = build(name, C)
    cls = type(m).__name__
    bad = inputs_for(name, (2, C + 1, 5, 5))
    with pytest.raises(ValueError, match=rf"{cls}: expected input of shape \(N, {C}, H, W\), got \(2, {C + 1}, 5, 5\)"):
        m(*bad)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_non_4d_input_names_module_and_shapes(name):
    m = build(name, C)
    cls = type(m).__name__
    bad = inputs_for(name, (2, C, 5))
    with pytest.raises(ValueError, match=rf"{cls}: expected input of shape \(N, {C}, H, W\), got \(2, {C}, 5\)"):
        m(*bad)


@pytest.mark.parametrize("name", attnzoo.list_fusion())
def test_mismatched_fusion_inputs_name_module_and_both_shapes(name):
    m = build(name, C)
    cls = type(m).__name__
    with pytest.raises(ValueError, match=rf"{cls}: inputs must have the same shape, got x \(2, {C}, 5, 5\) and y \(2, {C}, 4, 5\)"):
        m(torch.randn(2, C, 5, 5), torch.randn(2, C, 4, 5))


@pytest.mark.parametrize("name", ALL_MODULES)
@pytest.mark.parametrize("channels", [0, -3, 2.5])
def test_bad_channels_argument(name, channels):
    with pytest.raises(ValueError, match="channels must be a positive int"):
        build(name, channels)


@pytest.mark.parametrize("name", ALL_MODULES)
@settings(max_examples=12, deadline=None)
@given(
    channels=st.integers(1, 40),
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    batch=st.integers(1, 3),
)
def test_shape_fuzz(name, channels, height, width, batch):
    m = build(name, channels).eval()
    with torch.no_grad():
        out = m(*inputs_for(name, (batch, channels, height, width)))
    assert out.shape == (batch, channels, height, width)
    assert torch.isfinite(out).all()


def test_create_module_finds_every_registry():
    assert isinstance(attnzoo.layers.create_module("aff", 8), attnzoo.layers.AFF)
    assert attnzoo.layers.module_kind("sk") == "conv" and attnzoo.layers.module_kind("eca") == "attention"
    with pytest.raises(ValueError, match=r"unknown module 'nope'; valid names: .*add.*sk"):
        attnzoo.layers.create_module("nope", 8)


@pytest.mark.parametrize("name", ["nonlocal", "self_attn", "se", "cbam"])
def test_empty_input_is_a_clear_error(name):
    m = attnzoo.create_attn(name, 8)
    with pytest.raises(ValueError, match=r"got an empty input of shape \(0, 8, 4, 4\); expected at least one image"):
        m(torch.randn(0, 8, 4, 4))


def _gate_options(name: str) -> dict:
    import inspect

    params = inspect.signature(attnzoo.layers.get_module_class(name).__init__).parameters
    return {k: params[k].default for k in ("act_layer", "gate_layer") if k in params}


TAKES_LAYERS = [n for n in ALL_MODULES if _gate_options(n)]


def test_the_common_modules_take_their_activation_and_gate_by_name():
    assert {"se", "ese", "eca", "ceca", "ecam", "cbam", "cbam_channel", "cbam_spatial", "lcbam", "coord", "scoord", "strip",
            "ela", "gc", "gca"} <= set(TAKES_LAYERS)


@pytest.mark.parametrize("name", TAKES_LAYERS)
def test_act_and_gate_layers_are_construction_time_choices(name):
    options = _gate_options(name)
    swapped = {k: ("hard_sigmoid" if v == "sigmoid" else "sigmoid") if k == "gate_layer" else ("silu" if v != "silu" else "gelu")
               for k, v in options.items()}
    default, other = randomize_(build(name, C)).eval(), build(name, C, **swapped).eval()
    other.load_state_dict(default.state_dict())
    expected_types = {{"sigmoid": torch.nn.Sigmoid, "silu": torch.nn.SiLU, "gelu": torch.nn.GELU}.get(v) for v in swapped.values()} - {None}
    assert expected_types <= {type(m) for m in other.modules()}
    x = torch.randn(2, C, 6, 5)
    with torch.no_grad():
        assert not torch.allclose(default(x), other(x)), f"{name}: {swapped} changed nothing"
    with pytest.raises(ValueError, match=r"='nope': expected an activation name \(.*hard_sigmoid.*sigmoid"):
        build(name, C, **{next(iter(options)): "nope"})


BLOCK_MODULES = attnzoo.list_attn() + attnzoo.list_fusion()  # the conv replacements' attention logits are quadratic in x: bf16 for them


@pytest.mark.parametrize("name", BLOCK_MODULES)
def test_pure_fp16_stays_finite_on_large_and_constant_inputs(name):
    # Sums over H·W in fp16 overflowed past 65504 (a constant 25 at 56×56 gave NaN in SE, CBAM, ECA,
    # eSE, ECAM); SimAM's squares from |x| ~ 100, SGE's products from ~1e3. Statistics are fp32 now.
    m = randomize_(build(name, C)).eval().half()
    cases = [tuple(torch.full_like(t, 25.0) for t in inputs_for(name, (2, C, 56, 56))),
             tuple(t * 100 for t in inputs_for(name, (2, C, 14, 14)))]
    if name in ("se", "ese", "eca", "ecam", "cbam", "cbam_channel", "cbam_spatial", "simam", "sge"):
        cases.append(tuple(t * 1000 for t in inputs_for(name, (2, C, 14, 14))))
    with torch.no_grad():
        for inputs in cases:
            assert torch.isfinite(m(*(t.half() for t in inputs))).all()


def test_bat_normalises_underflowed_transforms_without_nan():
    with torch.no_grad():
        assert torch.isfinite(build("bat", C).eval()(torch.randn(2, C, 14, 14) * 1e4)).all()
        torch.manual_seed(0)  # at init, 54 blocks deep, every sigmoid of a row underflowed: 0/0
        model = attnzoo.create_model("cifar_resnet110", attn="bat", num_classes=10).eval()
        assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()

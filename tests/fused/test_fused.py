"""The optional fused CPU kernels compute what the PyTorch path computes, through attnzoo.fused.convert."""

import importlib.util
import shutil

import pytest
import torch

import attnzoo
from attnzoo import fused
from attnzoo.fused import build, twins
from tests.conftest import randomize_

FUSED = [("cbam", {}), ("cbam", {"variant": "paper"}), ("cbam", {"pools": "avg"}), ("cbam", {"pools": "max"}), ("cbam_channel", {}),
         ("cbam_spatial", {}), ("cbam_spatial", {"variant": "paper"}), ("se", {}), ("se", {"bias": False}), ("cbam", {"bias": False}),
         ("ha_soft", {}), ("eca", {}), ("ese", {}), ("ha_channel", {}), ("ha_spatial", {})]
GATING = ["se", "ese", "eca", "cbam_channel", "cbam_spatial", "cbam", "ha_channel", "ha_spatial"]


@pytest.fixture(scope="module")
def kernels():
    # No compiler (or no ninja) here: skip. A compiler that fails on the source is a failure.
    if build._compiler() is None or shutil.which("ninja") is None and importlib.util.find_spec("ninja") is None:
        pytest.skip("no C++ compiler or ninja to build the fused kernels")
    assert fused.available(), f"the fused kernels failed to build: {fused.error()}"


def K():
    return build.require()


def both(module, *inputs):
    """(converted module's output, plain module's output) without autograd."""
    fast = fused.convert(module)
    with torch.no_grad():
        return fast(*inputs), module(*inputs)


@pytest.mark.parametrize("name, options", FUSED)
@pytest.mark.parametrize("shape", [(2, 16, 9, 7), (1, 32, 1, 1), (3, 64, 33, 31), (2, 7, 40, 3), (1, 24, 61, 67)])
def test_fused_equals_pytorch_path(kernels, name, options, shape):
    m = randomize_(attnzoo.create_attn(name, shape[1], **options)).eval()
    torch.testing.assert_close(*both(m, torch.randn(shape)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["se", "cbam", "ha_soft", "eca"])
def test_nan_and_inf_inputs_give_what_pytorch_gives(kernels, name):
    m = randomize_(attnzoo.create_attn(name, 8)).eval()
    x = torch.randn(2, 8, 5, 6)
    x[0, 1, 2, 3] = float("nan")
    x[1, 2, 0, 0] = float("inf")
    x[1, 3, 4, 5] = float("-inf")
    got, expected = both(m, x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert torch.isnan(got).any()


def test_convert_keeps_weights_and_keys_and_reverts(kernels):
    model = attnzoo.create_model("cifar_resnet8", attn="cbam", num_classes=10).eval()
    fast = fused.convert(model)
    assert fast is not model and type(model.layer1[0]).__name__ == "BasicBlock"  # the original is untouched
    assert type(fast.layer1[0]).__name__ == "FusedBasicBlock" and type(fast.layer1[0].attn).__name__ == "FusedCBAM"
    assert fast.state_dict().keys() == model.state_dict().keys()
    assert "layer1.0" in fused.converted(fast) and fused.converted(model) == []
    back = fused.revert(fast)
    assert fused.converted(back) == [] and type(back.layer1[0].attn) is type(model.layer1[0].attn)


def test_convert_says_why_when_the_kernels_cannot_be_built(monkeypatch):
    monkeypatch.setitem(build._state, "module", None)
    monkeypatch.setitem(build._state, "error", "no C++ compiler found")
    with pytest.raises(RuntimeError, match=r"attnzoo fused kernels unavailable: no C\+\+ compiler found"):
        fused.convert(torch.nn.Sequential())
    assert not fused.available()


def test_the_kernel_runs_only_without_autograd_and_hooks(kernels, monkeypatch):
    m = fused.convert(randomize_(attnzoo.create_attn("cbam", 16)).eval())
    calls, real = [], K()

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    monkeypatch.setitem(build._state, "module", Spy())
    x = torch.randn(2, 16, 5, 5)
    m(x)  # autograd on: PyTorch path
    assert calls == []
    with torch.no_grad():
        expected = m(x)  # one kernel call does the whole module
    assert calls == ["pooled_gates"]
    calls.clear()
    seen = []
    handle = m.spatial.gate.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        out = m(x)  # a hook on a part the kernel would skip: the module runs its PyTorch code, and the hook sees it
    handle.remove()
    assert seen == [(2, 1, 5, 5)]
    torch.testing.assert_close(out, expected)


def test_cbam_kernel_saturated_gates(kernels):
    # Logits far past ±87 (where e^-|z| is clamped) give gates of exactly 0 and 1 in both paths.
    m = randomize_(attnzoo.create_attn("cbam", 16, variant="paper")).eval()
    with torch.no_grad():
        m.spatial.conv.weight.mul_(1e3)
        m.channel.mlp[2].weight.mul_(1e3)
    got, expected = both(m, torch.randn(3, 16, 8, 9))
    assert (got == 0).any() and torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_training_batchnorm_takes_the_pytorch_path(kernels):
    # The kernels fold BNs with their running statistics; a BN in training mode normalises with the
    # batch's (and updates its running ones), so the module must run as written.
    ha = randomize_(attnzoo.create_attn("ha_soft", 16)).eval()
    ha.spatial.conv1[1].train()
    x = torch.randn(3, 16, 8, 7)
    with torch.no_grad():
        assert twins.fused_end(K(), ha, x) is None
    torch.testing.assert_close(*both(ha, x))
    cbam = randomize_(attnzoo.create_attn("cbam", 16, variant="official")).eval()
    cbam.spatial.norm.train()
    assert twins.folded_conv(cbam.spatial) is None
    got, expected = both(cbam, torch.randn(4, 16, 5, 5))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name, swap", [("se", lambda m: setattr(m, "act", torch.nn.GELU())),
                                        ("cbam", lambda m: m.channel.mlp.__setitem__(1, torch.nn.SiLU())),
                                        ("cbam_spatial", lambda m: setattr(m, "gate", torch.nn.Hardsigmoid())),
                                        ("ha_soft", lambda m: m.spatial.conv1.__setitem__(2, torch.nn.LeakyReLU(0.3))),
                                        ("ha_soft", lambda m: m.mix.__setitem__(2, torch.nn.ELU()))])
def test_swapped_activation_is_computed_as_swapped(kernels, name, swap, monkeypatch):
    # The one-call kernels know ReLU and sigmoid only: a swapped activation must not reach them.
    m = randomize_(attnzoo.create_attn(name, 16)).eval()
    swap(m)
    torch.testing.assert_close(*both(m, torch.randn(2, 16, 5, 6)))


@pytest.mark.parametrize("name", GATING + ["ha_soft", None])
def test_block_end_in_one_pass_equals_the_block_end(kernels, name):
    x, identity = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    attn = randomize_(attnzoo.create_attn(name, 16)).eval() if name else None
    with torch.no_grad():
        got = twins.fused_end(K(), attn, x, identity, True) if attn else K().scale(x, None, None, identity, True)
        expected = torch.relu((attn(x) if attn else x) + identity)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", ["se", "cbam", "ha_soft", None])
def test_block_end_keeps_nan_and_inf_like_pytorch(kernels, name):
    # The block end's ReLU (and HA soft attention's clamp) must let NaN through, as torch.relu does.
    x, identity = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    x[0, 1, 2, 3], identity[1, 2, 0, 0], identity[1, 3, 4, 4], x[0, 5, 1, 1] = float("nan"), float("nan"), float("-inf"), float("inf")
    attn = randomize_(attnzoo.create_attn(name, 16)).eval() if name else None
    with torch.no_grad():
        got = twins.fused_end(K(), attn, x, identity, True) if attn else K().scale(x, None, None, identity, True)
        expected = torch.relu((attn(x) if attn else x) + identity)
    assert torch.isnan(expected).any() and torch.equal(torch.isnan(got), torch.isnan(expected))
    torch.testing.assert_close(got, expected, equal_nan=True)


@pytest.mark.parametrize("name", ["se", "cbam", "eca", "ha_soft", None])
def test_outputs_past_the_streaming_size_equal_the_block_end(kernels, name):
    # From 16 MiB on, the kernels write their output with streaming stores, a row at a time, 32-byte
    # aligned in the middle and plain at both ends: an odd plane length puts every row's start at
    # another alignment.
    x, identity = torch.randn(2, 32, 257, 259), torch.randn(2, 32, 257, 259)
    assert x.numel() * 4 >= 16 << 20
    attn = randomize_(attnzoo.create_attn(name, 32)).eval() if name else None
    with torch.no_grad():
        got = twins.fused_end(K(), attn, x, identity, True) if attn else K().scale(x, None, None, identity, True)
        expected = torch.relu((attn(x) if attn else x) + identity)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if attn is not None:
        torch.testing.assert_close(*both(attn, x), rtol=1e-5, atol=1e-5)


def test_blocks_decline_what_the_kernels_cannot_do(kernels):
    block = fused.convert(attnzoo.create_model("cifar_resnet8", num_classes=10, attn="cbam").eval()).layer1[0]
    x = torch.randn(2, 16, 6, 5)
    with torch.no_grad():
        assert twins.fused_end(K(), attnzoo.create_attn("mscam", 16).eval(), x) is None  # not a pure gate
        expected = block(x)
        seen = []
        block.attn.channel.register_forward_hook(lambda *_: seen.append("channel"))
        block.relu.register_forward_hook(lambda *_: seen.append("relu"))
        torch.testing.assert_close(block(x), expected)  # hooks must see their modules run
    assert seen == ["relu", "channel", "relu"]  # (BasicBlock's one ReLU runs after bn1 and at the end)


@pytest.mark.parametrize("model, attn", [("cifar_resnet8", None), ("cifar_resnet8", "se"), ("cifar_resnet8", "cbam"),
                                         ("resnet18", "eca"), ("resnet50", "cbam"), ("resnet50", "ha_soft")])
def test_resnet_with_fused_kernels_equals_eager(kernels, model, attn):
    m = attnzoo.create_model(model, attn=attn, num_classes=10).eval()  # (random weights would explode)
    x = torch.randn(2, 3, 32, 32) if model.startswith("cifar") else torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(*both(m, x), rtol=1e-4, atol=1e-4)


def test_a_converted_model_still_trains(kernels):
    m = fused.convert(attnzoo.create_model("cifar_resnet8", attn="se", num_classes=10))
    loss = m(torch.randn(4, 3, 16, 16)).sum()
    loss.backward()  # autograd on: every twin runs its PyTorch code
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("attn", ["cbam", "ha_soft", "se"])
def test_channels_last_models_take_the_kernels_or_fall_back(kernels, attn):
    # a channels_last model holds its 7×7 / 3×3 conv weights in another layout than the kernels read
    model = randomize_(attnzoo.create_model("cifar_resnet8", attn=attn, num_classes=10)).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(*both(model, x), rtol=1e-4, atol=1e-4)


def test_channels_last_resnet50_cbam_as_reported(kernels):
    model = attnzoo.create_model("resnet50", attn="cbam").eval().to(memory_format=torch.channels_last)
    fast, x = fused.convert(model), torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k, shape", [(7, (2, 2, 9, 11)), (7, (1, 2, 2, 3)), (3, (3, 2, 5, 4)), (1, (2, 2, 3, 3))])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_two_to_one_equals_conv2d(kernels, k, shape, bias):
    # Kernels wider than the map (7 on 2×3) exercise the zero padding on every side.
    conv = torch.nn.Conv2d(2, 1, k, padding=k // 2, bias=bias)
    maps = torch.randn(shape)
    with torch.no_grad():
        got = K().conv_two_to_one(maps, conv.weight, conv.bias)
        torch.testing.assert_close(got.view(shape[0], 1, *shape[2:]), conv(maps))


def test_kernels_reject_unsuitable_tensors(kernels):
    k = K()
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match="contiguous float32"):
        k.scale(x.double(), None, None, None, False)
    with pytest.raises(RuntimeError, match="a has 5 elements, expected 6"):
        k.scale(x, torch.ones(5), None, None, False)
    with pytest.raises(RuntimeError, match="contiguous float32"):
        k.scale(x, None, None, x.transpose(2, 3), True)
    w = torch.randn(8, 3)
    with pytest.raises(RuntimeError, match=r"needs w1 \(h, C\) and w2 \(C, h\)"):
        k.pooled_gates(x, None, False, w.t().contiguous(), None, w, None, True, None, None, False)
    with pytest.raises(RuntimeError, match="b2 has 8 elements, expected 3"):
        k.pooled_gates(x, None, False, w, None, w.t().contiguous(), torch.ones(8), True, None, None, False)


def test_means_kernel_matches_torch_means(kernels):
    # 5000 positions span two 4096-position chunks: the per-chunk sums over positions must add up.
    x = torch.randn(3, 6, 50, 100)
    over_c, over_p = K().means(x)
    torch.testing.assert_close(over_c, x.mean(1).flatten(1))
    torch.testing.assert_close(over_p, x.mean((2, 3)))


def test_rank1_sigmoid_scale_is_exact_over_the_whole_range(kernels):
    # Its inline exp must agree with float64 from t = 0 (gate 1/2), through the range where e^-t
    # underflows and the clamp at t = 87.3 takes over (gate 1), with negative t clipped by the ReLU.
    n, c, h, w = 2, 5, 3, 400
    s = torch.linspace(-200, 200, h * w).repeat(n, 1)
    u = torch.tensor([[1.0, 0.5, 0.01, -1.0, 3.0]]).repeat(n, 1)
    v = torch.tensor([0.0, 1.0, -0.5, 2.0, 0.0])
    x = torch.randn(n, c, h, w)
    got = K().rank1_sigmoid_scale(x, s, u, v, None, False)
    t = (s.double()[:, None, :] * u.double()[:, :, None] + v.double()[None, :, None]).clamp_min(0)
    expected = x.double() * torch.sigmoid(t).view(n, c, h, w)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, kernel", [("se", "pooled_gates"), ("cbam", "pooled_gates"), ("cbam_spatial", "pooled_gates"),
                                          ("ha_soft", "rank1_sigmoid_scale"), ("eca", "scale"), ("ha_channel", "scale")])
def test_converted_modules_run_their_kernel(kernels, monkeypatch, name, kernel):
    # Equality with the PyTorch path holds whether or not a kernel ran: check that it did.
    calls, real = [], K()

    class Spy:
        def __getattr__(self, attr):
            calls.append(attr)
            return getattr(real, attr)

    m = fused.convert(randomize_(attnzoo.create_attn(name, 16)).eval())
    monkeypatch.setitem(build._state, "module", Spy())
    with torch.no_grad():
        m(torch.randn(2, 16, 6, 5))
    assert kernel in calls

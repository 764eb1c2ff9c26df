"""The optional fused CPU kernels compute what the PyTorch path computes."""

import shutil

import pytest
import torch

import attnzoo
from attnzoo.layers import fused
from tests.conftest import randomize_

pytestmark = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler to build the kernels")

FUSED = [("cbam", {}), ("cbam", {"variant": "paper"}), ("cbam", {"pools": "avg"}), ("cbam_channel", {}), ("cbam_spatial", {}),
         ("cbam_spatial", {"variant": "paper"}), ("se", {}), ("se", {"bias": False}), ("cbam", {"bias": False}),
         ("ha_soft", {})]


@pytest.fixture(scope="module")
def kernels():
    assert fused.enable(), f"fused kernels failed to build: {fused._state['error']}"
    yield
    fused.enable(False)


def fused_then_pytorch(fn):
    """``fn()`` without autograd, with the fused kernels on and then off (they stay on after)."""
    with torch.no_grad():
        got = fn()
        fused.enable(False)
        try:
            return got, fn()
        finally:
            fused.enable(True)


@pytest.mark.parametrize("name, options", FUSED)
@pytest.mark.parametrize("shape", [(2, 16, 9, 7), (1, 32, 1, 1), (3, 64, 33, 31), (2, 7, 40, 3), (1, 24, 61, 67)])
def test_fused_equals_pytorch_path(kernels, name, options, shape):
    m = randomize_(attnzoo.create_attn(name, shape[1], **options)).eval()
    x = torch.randn(shape)
    torch.testing.assert_close(*fused_then_pytorch(lambda: m(x)), rtol=1e-5, atol=1e-5)


def test_fused_path_is_taken_only_without_autograd_and_hooks(kernels, monkeypatch):
    m = attnzoo.create_attn("cbam", 16).eval()
    calls = []
    real = fused._state["module"]

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    monkeypatch.setitem(fused._state, "module", Spy())
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
        out = m(x)  # a hook on a part the kernel would skip: the halves run, and the hook sees it
    handle.remove()
    assert calls == ["pooled_gates"] and seen == [(2, 1, 5, 5)]  # (the unhooked channel half takes its kernel)
    torch.testing.assert_close(out, expected)


def test_cbam_kernel_saturated_gates(kernels):
    # Logits far past ±87 (where e^-|z| is clamped) give gates of exactly 0 and 1 in both paths.
    m = randomize_(attnzoo.create_attn("cbam", 16)).eval()
    with torch.no_grad():
        m.spatial.conv.weight.mul_(1e3)
        m.channel.mlp[2].weight.mul_(1e3)
    x = torch.randn(3, 16, 8, 9)
    got, expected = fused_then_pytorch(lambda: m(x))
    assert (got == 0).any() and torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_ha_soft_with_a_training_batchnorm_takes_the_pytorch_path(kernels):
    # The kernels fold BNs with their running statistics; one BN left in training mode (here the
    # spatial map's) must normalise with the batch's, so the module runs in PyTorch.
    m = randomize_(attnzoo.create_attn("ha_soft", 16)).eval()
    m.spatial.conv1[1].train()
    x = torch.randn(3, 16, 8, 7)
    with torch.no_grad():
        assert m.fused_apply(fused._state["module"], x) is None
    torch.testing.assert_close(*fused_then_pytorch(lambda: m(x)))


def test_cbam_official_variant_with_training_batchnorm_takes_the_pytorch_path(kernels):
    # A training BatchNorm normalises with the batch's statistics (and updates its running ones):
    # there is nothing to fold, so the module must run as written.
    m = randomize_(attnzoo.create_attn("cbam", 16, variant="official")).eval()
    m.spatial.norm.train()
    x = torch.randn(4, 16, 5, 5)
    assert m.spatial.folded_conv() is None
    got, expected = fused_then_pytorch(lambda: m(x))
    torch.testing.assert_close(got, expected)
    assert m.spatial.norm.num_batches_tracked == 2  # both calls ran the BatchNorm


@pytest.mark.parametrize("k, shape", [(7, (2, 2, 9, 11)), (7, (1, 2, 2, 3)), (3, (3, 2, 5, 4)), (1, (2, 2, 3, 3))])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_two_to_one_equals_conv2d(kernels, k, shape, bias):
    # Kernels wider than the map (7 on 2×3) exercise the zero padding on every side.
    conv = torch.nn.Conv2d(2, 1, k, padding=k // 2, bias=bias)
    maps = torch.randn(shape)
    with torch.no_grad():
        got = fused._state["module"].conv_two_to_one(maps, conv.weight, conv.bias)
        torch.testing.assert_close(got.view(shape[0], 1, *shape[2:]), conv(maps))


def test_kernels_reject_unsuitable_tensors(kernels):
    k = fused._state["module"]
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


GATING = ["se", "ese", "eca", "cbam_channel", "cbam_spatial", "cbam", "ha_channel", "ha_spatial"]


@pytest.mark.parametrize("name", GATING + ["ha_soft", None])
def test_gated_residual_equals_the_block_end(kernels, name):
    x, identity = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    attn = randomize_(attnzoo.create_attn(name, 16)).eval() if name else None
    with torch.no_grad():
        got = fused.gated_residual(x, identity, attn, torch.nn.ReLU())
        fused.enable(False)
        expected = torch.relu((attn(x) if attn else x) + identity)
        assert fused.gated_residual(x, identity, attn, torch.nn.ReLU()) is None  # kernels off
        fused.enable(True)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", ["se", "cbam", "eca", "ha_soft", None])
def test_outputs_past_the_streaming_size_equal_the_block_end(kernels, name):
    # From 16 MiB on, the kernels write their output with streaming stores, a row at a time, 32-byte
    # aligned in the middle and plain at both ends: an odd plane length puts every row's start at
    # another alignment.
    x, identity = torch.randn(2, 32, 257, 259), torch.randn(2, 32, 257, 259)
    assert x.numel() * 4 >= 16 << 20
    attn = randomize_(attnzoo.create_attn(name, 32)).eval() if name else None
    with torch.no_grad():
        got = fused.gated_residual(x, identity, attn, torch.nn.ReLU())
        alone = attn(x) if attn else None
        fused.enable(False)
        expected_alone = attn(x) if attn else None
        expected = torch.relu((expected_alone if attn else x) + identity)
        fused.enable(True)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if attn is not None:
        torch.testing.assert_close(alone, expected_alone, rtol=1e-5, atol=1e-5)


def test_gated_residual_declines_what_it_cannot_do(kernels):
    x = torch.randn(2, 16, 6, 5)
    relu = torch.nn.ReLU()
    with torch.no_grad():
        assert fused.gated_residual(x, x, attnzoo.create_attn("mscam", 16).eval(), relu) is None  # not a pure gate
        assert fused.gated_residual(x, x[:, :8], None, relu) is None  # shapes differ
        assert fused.gated_residual(x, x.transpose(2, 3).contiguous().transpose(2, 3), None, relu) is None
        cbam = attnzoo.create_attn("cbam", 16).eval()
        cbam.channel.register_forward_hook(lambda *_: None)
        assert fused.gated_residual(x, x, cbam, relu) is None  # gate_factors would skip that forward
        relu.register_forward_hook(lambda *_: None)
        assert fused.gated_residual(x, x, None, relu) is None  # a hook on the ReLU must see it run
    assert fused.gated_residual(x, x, None, torch.nn.ReLU()) is None  # autograd on


@pytest.mark.parametrize("model, attn", [("cifar_resnet8", None), ("cifar_resnet8", "se"), ("cifar_resnet8", "cbam"),
                                         ("resnet18", "eca"), ("resnet50", "cbam"), ("resnet50", "ha_soft")])
def test_resnet_with_fused_kernels_equals_eager(kernels, model, attn):
    m = attnzoo.create_model(model, attn=attn, num_classes=10).eval()  # (random weights would explode)
    x = torch.randn(2, 3, 32, 32) if model.startswith("cifar") else torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(*fused_then_pytorch(lambda: m(x)), rtol=1e-4, atol=1e-4)


def test_kernels_off_by_default():
    fused.enable(False)
    assert not fused.is_enabled() and fused.kernels_for(torch.randn(1, 2, 3, 3)) is None



def test_means_kernel_matches_torch_means(kernels):
    # 5000 positions span two 4096-position chunks: the per-chunk sums over positions must add up.
    x = torch.randn(3, 6, 50, 100)
    over_c, over_p = fused._state["module"].means(x)
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
    got = fused._state["module"].rank1_sigmoid_scale(x, s, u, v, None, False)
    t = (s.double()[:, None, :] * u.double()[:, :, None] + v.double()[None, :, None]).clamp_min(0)
    expected = x.double() * torch.sigmoid(t).view(n, c, h, w)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, swap", [("se", lambda m: setattr(m, "act", torch.nn.GELU())),
                                        ("cbam", lambda m: m.channel.mlp.__setitem__(1, torch.nn.SiLU())),
                                        ("cbam_spatial", lambda m: setattr(m, "gate", torch.nn.Hardsigmoid())),
                                        ("ha_soft", lambda m: m.spatial.conv1.__setitem__(2, torch.nn.LeakyReLU(0.3))),
                                        ("ha_soft", lambda m: m.mix.__setitem__(2, torch.nn.ELU()))])
def test_swapped_activation_takes_the_pytorch_path(kernels, name, swap):
    # The kernel computes ReLU and sigmoid; a module whose activation was replaced must not use it.
    m = randomize_(attnzoo.create_attn(name, 16)).eval()
    swap(m)
    x = torch.randn(2, 16, 5, 6)
    with torch.no_grad():
        assert m.fused_apply(fused._state["module"], x) is None
    torch.testing.assert_close(*fused_then_pytorch(lambda: m(x)))


@pytest.mark.parametrize("attn", ["cbam", "ha_soft", "se"])
def test_channels_last_models_take_the_kernels_or_fall_back(kernels, attn):
    # a channels_last model holds its 7×7 / 3×3 conv weights in another layout than the kernels read
    model = randomize_(attnzoo.create_model("cifar_resnet8", attn=attn, num_classes=10)).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            return model(x)

    torch.testing.assert_close(*fused_then_pytorch(run), rtol=1e-4, atol=1e-4)


def test_channels_last_resnet50_cbam_as_reported(kernels):
    model = attnzoo.create_model("resnet50", attn="cbam").eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 32, 32)

    def run():
        with torch.inference_mode():
            return model(x)

    torch.testing.assert_close(*fused_then_pytorch(run), rtol=1e-4, atol=1e-4)

"""The optional fused CPU kernels compute what the PyTorch path computes."""

import shutil

import pytest
import torch

import attnzoo
from attnzoo.layers import fused
from tests.conftest import randomize_

pytestmark = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler to build the kernels")

FUSED = [("cbam", {}), ("cbam", {"variant": "official"}), ("cbam_channel", {}), ("cbam_spatial", {}),
         ("cbam_spatial", {"variant": "official"}), ("ha_soft", {})]


@pytest.fixture(scope="module")
def kernels():
    assert fused.enable(), f"fused kernels failed to build: {fused._state['error']}"
    yield
    fused.enable(False)


@pytest.mark.parametrize("name, options", FUSED)
@pytest.mark.parametrize("shape", [(2, 16, 9, 7), (1, 32, 1, 1), (3, 64, 33, 31)])
def test_fused_equals_pytorch_path(kernels, name, options, shape):
    m = randomize_(attnzoo.create_attn(name, shape[1], **options)).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        got = m(x)
        fused.enable(False)
        expected = m(x)
        fused.enable(True)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


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
        m(x)
    assert calls == ["pool_spatial", "pool_channels", "scale"]
    calls.clear()
    seen = []
    handle = m.spatial.gate.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        m(x)  # a hook on the spatial gate: that half runs in PyTorch, the channel half stays fused
    handle.remove()
    assert seen == [(2, 1, 5, 5)]
    assert sorted(calls) == ["pool_spatial", "scale"]


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
    got = fused._state["module"].rank1_sigmoid_scale(x, s, u, v)
    t = (s.double()[:, None, :] * u.double()[:, :, None] + v.double()[None, :, None]).clamp_min(0)
    expected = x.double() * torch.sigmoid(t).view(n, c, h, w)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-7)

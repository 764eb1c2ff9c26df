import pytest
import torch
import torch.nn.functional as F

from attnzoo.layers import CBAM, CBAMChannel, CBAMSpatial
from tests.conftest import randomize_


def _capture_gate(module, x):
    seen = []
    handle = module.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))
    module(x)
    handle.remove()
    return seen[0]


def test_channel_gate_is_global_and_invariant_to_permuting_pixels():
    m = CBAMChannel(32, reduction=4)
    x = torch.randn(2, 32, 7, 5)
    xp = x.flatten(2)[:, :, torch.randperm(35)].view_as(x)
    g, gp = _capture_gate(m, x), _capture_gate(m, xp)
    assert g.shape == (2, 32)  # one weight per channel
    torch.testing.assert_close(g, gp)


def test_channel_gate_uses_one_shared_mlp_on_avg_and_max():
    m = CBAMChannel(8, reduction=2, min_hidden=1)
    x = torch.randn(3, 8, 4, 4)
    avg, mx = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    expected = x * torch.sigmoid(m.mlp(avg) + m.mlp(mx))
    torch.testing.assert_close(m(x), expected)


def test_channel_gate_sees_a_change_anywhere_in_the_image():
    # The seed's MaxPool2d(1)/AvgPool2d(1) "channel attention" is per pixel: a change in one
    # pixel cannot change the gate at another. A global gate must react.
    m = CBAMChannel(8, reduction=2, min_hidden=1)
    x = torch.randn(1, 8, 6, 6)
    x2 = x.clone()
    x2[0, :, 0, 0] += 10.0
    assert not torch.allclose(_capture_gate(m, x), _capture_gate(m, x2))


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_spatial_gate_matches_equation(variant):
    m = CBAMSpatial(6, kernel_size=3, variant=variant).eval()
    x = torch.randn(2, 6, 5, 4)
    mean, mx = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
    maps = torch.cat([mx, mean] if variant == "official" else [mean, mx], dim=1)
    logits = F.conv2d(maps, m.conv.weight, m.conv.bias, padding=1)
    if variant == "official":
        logits = m.norm(logits)
    torch.testing.assert_close(m(x), x * torch.sigmoid(logits))


def test_official_variant_starts_at_one_half():
    m = CBAMSpatial(6, variant="official").eval()
    gate = _capture_gate(m, torch.randn(2, 6, 5, 5))
    assert gate.shape == (2, 1, 5, 5)
    torch.testing.assert_close(gate, torch.full_like(gate, 0.5))


def test_cbam_is_channel_then_spatial():
    m = CBAM(16, reduction=4)
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(m(x), m.spatial(m.channel(x)))
    # default spatial gate (authors' code): bias-free 2->1 7×7 conv (98) + BatchNorm2d(1) (2)
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in m.channel.parameters()) + 100
    paper = CBAM(16, reduction=4, variant="paper")  # conv with bias, no norm
    assert sum(p.numel() for p in paper.parameters()) == sum(p.numel() for p in paper.channel.parameters()) + 99


@pytest.mark.parametrize("pools", ["avg", "max"])
def test_channel_pooling_ablation(pools):
    m = randomize_(CBAMChannel(16, reduction=4, pools=pools))
    x = torch.randn(2, 16, 5, 3)
    desc = x.mean((2, 3)) if pools == "avg" else x.amax((2, 3))
    fc1, _, fc2 = m.mlp
    gate = torch.sigmoid(F.linear(torch.relu(F.linear(desc, fc1.weight.flatten(1), fc1.bias)), fc2.weight.flatten(1), fc2.bias))
    torch.testing.assert_close(m(x), x * gate[:, :, None, None])
    with pytest.raises(ValueError, match="CBAMChannel: pools='mean': expected one of avg\\+max, avg, max"):
        CBAMChannel(16, pools="mean")


@pytest.mark.parametrize("kwargs, match", [({"kernel_size": 4}, "kernel_size"), ({"variant": "x"}, "variant")])
def test_spatial_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CBAMSpatial(8, **kwargs)


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_training_path_keeps_one_copy_and_equals_the_equation(variant):
    from attnzoo.bench.memory import saved_activation_bytes

    m = randomize_(CBAM(16, reduction=4, variant=variant)).double().train()
    x = torch.randn(3, 16, 6, 5, dtype=torch.float64, requires_grad=True)

    def plain(x):  # the equation with autograd's own ops: x' = x ⊙ Mc, y = x' ⊙ Ms(x')
        return m.spatial(m.channel(x))

    y, expected = m(x), plain(x)
    torch.testing.assert_close(y, expected)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *m.parameters()], g)
    want = torch.autograd.grad(expected, [x, *m.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda t: m(t), (x,), eps=1e-6, atol=1e-5)
    xf = torch.randn(4, 64, 16, 16, requires_grad=True)
    mf = CBAM(64).train()
    lean, full = saved_activation_bytes(lambda: mf(xf)), saved_activation_bytes(lambda: plain_f(mf, xf))
    assert lean <= 1.2 * xf.numel() * 4 < full  # one copy of the input (plus small gates), where autograd keeps two


def plain_f(m, x):
    return m.spatial(m.channel(x))

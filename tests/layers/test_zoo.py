"""Equation-level checks of the breadth modules (eca, ese, gc, coord, bam, simam, triplet, ge, sge, sk, splat)."""

import math

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.layers import (
    BAM,
    ECA,
    CoordAttention,
    EffectiveSqueezeExcite,
    GatherExcite,
    GlobalContext,
    SelectiveKernelConv,
    SimAM,
    SpatialGroupEnhance,
    SplitAttentionConv,
    TripletAttention,
)
from attnzoo.layers.eca import eca_kernel_size
from tests.conftest import randomize_


@pytest.mark.parametrize("channels, k", [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_eca_adaptive_kernel(channels, k):
    t = int(abs((math.log2(channels) + 1) / 2))
    assert eca_kernel_size(channels) == (t if t % 2 else t + 1) == k
    assert ECA(channels).conv.weight.numel() == k


def test_eca_resnet50_parameter_count():
    assert attnzoo.count_params(attnzoo.create_model("resnet50", attn="eca")) == 25_557_118


def test_eca_equation():
    m = randomize_(ECA(16, kernel_size=3))
    x = torch.randn(2, 16, 4, 5)
    w = m.conv.weight.view(3)
    p = F.pad(x.mean((2, 3)), (1, 1))
    logits = torch.stack([w[0] * p[:, i] + w[1] * p[:, i + 1] + w[2] * p[:, i + 2] for i in range(16)], 1)
    torch.testing.assert_close(m(x), x * torch.sigmoid(logits)[:, :, None, None])


def test_ese_equation_and_params():
    m = randomize_(EffectiveSqueezeExcite(16))
    assert attnzoo.count_params(m) == 16 * 16 + 16
    x = torch.randn(2, 16, 3, 3)
    z = F.conv2d(x.mean((2, 3), keepdim=True), m.fc.weight, m.fc.bias)
    torch.testing.assert_close(m(x), x * (F.relu6(z + 3) / 6))


def test_gc_starts_as_identity_and_matches_equation():
    m = GlobalContext(16)
    x = torch.randn(2, 16, 5, 4)
    torch.testing.assert_close(m(x), x)
    randomize_(m)
    alpha = torch.softmax(F.conv2d(x, m.attn_logits.weight, m.attn_logits.bias).flatten(1), 1)  # (N, HW)
    context = (x.flatten(2) * alpha[:, None]).sum(2)[:, :, None, None]
    t = m.fc2(F.relu(m.norm(m.fc1(context))))
    torch.testing.assert_close(m(x), x + t)


def test_coord_gates_factor_over_rows_and_columns():
    m = randomize_(CoordAttention(16)).eval()
    x = torch.randn(2, 16, 5, 7)
    seen = []
    m.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))
    y = m(x)
    g_h, g_w = seen[0].split([5, 7], dim=2)  # (N, C, 5, 1), (N, C, 7, 1)
    torch.testing.assert_close(y, x * g_h * g_w.transpose(2, 3))
    # rank-1 per channel: the gate y / x factors as an outer product
    ratio = (y / x)[0, 0]
    torch.testing.assert_close(ratio, g_h[0, 0] @ g_w[0, 0].T)


@pytest.mark.parametrize("combine", ["sum", "product"])
def test_bam_equation(combine):
    m = randomize_(BAM(32, combine=combine)).eval()
    x = torch.randn(2, 32, 6, 6)
    mc = m.channel(x.mean((2, 3)))[:, :, None, None]
    ms = m.spatial(x)
    att = torch.sigmoid(mc + ms if combine == "sum" else mc * ms)
    torch.testing.assert_close(m(x), x * (1 + att))


def test_bam_sits_between_stages():
    model = attnzoo.create_model("resnet50", attn="bam")
    assert list(model.stage_attn) == ["layer1", "layer2", "layer3"]
    assert all(b.attn is None for s in model.stages() for b in s)
    # BAM-ResNet-50 has 25.92M parameters in the paper (Table 4)
    assert abs(attnzoo.count_params(model) / 1e6 - 25.92) < 0.01


def test_simam_equation_and_no_parameters():
    m = SimAM(8)
    assert attnzoo.count_params(m) == 0
    x = torch.randn(2, 8, 4, 3)
    n = 11
    d = (x - x.mean((2, 3), keepdim=True)) ** 2
    e_inv = d / (4 * (d.sum((2, 3), keepdim=True) / n + 1e-4)) + 0.5
    torch.testing.assert_close(m(x), x * torch.sigmoid(e_inv))
    one = torch.randn(1, 8, 1, 1)
    torch.testing.assert_close(m(one), one * torch.sigmoid(torch.tensor(0.5)))


def test_triplet_equation():
    m = randomize_(TripletAttention(8, kernel_size=3)).eval()
    x = torch.randn(2, 8, 5, 6)

    def gate(g, t):
        pooled = torch.cat([t.amax(1, keepdim=True), t.mean(1, keepdim=True)], 1)
        return torch.sigmoid(g.norm(F.conv2d(pooled, g.conv.weight, padding=1)))

    xc = x.permute(0, 2, 1, 3)
    xw = x.permute(0, 3, 2, 1)
    expected = ((xc * gate(m.cw, xc)).permute(0, 2, 1, 3) + (xw * gate(m.hc, xw)).permute(0, 3, 2, 1) + x * gate(m.hw, x)) / 3
    torch.testing.assert_close(m(x), expected)
    assert attnzoo.count_params(m) == 3 * (2 * 9 + 2)


@pytest.mark.parametrize(
    "kwargs", [{}, {"extent": 2}, {"extent": 4}, {"extent": 2, "extra_params": True}, {"extent": 8, "extra_params": True, "use_mlp": True},
               {"extent": 0, "extra_params": True, "feat_size": 8}, {"use_mlp": True}]
)
def test_gather_excite_builds_and_runs_with_every_gather_option(kwargs):
    m = GatherExcite(16, **kwargs).eval()
    x = torch.randn(2, 16, 8, 8)
    assert m(x).shape == x.shape


def test_gather_excite_global_is_se_without_mlp():
    m = GatherExcite(16)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(m(x), x * torch.sigmoid(x.mean((2, 3), keepdim=True)))


def test_gather_excite_extent_pools_local_windows():
    m = GatherExcite(4, extent=2)
    x = torch.randn(1, 4, 8, 8)
    # 3×3 windows at stride 2 centred on rows/columns 0, 2, 4, 6: four per side, all inside the map
    g = torch.stack([torch.stack([x[:, :, max(0, i - 1):i + 2, max(0, j - 1):j + 2].mean((2, 3)) for j in (0, 2, 4, 6)], -1)
                     for i in (0, 2, 4, 6)], -2)
    assert g.shape == (1, 4, 4, 4)
    torch.testing.assert_close(m(x), x * torch.sigmoid(F.interpolate(g, size=(8, 8), mode="nearest")))


def test_gather_excite_bad_options():
    with pytest.raises(ValueError, match="needs feat_size"):
        GatherExcite(8, extra_params=True)
    with pytest.raises(ValueError, match="built for 8×8"):
        GatherExcite(8, extra_params=True, feat_size=8)(torch.randn(1, 8, 4, 4))


def test_sge_starts_as_constant_gate_and_matches_equation():
    m = SpatialGroupEnhance(16, groups=4)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(m(x), x * torch.sigmoid(torch.tensor(1.0)))  # γ = 0, β = 1
    randomize_(m)
    xg = x.view(8, 4, 5, 5)
    t = (xg * xg.mean((2, 3), keepdim=True)).sum(1).view(2, 4, 25)
    t = (t - t.mean(2, keepdim=True)) / (t.std(2, keepdim=True) + 1e-5)
    a = t.view(2, 4, 5, 5) * m.weight + m.bias
    torch.testing.assert_close(m(x), (xg * torch.sigmoid(a).view(8, 1, 5, 5)).view_as(x))
    assert SpatialGroupEnhance(48, groups=64, min_group_channels=1).groups == 48
    assert SpatialGroupEnhance(100, groups=64, min_group_channels=1).groups == 50


@pytest.mark.parametrize("channels, groups", [(256, 64), (2048, 64), (64, 16), (32, 8), (16, 4), (48, 12), (100, 25), (3, 1)])
def test_sge_groups_hold_at_least_four_channels_by_default(channels, groups):
    # The paper's G = 64 at its widths; narrow layers get fewer groups, never one channel per group.
    assert SpatialGroupEnhance(channels).groups == groups


def test_sge_bad_groups_are_named():
    with pytest.raises(ValueError, match="SpatialGroupEnhance: min_group_channels=0: expected an integer ≥ 1"):
        SpatialGroupEnhance(16, min_group_channels=0)


def test_sk_equation():
    m = randomize_(SelectiveKernelConv(16, groups=4, min_hidden=8)).eval()
    x = torch.randn(2, 16, 6, 6)
    u = [p(x) for p in m.paths]
    z = m.fc(sum(u).mean((2, 3), keepdim=True))
    a = torch.softmax(m.fc_select(z).view(2, 2, 16, 1, 1), dim=1)
    torch.testing.assert_close(m(x), a[:, 0] * u[0] + a[:, 1] * u[1])
    assert m.paths[1][0].dilation == (2, 2)


def test_splat_equation_and_avd():
    m = randomize_(SplitAttentionConv(16, min_hidden=8)).eval()
    x = torch.randn(2, 16, 6, 6)
    u = m.act0(m.bn0(m.conv(x)))
    s1, s2 = u[:, :16], u[:, 16:]
    z = m.act1(m.bn1(m.fc1((s1 + s2).mean((2, 3), keepdim=True))))
    a = torch.softmax(m.fc2(z).view(2, 2, 16, 1, 1), dim=1)
    torch.testing.assert_close(m(x), a[:, 0] * s1 + a[:, 1] * s2)
    down = SplitAttentionConv(16, stride=2).eval()
    assert down.conv.stride == (1, 1) and down(x).shape == (2, 16, 3, 3)


@pytest.mark.parametrize("name, expected, paper", [("sknet50", 27_479_784, 27.5e6), ("resnest50", 27_483_240, 27.5e6), ("resnext50_32x4d", 25_028_904, 25.0e6)])
def test_conv_replacement_models_match_papers(name, expected, paper):
    n = attnzoo.count_params(attnzoo.create_model(name))
    assert n == expected and abs(n - paper) / paper < 0.01


def test_conv_option_through_create_model():
    model = attnzoo.create_model("resnet50", conv="splat", conv_options={"radix": 4}, num_classes=10)
    assert isinstance(model.layer1[0].conv2, SplitAttentionConv) and model.layer1[0].conv2.radix == 4
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown conv module 'skk'"):
        attnzoo.create_model("resnet50", conv="skk")
    with pytest.raises(ValueError, match="BasicBlock supports only"):
        attnzoo.create_model("resnet18", conv="sk")


def test_bam_official_code_form():
    # The authors' code: no BatchNorm at the end of either branch, gate 1 + σ(Mc · Ms).
    from attnzoo.layers import BAM

    paper, official = BAM(32), BAM(32, combine="product", final_norm=False)
    norms = lambda m: sum(isinstance(x, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for x in m.modules())  # noqa: E731
    assert norms(paper) - norms(official) == 2
    assert attnzoo.count_params(paper) - attnzoo.count_params(official) == 2 * 32 + 2


def test_source_matching_options():
    from attnzoo.layers import CoordAttention, GlobalContext, NonLocal2d

    x = torch.randn(2, 16, 5, 4)
    gc = GlobalContext(16, fuse="scale", reduction=8, min_hidden=1, ln_eps=1e-6)
    assert gc.norm.eps == 1e-6 and gc.fc1.out_channels == 2 and not gc.identity_at_init
    w = torch.softmax(gc.attn_logits(x).flatten(1), 1)
    context = (x.flatten(2) * w[:, None]).sum(-1)[:, :, None, None]
    torch.testing.assert_close(gc(x), x * torch.sigmoid(gc.fc2(gc.act(gc.norm(gc.fc1(context))))))
    nl = randomize_(NonLocal2d(16, reduction=8, subsample=False, scale_logits=True))
    theta, phi, g = (m(x).flatten(2) for m in (nl.theta, nl.phi, nl.g))
    attn = torch.softmax(theta.transpose(1, 2) @ phi / 16**0.5, -1)  # timm: logits · C^-½
    y = (g @ attn.transpose(1, 2)).view(2, -1, 5, 4)
    torch.testing.assert_close(nl(x), x + nl.out_norm(nl.out_conv(y)))
    assert all(c.bias is None for c in (CoordAttention(16, bias=False).conv1, CoordAttention(16, bias=False).conv_h))

"""Equation-level checks of the second wave (issue 17): each module against a reference built by hand
from its paper's equations, parameter counts against timm's (read with ../shared/tools/peer-venv.sh,
timm 1.0.31) and against the papers' model sizes."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.layers import (
    BilinearAttentionalTransform,
    BottleneckAttention,
    CircularECA,
    CrissCrossAttention,
    DANetChannelAttention,
    DANetPositionAttention,
    DoubleAttention,
    DualAttention,
    ECAM,
    EfficientLocalAttention,
    EfficientMultiScaleAttention,
    GlobalContext,
    GlobalContextScale,
    HaloAttention,
    LambdaLayer,
    LightCBAM,
    PolarizedSelfAttention,
    ShuffleAttention,
    SimpleCoordAttention,
    StripAttention,
)
from tests.conftest import randomize_

# Counts of timm 1.0.31's modules at C = 256 with default options (timm's feat_size=16 for
# BottleneckAttn; r = 9 for LambdaLayer), and ours with the options that build the same thing.
TIMM_COUNTS = [
    ("ecam", {"bias": True}, 225), ("ceca", {}, 5), ("gca", {}, 16_993), ("lcbam", {}, 8_243), ("scoord", {}, 31_272),
    ("strip", {}, 1_536), ("ela", {"variant": "timm"}, 4_608), ("bat", {}, 40_704), ("bottleneck", {}, 200_576),
]


@pytest.mark.parametrize("name, options, timm_count", TIMM_COUNTS)
def test_parameter_counts_match_timm(name, options, timm_count):
    assert attnzoo.count_params(attnzoo.layers.create_module(name, 256, **options)) == timm_count


def test_parameter_count_differences_from_timm_are_the_documented_ones():
    # HaloAttn: timm's relative tables have 2(b + 2s) − 1 = 27 rows per axis, 21 of them reachable
    # (measured: 21 rows get a gradient); 2 axes × 6 rows × 32 channels = 384 parameters.
    assert attnzoo.count_params(attnzoo.create_conv("halo", 256)) == 198_336 - 2 * 6 * 32
    # LambdaLayer: timm's lambda convolution has a bias of k = 16 values, the paper's has none.
    assert attnzoo.count_params(attnzoo.create_conv("lambda", 256, radius=9)) == 38_432 - 16


@pytest.mark.parametrize("name, expected, paper", [("botnet50", 20_859_176, 20.8e6), ("lambda_resnet50", 14_995_592, 15.0e6)])
def test_models_match_published_sizes(name, expected, paper):
    n = attnzoo.count_params(attnzoo.create_model(name))
    assert n == expected and abs(n - paper) / paper < 0.003


def test_conv_replacements_sit_where_the_papers_put_them():
    bot = attnzoo.create_model("botnet50", num_classes=10)
    assert [type(b.conv2).__name__ for b in bot.layer4] == ["BottleneckAttention"] * 3
    assert all(isinstance(b.conv2, torch.nn.Conv2d) for b in bot.layer3)
    assert isinstance(bot.layer4[0].bn2, torch.nn.BatchNorm2d)  # MHSA keeps the block's BN + ReLU
    lam = attnzoo.create_model("lambda_resnet50", conv_stages=[3, 4], num_classes=10)
    assert isinstance(lam.layer2[0].conv2, torch.nn.Conv2d) and isinstance(lam.layer3[0].conv2, LambdaLayer)
    halo = attnzoo.create_model("resnet50", conv="halo", conv_stages=[3, 4], num_classes=10).eval()
    assert isinstance(halo.layer3[0].conv2, HaloAttention) and halo(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match=r"conv_stages must be stage numbers in 1..4, got \[5\]"):
        attnzoo.create_model("resnet50", conv="halo", conv_stages=[5])


@pytest.mark.parametrize("name", ["danet", "danet_position", "danet_channel", "ccnet"])
def test_heads_sit_after_the_last_stage(name):
    model = attnzoo.create_model("cifar_resnet20", attn=name, num_classes=10)
    assert list(model.stage_attn) == ["layer3"] and all(b.attn is None for b in model.layer3)
    x = torch.randn(2, 3, 32, 32)
    plain = attnzoo.create_model("cifar_resnet20", num_classes=10)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "stage_attn" not in k})
    with torch.no_grad():  # every head starts as the identity
        torch.testing.assert_close(model.eval()(x), plain.eval()(x))


# --- channel and strip gates -------------------------------------------------------------------

def test_ecam_equation():
    m = randomize_(ECAM(16, kernel_size=3, reduction=4, round_to=2, bias=True))
    x = torch.randn(2, 16, 5, 4)
    d = x.mean((2, 3))  # (N, C)
    w1, b1 = m.conv1.weight.view(-1), m.conv1.bias  # (m,)
    h = F.relu(d[:, None, :] * w1[None, :, None] + b1[None, :, None])  # (N, m, C)
    hp = F.pad(h, (1, 1))
    w2 = m.conv2.weight[0]  # (m, 3)
    logits = torch.stack([(w2 * hp[:, :, i:i + 3]).sum((1, 2)) for i in range(16)], 1) + m.conv2.bias
    torch.testing.assert_close(m(x), x * torch.sigmoid(logits)[:, :, None, None])
    assert ECAM(16).conv1.bias is None and ECAM(16).conv2.bias is None  # the default: no biases
    unbiased = randomize_(ECAM(16, kernel_size=3, reduction=4, round_to=2))
    h = F.pad(F.relu(d[:, None, :] * unbiased.conv1.weight.view(-1)[None, :, None]), (1, 1))
    logits = torch.stack([(unbiased.conv2.weight[0] * h[:, :, i:i + 3]).sum((1, 2)) for i in range(16)], 1)
    torch.testing.assert_close(unbiased(x), x * torch.sigmoid(logits)[:, :, None, None])
    both = randomize_(ECAM(16, kernel_size=3, reduction=4, round_to=2, pools="avg+max"))
    mlp = lambda v: both.conv2(F.relu(both.conv1(v[:, None, :])))[:, 0]  # noqa: E731
    torch.testing.assert_close(both(x), x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None])


def test_ceca_wraps_around_the_channel_axis():
    m = randomize_(CircularECA(16, kernel_size=3))
    x = torch.randn(2, 16, 3, 3)
    d, w = x.mean((2, 3)), m.conv.weight.view(3)
    logits = torch.stack([w[0] * d[:, (i - 1) % 16] + w[1] * d[:, i] + w[2] * d[:, (i + 1) % 16] for i in range(16)], 1)
    torch.testing.assert_close(m(x), x * torch.sigmoid(logits)[:, :, None, None])
    # The first channel's gate depends on the last channel: with zero padding (ECA) it does not.
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(m(x2)[:, 0], m(x)[:, 0])
    eca = randomize_(attnzoo.create_attn("eca", 16, kernel_size=3))
    torch.testing.assert_close(eca(x2)[:, 0], eca(x)[:, 0])


def test_gca_is_global_context_with_a_sigmoid_scale():
    m = randomize_(GlobalContextScale(16, reduction=4))
    add = GlobalContext(16, reduction=4, min_hidden=1, ln_eps=1e-6)
    add.load_state_dict(m.state_dict())
    x = torch.randn(2, 16, 5, 3)
    t = add(x) - x  # the additive form's transform
    torch.testing.assert_close(m(x), x * torch.sigmoid(t))
    assert not m.identity_at_init and GlobalContext(16).identity_at_init


def test_lcbam_equation():
    m = randomize_(LightCBAM(32, reduction=4)).eval()
    x = torch.randn(2, 32, 6, 5)
    ch = m.channel
    pooled = (0.5 * x.mean((2, 3)) + 0.5 * x.amax((2, 3)))[:, :, None, None]
    x1 = x * torch.sigmoid(ch.fc2(F.relu(ch.fc1(pooled))))
    sp = m.spatial
    ms = torch.sigmoid(sp.norm(sp.conv(0.5 * x1.mean(1, keepdim=True) + 0.5 * x1.amax(1, keepdim=True))))
    torch.testing.assert_close(m(x), x1 * ms)


def test_scoord_equation():
    m = randomize_(SimpleCoordAttention(16, reduction=4, round_to=4))
    x = torch.randn(2, 16, 5, 3)
    f = lambda v: m.fc1(v).mul(torch.sigmoid(m.fc1(v)))  # noqa: E731  (SiLU)
    logits = torch.empty(2, 16, 5, 3)
    for i, j in itertools.product(range(5), range(3)):
        logits[:, :, i, j] = m.fc_h(f(x[:, :, i, :].mean(-1))) + m.fc_w(f(x[:, :, :, j].mean(-1)))
    torch.testing.assert_close(m(x), x * torch.sigmoid(logits))


def test_strip_equation_and_parameter_free_form():
    m = randomize_(StripAttention(8))
    x = torch.randn(2, 8, 5, 4)
    rows, cols = x.mean(3, keepdim=True), x.mean(2, keepdim=True)
    a_h = F.conv2d(rows, m.conv_h.weight, padding=(1, 0), groups=8)
    a_w = F.conv2d(cols, m.conv_w.weight, padding=(0, 1), groups=8)
    torch.testing.assert_close(m(x), x * torch.sigmoid(a_h + a_w))
    bare = StripAttention(8, use_conv=False)
    assert attnzoo.count_params(bare) == 0
    torch.testing.assert_close(bare(x), x * torch.sigmoid(rows + cols))


@pytest.mark.parametrize("variant", ["paper", "timm"])
def test_ela_gates_factor_over_rows_and_columns_on_non_square_maps(variant):
    m = randomize_(EfficientLocalAttention(32, variant=variant)).eval()
    x = torch.randn(2, 32, 7, 4)  # H ≠ W: the copy that reshapes the column gate to (N, C, W, 1) fails here
    i_w = 0 if variant == "paper" else 1
    act = (lambda t: t) if variant == "paper" else F.silu  # noqa: E731
    g_h = torch.sigmoid(act(m.norms[0](m.convs[0](x.mean(3)))))
    g_w = torch.sigmoid(act(m.norms[i_w](m.convs[i_w](x.mean(2)))))
    torch.testing.assert_close(m(x), x * g_h[:, :, :, None] * g_w[:, :, None, :])
    assert m.norms[0].num_groups == (16 if variant == "paper" else 1)
    assert EfficientLocalAttention(24).norms[0].num_groups == 12  # the largest divisor of C up to 16


# --- grouped, multi-scale and polarized ---------------------------------------------------------

@pytest.mark.parametrize("size", [(7, 7), (9, 5)])  # a multiple of the block size, and padded
def test_bat_is_a_kronecker_bilinear_transform(size):
    m = randomize_(BilinearAttentionalTransform(32, block_size=3, groups=2, round_to=4)).eval()
    x = torch.randn(2, 32, *size)
    u = m.reduce(x)
    p, q = m.transforms(u)
    assert torch.allclose(p.sum(3), torch.ones(())) and torch.allclose(q.sum(2), torch.ones(()))
    h, w = size
    t_h, t_w = -(-h // 3), -(-w // 3)
    padded = F.pad(u, (0, 3 * t_w - w, 0, 3 * t_h - h))
    v = torch.empty_like(padded)
    per_group = u.shape[1] // 2
    for n, c in itertools.product(range(2), range(u.shape[1])):
        g = c // per_group
        v[n, c] = torch.kron(p[n, g], torch.eye(t_h)) @ padded[n, c] @ torch.kron(q[n, g], torch.eye(t_w))
    torch.testing.assert_close(m(x), x + m.expand(m.mix(v[:, :, :h, :w])))


def test_shuffle_attention_equation():
    m = randomize_(ShuffleAttention(16, groups=2))
    assert m.groups == 2 and m.split == (4, 4) and attnzoo.count_params(m) == 3 * 16 // 2
    x = torch.randn(2, 16, 5, 3)
    out = torch.empty_like(x)
    for n, g in itertools.product(range(2), range(2)):
        xg = x[n, 8 * g:8 * g + 8]
        x1, x2 = xg[:4], xg[4:]
        s1 = torch.sigmoid(m.channel_weight[0] * x1.mean((1, 2), keepdim=True) + m.channel_bias[0])
        norm = (x2 - x2.mean((1, 2), keepdim=True)) / torch.sqrt(x2.var((1, 2), unbiased=False, keepdim=True) + 1e-5)
        norm = norm * m.norm.weight[:, None, None] + m.norm.bias[:, None, None]
        s2 = torch.sigmoid(m.spatial_weight[0] * norm + m.spatial_bias[0])
        out[n, 8 * g:8 * g + 8] = torch.cat([x1 * s1, x2 * s2])
    shuffled = out.view(2, 2, 8, 5, 3).transpose(1, 2).reshape(2, 16, 5, 3)  # channel shuffle, 2 groups
    torch.testing.assert_close(m(x), shuffled)
    fresh = ShuffleAttention(256)
    assert fresh.groups == 64 and attnzoo.count_params(fresh) == 12
    torch.testing.assert_close(fresh.gate(fresh.channel_bias), torch.full_like(fresh.channel_bias, torch.sigmoid(torch.tensor(1.0)).item()))


def test_ema_equation():
    m = randomize_(EfficientMultiScaleAttention(16, groups=2))
    x = torch.randn(2, 16, 5, 4)
    out = torch.empty_like(x)
    for n, gi in itertools.product(range(2), range(2)):
        g = x[n:n + 1, 8 * gi:8 * gi + 8]
        f_h = torch.sigmoid(m.conv1x1(g.mean(3, keepdim=True)))  # (1, c, H, 1): the 1×1 conv acts per position
        f_w = torch.sigmoid(m.conv1x1(g.mean(2, keepdim=True)))  # (1, c, 1, W)
        x1 = m.norm(g * f_h * f_w)
        x2 = m.conv3x3(g)
        s = (torch.softmax(x1.mean((2, 3)), 1) @ x2.flatten(2)[0]) + (torch.softmax(x2.mean((2, 3)), 1) @ x1.flatten(2)[0])
        out[n, 8 * gi:8 * gi + 8] = (g * torch.sigmoid(s.view(1, 1, 5, 4)))[0]
    torch.testing.assert_close(m(x), out)
    assert EfficientMultiScaleAttention(12).groups == 6 and attnzoo.count_params(EfficientMultiScaleAttention(256)) == 10_368


@pytest.mark.parametrize("layout", ["parallel", "sequential"])
def test_psa_equations(layout):
    m = randomize_(PolarizedSelfAttention(16, layout=layout))

    def channel_gate(t):
        ch = m.channel
        wq = torch.softmax(ch.query(t).flatten(1), 1)  # (N, HW)
        z = (ch.value(t).flatten(2) * wq[:, None]).sum(-1)  # (N, C/2)
        z = F.linear(z, ch.expand.weight.flatten(1), ch.expand.bias)
        return torch.sigmoid(F.layer_norm(z, (16,), ch.norm.weight, ch.norm.bias))[:, :, None, None]

    def spatial_gate(t):
        sp = m.spatial
        wq = torch.softmax(sp.query(t).mean((2, 3)), 1)  # (N, C/2)
        return torch.sigmoid((sp.value(t) * wq[:, :, None, None]).sum(1, keepdim=True))

    x = torch.randn(2, 16, 5, 4)
    if layout == "parallel":
        expected = x * channel_gate(x) + x * spatial_gate(x)
    else:
        x1 = x * channel_gate(x)
        expected = x1 * spatial_gate(x1)
    torch.testing.assert_close(m(x), expected)
    assert attnzoo.count_params(PolarizedSelfAttention(256)) == 132_481


def test_a2net_gather_distribute_equation_and_identity_at_init():
    x = torch.randn(2, 16, 5, 4)
    fresh = DoubleAttention(16)
    torch.testing.assert_close(fresh(x), x)
    m = randomize_(DoubleAttention(16))
    a = m.features(x).flatten(2)
    b = torch.softmax(m.gather_logits(x).flatten(2), -1)
    v = torch.softmax(m.distribute_logits(x).flatten(2), 1)
    g = torch.einsum("nmp,ndp->nmd", a, b)  # descriptors: attention-weighted pools
    z = torch.einsum("nmd,ndp->nmp", g, v)
    torch.testing.assert_close(m(x), x + m.project(z.view(2, -1, 5, 4)))


# --- attention over positions -------------------------------------------------------------------

def test_danet_position_is_sagan_self_attention():
    m = randomize_(DANetPositionAttention(16))
    sagan = attnzoo.create_attn("self_attn", 16)
    sagan.load_state_dict(m.state_dict())
    x = torch.randn(2, 16, 4, 5)
    torch.testing.assert_close(m(x), sagan(x))


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_danet_channel_equation(variant):
    m = DANetChannelAttention(8, variant=variant)
    x = torch.randn(2, 8, 3, 4)
    torch.testing.assert_close(m(x), x)  # β = 0
    with torch.no_grad():
        m.beta.fill_(0.7)
    a = x.flatten(2)
    energy = a @ a.transpose(1, 2)
    if variant == "official":  # the authors' code, literally
        energy = energy.max(-1, keepdim=True)[0].expand_as(energy) - energy
    expected = x + 0.7 * (torch.softmax(energy, -1) @ a).view_as(x)
    torch.testing.assert_close(m(x), expected)


def test_danet_head_equation():
    m = randomize_(DualAttention(16, reduction=2)).eval()
    x = torch.randn(2, 16, 4, 3)
    p = m.position[2](m.position[1](m.position[0](x)))
    c = m.channel[2](m.channel[1](m.channel[0](x)))
    torch.testing.assert_close(m(x), x + m.project(p + c))
    torch.testing.assert_close(DualAttention(16).eval()(x), x)


def _criss_cross_reference(m: CrissCrossAttention, x: torch.Tensor) -> torch.Tensor:
    """One pass as dense attention over all H·W keys, masked to the query's row and column."""
    n, c, h, w = x.shape
    q, k, v = (conv(x).flatten(2) for conv in (m.query, m.key, m.value))
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    allowed = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])
    logits = (q.transpose(1, 2) @ k).masked_fill(~allowed, float("-inf"))
    return x + m.gamma * (v @ torch.softmax(logits, -1).transpose(1, 2)).view_as(x)


@pytest.mark.parametrize("size", [(5, 4), (1, 3), (1, 1)])
def test_criss_cross_attention_is_row_and_column_attention_applied_recurrently(size):
    m = randomize_(CrissCrossAttention(16, recurrence=2))
    x = torch.randn(2, 16, *size)
    torch.testing.assert_close(m(x), _criss_cross_reference(m, _criss_cross_reference(m, x)))
    torch.testing.assert_close(CrissCrossAttention(16)(x), x)  # γ = 0


def _relative_reference(q, k, v, table_h, table_w, key_rows, key_cols, query_rows, query_cols, allowed=None):
    """softmax_keys(q·k + q·(r^h[key_row − query_row] + r^w[key_col − query_col])) v for one head,
    keys outside ``allowed`` masked. q: (Q, d), k, v: (K, d); rows/cols: absolute positions."""
    ch, cw = (table_h.shape[0] - 1) // 2, (table_w.shape[0] - 1) // 2
    # Offsets beyond the tables only occur for keys that are masked out: clamp them to stay in range.
    r_h = table_h[(key_rows[None, :] - query_rows[:, None] + ch).clamp(0, 2 * ch)]  # (Q, K, d)
    r_w = table_w[(key_cols[None, :] - query_cols[:, None] + cw).clamp(0, 2 * cw)]
    logits = q @ k.T + torch.einsum("qd,qkd->qk", q, r_h + r_w)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.softmax(logits, -1) @ v


def test_bottleneck_attention_matches_the_relative_position_equation():
    m = BottleneckAttention(16, heads=2, feat_size=6)
    x = torch.randn(2, 16, 5, 4)
    qkv = m.qkv(x).view(2, 3, 2, 8, 20)
    rows, cols = torch.arange(5).repeat_interleave(4), torch.arange(4).repeat(5)
    expected = torch.empty(2, 16, 20)
    for n, head in itertools.product(range(2), range(2)):
        q, k, v = (qkv[n, i, head].T for i in range(3))  # (HW, d) each
        out = _relative_reference(q * 8**-0.5, k, v, m.pos.height, m.pos.width, rows, cols, rows, cols)
        expected[n, 8 * head:8 * head + 8] = out.T
    torch.testing.assert_close(m(x), expected.view(2, 16, 5, 4))
    with pytest.raises(ValueError, match=r"input of 7×4 exceeds feat_size=6; build it with feat_size >= 7"):
        m(torch.randn(1, 16, 7, 4))
    assert BottleneckAttention(16, stride=2, feat_size=6)(x).shape == (2, 16, 3, 2)


def test_bottleneck_attention_refuses_a_matrix_too_large_before_allocating():
    m = BottleneckAttention(8, heads=2, feat_size=64, max_attn_elements=10_000)
    with pytest.raises(ValueError, match=r"attention over 3200 query × 1600 key positions needs 5120000 logits per image, above max_attn_elements=10000"):
        m(torch.randn(1, 8, 40, 40))
    sa = DANetPositionAttention(8, max_attn_elements=10_000)
    with pytest.raises(ValueError, match=r"needs 2560000 logits per image"):
        sa(torch.randn(1, 8, 40, 40))


@pytest.mark.parametrize("size", [(8, 8), (7, 5)])
def test_halo_attention_is_windowed_attention_with_relative_positions(size):
    m = HaloAttention(8, heads=2, block_size=4, halo_size=1)
    h, w = size
    x = torch.randn(1, 8, h, w)
    q = (m.q(x) * 4**-0.5).view(2, 4, h * w)
    k, v = m.kv(x).view(2, 2, 4, h * w).unbind(0)
    rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    # A query in block (bi, bj) sees the keys of rows [4·bi − 1, 4·bi + 5) and columns likewise.
    top, left = (rows // 4) * 4 - 1, (cols // 4) * 4 - 1
    allowed = ((rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + 6)
               & (cols[None, :] >= left[:, None]) & (cols[None, :] < left[:, None] + 6))
    expected = torch.stack([
        _relative_reference(q[i].T, k[i].T, v[i].T, m.pos.height, m.pos.width, rows, cols, rows, cols, allowed).T
        for i in range(2)
    ]).reshape(1, 8, h, w)
    torch.testing.assert_close(m(x), expected)


def test_lambda_layer_equation():
    m = randomize_(LambdaLayer(8, heads=2, key_dim=3, radius=3)).eval()
    n, h, w = 2, 4, 3
    x = torch.randn(n, 8, h, w)
    q, k, v = m.qkv(x).split([6, 3, 4], dim=1)
    q = m.norm_q(q).view(n, 2, 3, h * w)  # (N, heads, k, M)
    v = m.norm_v(v).flatten(2)  # (N, v, M)
    keys = torch.softmax(k.flatten(2), -1)  # (N, k, M)
    content = keys @ v.transpose(1, 2)  # (N, k, v)
    e = m.position.weight[:, 0]  # (k, 3, 3): E[offset] for offsets in [-1, 1]²
    out = torch.zeros(n, 2, 4, h * w)
    for p_i, p_j in itertools.product(range(h), range(w)):
        pos = torch.zeros(n, 3, 4)  # λ^p at this position: Σ_m E[m − n] v_m
        for di, dj in itertools.product((-1, 0, 1), repeat=2):
            if 0 <= p_i + di < h and 0 <= p_j + dj < w:
                pos += e[:, di + 1, dj + 1][None, :, None] * v[:, None, :, (p_i + di) * w + p_j + dj]
        lam = content + pos  # (N, k, v)
        out[:, :, :, p_i * w + p_j] = torch.einsum("nhk,nkv->nhv", q[:, :, :, p_i * w + p_j], lam)
    torch.testing.assert_close(m(x), out.reshape(n, 8, h, w))


@pytest.mark.parametrize("length", [1, 3, 7, 9, 20])
def test_bat_adaptive_max_matches_torch(length):
    # BAT writes adaptive max pooling out, because ONNX has no such operator.
    from attnzoo.layers.bat import _adaptive_max

    t = torch.randn(2, 3, length)
    torch.testing.assert_close(_adaptive_max(t, 7), F.adaptive_max_pool1d(t, 7))

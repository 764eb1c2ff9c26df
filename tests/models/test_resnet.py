import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.layers import AFF, CBAM, SqueezeExcite
from attnzoo.models import BasicBlock, Bottleneck


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("resnet18", {}, 11_689_512),
        ("resnet34", {}, 21_797_672),
        ("resnet50", {}, 25_557_032),
        ("resnet101", {}, 44_549_160),
        ("resnet50", {"attn": "se"}, 28_088_024),
        # CBAM = SE-like channel MLP (28,088,024) + one 2->1 7×7 conv with bias per block (16 × 99)
        ("resnet50", {"attn": "cbam"}, 28_088_024 + 16 * 100),  # spatial gate: 98 conv + 2 BN (authors' code)
        ("resnet50", {"attn": "cbam", "attn_options": {"variant": "paper"}}, 28_088_024 + 16 * 99),
        # AFF/iAFF in stages 3-4 with r = 16, the official ImageNet recipe: README says 30.3M / 35.1M
        ("resnet50", {"fusion": "aff", "fusion_stages": (3, 4), "fusion_options": {"reduction": 16}}, 30_353_960),
        ("resnet50", {"fusion": "iaff", "fusion_stages": (3, 4), "fusion_options": {"reduction": 16}}, 35_150_888),
    ],
)
def test_parameter_counts_with_1000_classes(name, kwargs, expected):
    assert attnzoo.count_params(attnzoo.create_model(name, **kwargs)) == expected


@pytest.mark.parametrize(
    "name, paper_millions, exact",
    [("cifar_resnet20", 0.27, 269_722), ("cifar_resnet32", 0.46, 464_154), ("cifar_resnet56", 0.85, 853_018), ("cifar_resnet110", 1.7, 1_727_962)],
)
def test_cifar_resnets_match_paper(name, paper_millions, exact):
    n = attnzoo.count_params(attnzoo.create_model(name, num_classes=10))
    assert n == exact
    assert abs(n / 1e6 - paper_millions) / paper_millions < 0.02


def test_resnet50_macs_match_the_usual_4_1g():
    macs = attnzoo.count_macs(attnzoo.create_model("resnet50"), (1, 3, 224, 224))
    assert 4.0e9 < macs < 4.2e9


def test_attention_sits_after_last_bn_before_addition():
    model = attnzoo.create_model("resnet50", attn="se", num_classes=10).eval()
    block = model.layer2[1]
    assert isinstance(block.attn, SqueezeExcite) and block.attn.channels == 512
    # An attention that zeroes the residual branch leaves relu(identity): it acts before the sum.
    block.attn = ZeroAttention()
    x = torch.randn(1, 512, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x))
    # ...and it receives bn3's output.
    seen = []
    model.layer2[2].attn.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    bn3_out = []
    model.layer2[2].bn3.register_forward_hook(lambda _m, _i, out: bn3_out.append(out))
    model(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(seen[0], bn3_out[0])


class ZeroAttention(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_fusion_replaces_the_addition():
    model = attnzoo.create_model("resnet18", fusion="aff", fusion_options={"scale": 2.0}, num_classes=10).eval()
    block = model.layer1[0]
    assert isinstance(block.fusion, AFF)
    for branch in block.fusion.attn.branches.values():
        nn.init.zeros_(branch.bn2.weight)
        nn.init.zeros_(branch.bn2.bias)
    # With M = 0.5 and the official ×2 the block must equal the plain addition.
    x = torch.randn(2, 64, 8, 8)
    fused = block(x)
    block.fusion = None
    torch.testing.assert_close(fused, block(x))


def test_stage_restriction():
    model = attnzoo.create_model("resnet50", attn="cbam", attn_stages=[3, 4], fusion="iaff", fusion_stages=[4])
    has_attn = [[b.attn is not None for b in stage] for stage in model.stages()]
    assert has_attn == [[False] * 3, [False] * 4, [True] * 6, [True] * 3]
    has_fusion = [any(b.fusion is not None for b in stage) for stage in model.stages()]
    assert has_fusion == [False, False, False, True]
    assert isinstance(model.layer3[0].attn, CBAM)


@pytest.mark.parametrize("stages", [[0], [5], ["2"]])
def test_bad_stage_numbers(stages):
    with pytest.raises(ValueError, match=r"attn_stages must be stage numbers in 1\.\.4"):
        attnzoo.create_model("resnet18", attn="se", attn_stages=stages)


def test_attn_options_reach_the_module():
    model = attnzoo.create_model("resnet50", attn="se", attn_options={"reduction": 8})
    assert model.layer1[0].attn.fc1.out_channels == 256 // 8


def test_attn_accepts_a_callable():
    model = attnzoo.create_model("cifar_resnet20", attn=lambda c: SqueezeExcite(c, reduction=4), num_classes=10)
    assert model.layer3[0].attn.fc1.out_channels == 16


def test_module_init_is_not_overwritten_by_the_backbone_init():
    model = attnzoo.create_model("cifar_resnet20", attn="nonlocal", num_classes=10)
    assert all(b.attn.out_norm.weight.abs().sum() == 0 for s in model.stages() for b in s)
    model = attnzoo.create_model("cifar_resnet20", attn="self_attn", num_classes=10).eval()
    assert all(b.attn.gamma.item() == 0 for s in model.stages() for b in s)


def test_plain_model_has_no_attention_modules():
    model = attnzoo.create_model("resnet18")
    assert all(b.attn is None and b.fusion is None for s in model.stages() for b in s)


def test_zero_init_residual():
    model = attnzoo.create_model("resnet50", zero_init_residual=True)
    assert all(b.bn3.weight.abs().sum() == 0 for s in model.stages() for b in s if isinstance(b, Bottleneck))
    model = attnzoo.create_model("resnet18", zero_init_residual=True)
    assert all(b.bn2.weight.abs().sum() == 0 for s in model.stages() for b in s if isinstance(b, BasicBlock))


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnet18"])
@pytest.mark.parametrize("attn, fusion", [(None, None), ("cbam", None), (None, "iaff"), ("se", "aff"), ("ha_soft", None), ("self_attn", None)])
def test_forward_backward_with_any_module(name, attn, fusion):
    model = attnzoo.create_model(name, attn=attn, fusion=fusion, num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cifar_shortcut_b_option_and_odd_input():
    model = attnzoo.create_model("cifar_resnet20", shortcut="B", num_classes=10).eval()
    assert model(torch.randn(1, 3, 33, 31)).shape == (1, 10)
    model = attnzoo.create_model("cifar_resnet20", num_classes=10).eval()
    assert model(torch.randn(1, 3, 33, 31)).shape == (1, 10)


def test_options_without_module_rejected():
    with pytest.raises(ValueError, match="attn_options given without attn"):
        attnzoo.create_model("resnet18", attn_options={"reduction": 4})


@pytest.mark.parametrize("attn", [None, "se", "cbam", "bam"])
def test_block_end_is_attention_then_identity_then_relu(attn):
    # The block reads as the paper's figure: out = attn(out); out = out + identity; relu(out).
    block = Bottleneck(64, 16, attn_layer=(lambda c: attnzoo.create_attn(attn, c)) if attn else None)
    out, identity = torch.randn(2, 64, 6, 5), torch.randn(2, 64, 6, 5)
    expected = torch.relu((block.attn(out) if attn else out) + identity)
    torch.testing.assert_close(block.merge(out, identity), expected)
    seen = []
    if attn:
        block.attn.register_forward_hook(lambda _m, _i, o: seen.append(o.shape))
        block.merge(out, identity)
        assert seen == [(2, 64, 6, 5)]


@pytest.mark.parametrize("build", [lambda: attnzoo.create_model("lambda_resnet50"), lambda: attnzoo.create_model("resnet50", conv="lambda")])
def test_lambda_resnets_are_finite_in_eval_mode_at_init_and_after_a_train_pass(build):
    # A lambda layer is quadratic in its input outside batch statistics: without the zero-initialised
    # last BN of each block the eval output grew 1.6, 4.9, 31, ..., 1.4e24, then NaN at layer2.3.
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 96, 96))).all()
        model.train()(torch.randn(2, 3, 96, 96))
        assert torch.isfinite(model.eval()(torch.randn(2, 3, 96, 96))).all()
    assert all(float(b.bn3.weight.detach().abs().max()) == 0 for b in model.layer1)

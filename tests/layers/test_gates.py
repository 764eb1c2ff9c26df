"""The gating modules (``GateModule``): their gates reproduce their forward, and a residual block's
end through one op equals ``relu(m(x) + identity)``, with hooks still seeing what they watch."""

import pytest
import torch

import attnzoo
from attnzoo import ops
from attnzoo.layers._base import GateModule
from tests.conftest import build, randomize_

GATING = [n for n in attnzoo.list_attn() if issubclass(attnzoo.layers.get_attn_class(n), GateModule)]


def test_the_gating_modules_are_the_ones_expected():
    assert GATING == sorted(["cbam", "cbam_channel", "cbam_spatial", "ceca", "eca", "ecam", "ese", "ha_channel", "ha_spatial", "se"])


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", GATING)
def test_gates_reproduce_the_forward(name, train):
    m = randomize_(build(name, 16)).train(train)
    x = torch.randn(2, 16, 6, 5)
    a, b = m.gates(x)
    gated = x * (1 if a is None else a.view(2, 16, 1, 1)) * (1 if b is None else b.view(2, 1, 6, 5))
    torch.testing.assert_close(gated, m(x))


@pytest.mark.parametrize("name", GATING)
def test_block_end_in_one_op_equals_relu_of_the_sum(name):
    m = randomize_(build(name, 16)).double()
    x, identity = (torch.randn(2, 16, 6, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    fused = m.forward_residual(x, identity)
    with ops.use("reference"):
        plain = torch.relu(m(x) + identity)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(plain)
    for a, b in zip(torch.autograd.grad(fused, [x, identity, *m.parameters()], g),
                    torch.autograd.grad(plain, [x, identity, *m.parameters()], g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_a_hook_on_a_gating_module_sees_it_run_at_the_block_end():
    model = attnzoo.create_model("cifar_resnet8", attn="se", num_classes=10).eval()
    seen = []
    model.layer1[0].attn.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    model.layer1[0].relu.register_forward_hook(lambda _m, _i, out: seen.append("relu"))
    model(torch.randn(1, 3, 16, 16))
    assert seen == ["relu", (1, 16, 16, 16), "relu"]  # the block uses its ReLU after bn1 too


def test_hooks_on_cbam_halves_see_them_run():
    m = randomize_(attnzoo.create_attn("cbam", 16)).eval()
    x = torch.randn(2, 16, 5, 5)
    seen = []
    handle = m.channel.register_forward_hook(lambda _m, _i, out: seen.append(out))
    y = m(x)
    handle.remove()
    torch.testing.assert_close(seen[0], x * m.channel.weights(x)[:, :, None, None])
    torch.testing.assert_close(y, m(x))


def test_models_give_the_same_result_through_the_ops_and_the_reference():
    for attn in (None, "se", "cbam", "eca"):
        model = randomize_(attnzoo.create_model("cifar_resnet8", attn=attn, num_classes=10)).double().train()
        x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        y = model(x)
        model.load_state_dict(state)
        with ops.use("reference"):
            ref = model(x)
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)

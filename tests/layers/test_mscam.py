import pytest
import torch

from attnzoo.layers import AFF, IAFF, MSCAM, AddFusion
from tests.conftest import randomize_


def _count(m):
    return sum(p.numel() for p in m.parameters())


def _fix_weights_to_half(mscam: MSCAM) -> None:
    # The last BN of every branch outputs 0 -> logits 0 -> M = sigmoid(0) = 0.5 everywhere.
    for branch in mscam.branches.values():
        torch.nn.init.zeros_(branch.bn2.weight)
        torch.nn.init.zeros_(branch.bn2.bias)


def test_parameter_counts_match_open_aff_at_64_channels():
    assert _count(MSCAM(64)) == 4576
    assert _count(AFF(64)) == 4576
    assert _count(IAFF(64)) == 9152
    assert _count(AddFusion(64)) == 0


def test_mscam_equation_global_plus_local():
    m = randomize_(MSCAM(16)).eval()
    x = torch.randn(2, 16, 5, 3)
    local = m.branches["pixel"](x)
    glob = m.branches["pooled"](x.mean((2, 3), keepdim=True))
    torch.testing.assert_close(m(x), x * torch.sigmoid(local + glob))


def test_global_global_has_no_full_resolution_branch():
    m = randomize_(MSCAM(16, branches="global_global")).eval()
    assert all(b.global_pool for b in m.branches.values())
    x = torch.randn(2, 16, 6, 5)
    w = m.weights(x)
    assert w.shape == (2, 16, 1, 1)  # one weight per channel: nothing runs per pixel
    xp = x.flatten(2)[:, :, torch.randperm(30)].view_as(x)
    torch.testing.assert_close(m.weights(xp), w)


def test_local_local_is_per_pixel():
    m = randomize_(MSCAM(16, branches="local_local")).eval()
    assert not any(b.global_pool for b in m.branches.values())
    x = torch.randn(1, 16, 4, 4)
    x2 = x.clone()
    x2[..., 0, 0] += 5
    # changing one pixel changes only that pixel's weights
    diff = (m.weights(x) - m.weights(x2)).abs().sum(1)[0]
    assert diff[0, 0] > 0 and diff.flatten()[1:].abs().max() == 0


def test_bad_branches_option():
    with pytest.raises(ValueError, match="MSCAM: branches='local_global': expected one of global_global, global_local, local_local"):
        MSCAM(16, branches="local_global")


def test_aff_with_m_fixed_at_half_is_the_mean_or_the_sum():
    x, y = torch.randn(2, 16, 5, 5), torch.randn(2, 16, 5, 5)
    paper = AFF(16).eval()
    _fix_weights_to_half(paper.attn)
    torch.testing.assert_close(paper(x, y), 0.5 * (x + y))
    official = AFF(16, scale=2.0).eval()
    _fix_weights_to_half(official.attn)
    torch.testing.assert_close(official(x, y), x + y)


def test_aff_matches_equation():
    m = randomize_(AFF(16)).eval()
    x, y = torch.randn(2, 16, 4, 6), torch.randn(2, 16, 4, 6)
    w = m.attn.weights(x + y)
    torch.testing.assert_close(m(x, y), w * x + (1 - w) * y)


def test_iaff_matches_equation_with_its_own_second_branches():
    m = randomize_(IAFF(16)).eval()
    x, y = torch.randn(2, 16, 4, 6), torch.randn(2, 16, 4, 6)
    w1 = m.attn1.weights(x + y)
    xi = w1 * x + (1 - w1) * y
    w2 = m.attn2.weights(xi)
    torch.testing.assert_close(m(x, y), w2 * x + (1 - w2) * y)
    # The widely copied port reuses the first global branch in the second pass; ours must not.
    buggy_logits = m.attn2.branches["pixel"](xi) + m.attn1.branches["pooled"](xi)
    buggy = torch.sigmoid(buggy_logits) * x + (1 - torch.sigmoid(buggy_logits)) * y
    assert not torch.allclose(m(x, y), buggy)


def test_iaff_second_global_branch_is_used():
    m = randomize_(IAFF(16))
    m(torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)).sum().backward()
    for p in m.attn2.branches["pooled"].parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_checkpoints_with_the_old_branch_names_load():
    m = randomize_(MSCAM(16, branches="global_global"))
    old = {k.replace("pooled1", "global1").replace("pooled2", "global2"): v for k, v in m.state_dict().items()}
    assert "branches.global1.pw1.weight" in old
    fresh = MSCAM(16, branches="global_global")
    fresh.load_state_dict(old)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(fresh(x), m(x))
    aff = AFF(16)
    old = {k.replace(".pooled.", ".global.").replace(".pixel.", ".local."): v for k, v in randomize_(AFF(16)).state_dict().items()}
    aff.load_state_dict(old)  # nested inside AFF too


def _watched(module):
    """The same module with a hook on every gate, so each runs as itself (the materialised path)."""
    import copy

    watched = copy.deepcopy(module)
    for name, sub in watched.named_modules():
        if name.endswith("gate"):
            sub.register_forward_hook(lambda *_: None)
    return watched


@pytest.mark.parametrize("branches", ["global_local", "global_global", "local_local"])
@pytest.mark.parametrize("kind", ["mscam", "aff", "iaff", "aff scale 2"])
def test_the_fused_gate_equals_the_materialised_one_in_values_and_gradients(kind, branches):
    torch.manual_seed(0)
    options = {"branches": branches, **({"scale": 2.0} if kind == "aff scale 2" else {})}
    module = randomize_({"mscam": MSCAM, "aff": AFF, "iaff": IAFF, "aff scale 2": AFF}[kind](8, **options)).double().train()
    watched = _watched(module)
    inputs = [torch.randn(2, 8, 5, 3, dtype=torch.float64, requires_grad=True) for _ in range(1 if kind == "mscam" else 2)]
    copies = [t.detach().clone().requires_grad_() for t in inputs]
    out, want = module(*inputs), watched(*copies)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    out.backward(grad)
    want.backward(grad)
    for p, q in zip(inputs + list(module.parameters()), copies + list(watched.parameters())):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [AFF, IAFF, AddFusion])
def test_a_fusion_ends_a_block_with_its_relu_in_the_same_op(cls):
    m = randomize_(cls(8)).eval()
    x, y = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(m.forward_residual(x, y), torch.relu(m(x, y)))

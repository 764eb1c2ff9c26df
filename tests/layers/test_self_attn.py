import pytest
import torch

from attnzoo.layers import NonLocal2d, SelfAttention2d
from tests.conftest import randomize_


def test_self_attention_is_identity_at_init():
    m = SelfAttention2d(16)
    x = torch.randn(2, 16, 5, 7)
    torch.testing.assert_close(m(x), x)
    assert m.gamma.item() == 0.0


def test_self_attention_matches_explicit_equation():
    m = randomize_(SelfAttention2d(8, reduction=2)).double()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    n = 12
    flat = x.flatten(2)  # (B, C, N)
    q = torch.einsum("dc,bcn->bdn", m.query.weight[:, :, 0, 0], flat) + m.query.bias[:, None]
    k = torch.einsum("dc,bcn->bdn", m.key.weight[:, :, 0, 0], flat) + m.key.bias[:, None]
    v = torch.einsum("dc,bcn->bdn", m.value.weight[:, :, 0, 0], flat) + m.value.bias[:, None]
    out = torch.zeros_like(flat)
    for b in range(2):
        for i in range(n):
            logits = torch.stack([q[b, :, i] @ k[b, :, j] for j in range(n)])
            a = torch.softmax(logits, 0)
            out[b, :, i] = sum(a[j] * v[b, :, j] for j in range(n))
    expected = (m.gamma * out + flat).view_as(x)
    torch.testing.assert_close(m(x), expected)


def test_self_attention_rows_sum_to_one_and_are_captured_by_gate_hook():
    m = SelfAttention2d(8, kv_stride=2)
    seen = []
    m.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))
    m(torch.randn(2, 8, 6, 5))
    (rows,) = seen
    assert rows.shape == (2, 30, 3 * 3)  # keys max-pooled 6x5 -> 3x3 (ceil mode)
    torch.testing.assert_close(rows.sum(-1), torch.ones(2, 30))


def test_nonlocal_is_identity_at_init_and_matches_equation_after():
    m = NonLocal2d(8, subsample=False).double()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(m(x), x)
    randomize_(m).eval()
    flat = x.flatten(2)
    proj = lambda conv: torch.einsum("dc,bcn->bdn", conv.weight[:, :, 0, 0], flat) + conv.bias[:, None]  # noqa: E731
    theta, phi, g = proj(m.theta), proj(m.phi), proj(m.g)
    f = torch.softmax(torch.einsum("bdi,bdj->bij", theta, phi), dim=-1)
    y = torch.einsum("bij,bdj->bdi", f, g).view(2, -1, 3, 3)
    expected = x + m.out_norm(m.out_conv(y))
    torch.testing.assert_close(m(x), expected)


def test_nonlocal_subsampling_pools_keys():
    m = NonLocal2d(8)
    seen = []
    m.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))
    m(torch.randn(1, 8, 7, 4))
    assert seen[0].shape == (1, 28, 4 * 2)


@pytest.mark.parametrize("cls", [SelfAttention2d, NonLocal2d])
def test_attention_too_large_fails_with_clear_message(cls):
    m = cls(4, max_attn_elements=1000)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: attention over 1600 query .*max_attn_elements=1000"):
        m(torch.randn(1, 4, 40, 40))


def test_attention_logits_run_in_fp32_under_autocast():
    m = SelfAttention2d(16).eval()
    seen = []
    m.gate.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        m(torch.randn(1, 16, 4, 4))
    assert seen == [torch.float32]


@pytest.mark.parametrize("cls, kwargs", [(SelfAttention2d, {"kv_stride": 2}), (NonLocal2d, {})])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_path_equals_explicit_softmax_path(cls, kwargs, dtype):
    m = randomize_(cls(16, **kwargs)).to(dtype).eval()
    x = torch.randn(2, 16, 7, 6, dtype=dtype, requires_grad=True)
    fused = m(x)
    (g_fused,) = torch.autograd.grad(fused.sum(), x)
    handle = m.gate.register_forward_hook(lambda *_: None)  # a watched gate takes the explicit path
    explicit = m(x)
    (g_explicit,) = torch.autograd.grad(explicit.sum(), x)
    handle.remove()
    torch.testing.assert_close(fused, explicit)
    torch.testing.assert_close(g_fused, g_explicit)

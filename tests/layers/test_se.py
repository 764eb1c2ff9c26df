import numpy as np
import pytest
import torch

from attnzoo.layers import SqueezeExcite
from attnzoo.layers._base import hidden_width


def test_se_matches_hand_computation_with_known_weights():
    m = SqueezeExcite(4, reduction=2, min_hidden=1)
    w1 = np.array([[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, 0.0, -1.0]])
    b1 = np.array([0.1, -0.2])
    w2 = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [0.5, 0.5]])
    b2 = np.array([0.0, 0.3, -0.3, 0.0])
    with torch.no_grad():
        m.fc1.weight.copy_(torch.tensor(w1).view(2, 4, 1, 1))
        m.fc1.bias.copy_(torch.tensor(b1))
        m.fc2.weight.copy_(torch.tensor(w2).view(4, 2, 1, 1))
        m.fc2.bias.copy_(torch.tensor(b2))
    x = np.arange(2 * 4 * 3 * 2, dtype=np.float64).reshape(2, 4, 3, 2) / 10 - 1
    squeezed = x.mean(axis=(2, 3))  # (N, C)
    hidden = np.maximum(squeezed @ w1.T + b1, 0)
    s = 1 / (1 + np.exp(-(hidden @ w2.T + b2)))
    expected = x * s[:, :, None, None]
    out = m(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_se_gate_is_invariant_to_permuting_pixels():
    m = SqueezeExcite(32)
    x = torch.randn(2, 32, 5, 6)
    perm = torch.randperm(30)
    xp = x.flatten(2)[:, :, perm].view_as(x)
    gate = lambda t: m(t) / t  # noqa: E731  (x has no zeros)
    torch.testing.assert_close(gate(x).amax((2, 3)), gate(xp).amax((2, 3)))
    torch.testing.assert_close(m(xp), m(x).flatten(2)[:, :, perm].view_as(x))


@pytest.mark.parametrize("channels, reduction, min_hidden, expected", [(256, 16, 8, 16), (64, 16, 8, 8), (4, 16, 1, 1), (15, 16, 1, 1), (3, 16, 8, 8)])
def test_hidden_width_never_zero(channels, reduction, min_hidden, expected):
    assert hidden_width(channels, reduction, min_hidden) == expected
    assert SqueezeExcite(channels, reduction=reduction, min_hidden=min_hidden).fc1.out_channels == expected


def test_se_parameter_count_at_256_channels():
    # W1: 256*16 + 16, W2: 16*256 + 256 (1×1 convs with bias, hidden = 256 // 16)
    assert sum(p.numel() for p in SqueezeExcite(256).parameters()) == 8464


@pytest.mark.parametrize("option, value", [("reduction", 0), ("min_hidden", 0)])
def test_se_bad_options(option, value):
    with pytest.raises(ValueError, match=option):
        SqueezeExcite(16, **{option: value})

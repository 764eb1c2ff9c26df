import torch
import torch.nn.functional as F

import pytest

from attnzoo.layers import HAChannelAttention, HardRegionAttention, HarmoniousAttention, HASoftAttention, HASpatialAttention, crop_regions
from attnzoo.layers.hacnn import ConvBlock
from tests.conftest import randomize_


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("cin, cout, kernel, stride, shape", [
    (16, 4, 1, 1, (3, 16, 1, 1)),   # 1×1 conv on a pooled map: a matrix product
    (1, 1, 1, 1, (3, 1, 7, 5)),     # one channel in and out: an affine map
    (1, 1, 1, 2, (3, 1, 7, 5)),     # strided: the convolution itself
    (4, 6, 3, 1, (3, 4, 7, 5)),
])
def test_conv_block_shortcuts_equal_the_convolution(train, cin, cout, kernel, stride, shape):
    block = randomize_(ConvBlock(cin, cout, kernel, stride=stride)).train(train)
    x = torch.randn(shape)
    conv, norm, _ = block
    expected = F.relu(F.batch_norm(conv(x), norm.running_mean.clone(), norm.running_var.clone(), norm.weight,
                                   norm.bias, training=train, eps=norm.eps))
    torch.testing.assert_close(block(x), expected)


def test_soft_attention_lies_in_half_to_one():
    m = randomize_(HASoftAttention(32)).train()
    a = m.weights(torch.randn(4, 32, 9, 5))
    assert a.shape == (4, 32, 9, 5)
    assert (a >= 0.5).all() and (a < 1).all()


def test_soft_attention_equation():
    m = randomize_(HASoftAttention(16)).eval()
    x = torch.randn(2, 16, 7, 5)
    s = m.spatial.conv1(x.mean(1, keepdim=True))
    s = m.spatial.conv2(F.interpolate(s, size=(7, 5), mode="bilinear", align_corners=True))
    c = m.channel.conv2(m.channel.conv1(x.mean((2, 3), keepdim=True)))
    expected = x * torch.sigmoid(m.mix(s * c))
    torch.testing.assert_close(m(x), expected)


def test_spatial_map_resized_to_odd_input_size():
    m = HASpatialAttention(8).eval()
    seen = []
    m.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))
    m(torch.randn(1, 8, 7, 3))
    assert seen[0].shape == (1, 1, 7, 3)


def test_channel_attention_gate_shape():
    m = HAChannelAttention(32).eval()
    seen = []
    m.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))
    m(torch.randn(2, 32, 4, 4))
    assert seen[0].shape == (2, 32, 1, 1)


def test_hard_attention_starts_as_equal_horizontal_stripes():
    m = HardRegionAttention(16, num_regions=4)
    theta = m(torch.randn(3, 16, 5, 5))
    assert theta.shape == (3, 4, 2, 3)
    expected_ty = torch.tanh(torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    for k in range(4):
        torch.testing.assert_close(theta[:, k, :, :2], torch.tensor([[1.0, 0.0], [0.0, 0.25]]).expand(3, 2, 2))
        torch.testing.assert_close(theta[:, k, 0, 2], torch.zeros(3))
        torch.testing.assert_close(theta[:, k, 1, 2], expected_ty[k].expand(3))


def test_crop_regions_returns_stripes():
    # With ty = -0.75 and height 1/4, region 0 is the top quarter of the image.
    x = torch.arange(16.0).view(1, 1, 16, 1).expand(1, 1, 16, 4).contiguous()
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.25, -0.75]]]).unsqueeze(0)  # (1, 1, 2, 3)
    (crop,) = crop_regions(x, theta, (4, 4))
    torch.testing.assert_close(crop[0, 0, :, 0], torch.tensor([0.0, 1.0, 2.0, 3.0]))


def test_harmonious_attention_returns_soft_weights_and_theta():
    m = HarmoniousAttention(32)
    x = torch.randn(2, 32, 10, 4)
    a, theta = m(x)
    assert a.shape == x.shape and theta.shape == (2, 4, 2, 3)


def _literal_soft_attention(m: HASoftAttention, x: torch.Tensor) -> torch.Tensor:
    """``x ⊙ σ(ConvBlock(S(x) ⊗ C(x)))`` with the ConvBlock run on the materialised rank-1 map."""
    s, c = m.spatial(x), m.channel(x)
    return x * m.gate(m.mix(s * c))


@pytest.mark.parametrize("momentum, track", [(0.1, True), (None, True), (0.1, False)])
@pytest.mark.parametrize("train", [True, False])
def test_folded_batch_norm_equals_the_conv_block_on_the_rank1_map(train, momentum, track):
    import copy

    torch.manual_seed(0)
    m = randomize_(HASoftAttention(12)).double().train(train)
    m.mix[1].momentum, m.mix[1].track_running_stats = momentum, track
    if not track:
        m.mix[1].running_mean = m.mix[1].running_var = None
    literal = copy.deepcopy(m)
    x = torch.randn(3, 12, 7, 5, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    for _ in range(2):  # twice: the running statistics move as BatchNorm2d moves them
        out, want = m(x), _literal_soft_attention(literal, x_ref)
        torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    for name, buffer in literal.named_buffers():
        torch.testing.assert_close(dict(m.named_buffers())[name], buffer, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    out.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(m.named_parameters(), literal.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-11, msg=name)


def test_soft_attention_ends_a_block_in_one_op_equal_to_relu_of_the_sum():
    m = randomize_(HASoftAttention(8)).eval()
    x, identity = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(m.forward_residual(x, identity), F.relu(m(x) + identity))
    seen = []
    m.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))  # a watched gate runs as itself
    torch.testing.assert_close(m.forward_residual(x, identity), F.relu(_literal_soft_attention(m, x) + identity))
    assert seen and seen[-1].shape == (2, 8, 5, 6)


def test_soft_attention_in_training_refuses_a_single_value_per_channel_as_batch_norm_does():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        HASoftAttention(8).train()(torch.randn(1, 8, 1, 1))

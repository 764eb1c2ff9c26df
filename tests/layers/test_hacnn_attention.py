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

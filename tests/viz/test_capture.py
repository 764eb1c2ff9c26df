import torch

import attnzoo
from attnzoo.layers import AFF, CBAM, SelfAttention2d
from attnzoo.viz import attention_modules, capture_attention
from tests.conftest import randomize_


def test_captured_spatial_and_channel_equal_the_gates():
    m = randomize_(CBAM(16, variant="paper")).eval()
    x = torch.randn(2, 16, 7, 5)
    with capture_attention(m) as maps:
        m(x)
    assert set(maps) == {"channel", "spatial"}
    assert maps["channel"].kind == "channel" and maps["channel"].tensor.shape == (2, 16)
    x1 = m.channel(x)
    expected_channel = x1 / x  # x ⊙ Mc / x
    torch.testing.assert_close(maps["channel"].tensor, expected_channel.mean((2, 3)))
    mean_max = torch.cat([x1.mean(1, keepdim=True), x1.amax(1, keepdim=True)], 1)
    torch.testing.assert_close(maps["spatial"].spatial, torch.sigmoid(m.spatial.conv(mean_max))[:, 0])


def test_capture_in_a_model_names_every_layer_and_removes_hooks():
    model = attnzoo.create_model("cifar_resnet8", attn="cbam", fusion="iaff", num_classes=10).eval()
    x = torch.randn(1, 3, 24, 24)
    with capture_attention(model) as maps:
        model(x)
    assert "layer2.0.attn.spatial" in maps and "layer3.0.fusion.attn2" in maps
    assert maps["layer2.0.attn.spatial"].spatial.shape == (1, 12, 12)
    assert maps["layer3.0.fusion.attn1"].kind == "full" and maps["layer3.0.fusion.attn1"].tensor.shape == (1, 64, 6, 6)
    assert maps["layer3.0.fusion.attn1"].channel.shape == (1, 64)  # the global branch
    # no hooks left behind: zero cost when not capturing
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_fusion_weights_equal_mscam_weights():
    m = randomize_(AFF(8)).eval()
    x, y = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    with capture_attention(m) as maps:
        m(x, y)
    torch.testing.assert_close(maps["attn"].tensor, m.attn.weights(x + y))


def test_self_attention_rows_for_query_pixels():
    m = randomize_(SelfAttention2d(8, kv_stride=2)).eval()
    with capture_attention(m) as maps:
        m(torch.randn(1, 8, 6, 4))
    rec = maps[""]
    assert rec.kind == "rows" and rec.tensor.shape == (1, 24, 6)
    rows = rec.rows_for([(0, 0), (5, 3)])
    assert rows.shape == (1, 2, 3, 2)
    torch.testing.assert_close(rows[0, 1].flatten(), rec.tensor[0, 23])
    torch.testing.assert_close(rows.sum((2, 3)), torch.ones(1, 2))


def test_hacnn_regions_and_soft_maps():
    model = attnzoo.create_model("hacnn", num_classes=5).eval()
    with torch.no_grad(), capture_attention(model) as maps:
        model(torch.randn(1, 3, 160, 64))
    assert maps["ha1.hard"].kind == "regions" and maps["ha1.hard"].tensor.shape == (1, 4, 2, 3)
    assert maps["ha2.soft"].kind == "full" and maps["ha2.soft"].spatial.shape == (1, 20, 8)


def test_layer_filter():
    model = attnzoo.create_model("cifar_resnet8", attn="se", num_classes=10)
    assert [n for n, _, _ in attention_modules(model, ["layer3"])] == ["layer3.0.attn"]
    assert [n for n, _, _ in attention_modules(model, ["*.attn"])] == ["layer1.0.attn", "layer2.0.attn", "layer3.0.attn"]


def test_second_wave_gates_are_captured_with_their_meaning():
    x = torch.randn(2, 16, 7, 5)
    expected = {  # module -> {record name: (kind, shape of .tensor)}
        "lcbam": {"channel": ("channel", (2, 16)), "spatial": ("spatial", (2, 7, 5))},
        "psa": {"channel": ("channel", (2, 16)), "spatial": ("spatial", (2, 7, 5))},
        "ecam": {"": ("channel", (2, 16))},
        "ceca": {"": ("channel", (2, 16))},
        "strip": {"": ("full", (2, 16, 7, 5))},
        "scoord": {"": ("full", (2, 16, 7, 5))},
        "danet_position": {"": ("rows", (2, 35, 35))},
    }
    for name, records in expected.items():
        m = randomize_(attnzoo.create_attn(name, 16)).eval()
        with capture_attention(m) as maps:
            y = m(x)
        assert {k: (r.kind, tuple(r.tensor.shape)) for k, r in maps.items()} == records, name
        if name in ("strip", "scoord"):  # a full map is the gate itself: y = x ⊙ gate
            torch.testing.assert_close(maps[""].tensor, y / x)

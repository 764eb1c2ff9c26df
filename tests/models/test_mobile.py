"""MobileNetV3, EfficientNet-B0 and ConvNeXt-T: torchvision's networks key for key, with attention
pluggable by the same one argument as the ResNets."""

import pytest
import torch

import attnzoo
from attnzoo.layers import CBAM, ECA, SqueezeExcite
from attnzoo.viz import capture_attention

# torchvision's counts at 1000 classes (torchvision.models.<name>(); checked beside torchvision 0.28
# in the peer venv: same state-dict keys, and bit-identical outputs with the same weights)
COUNTS = {"mobilenet_v3_large": (5_483_032, 312), "mobilenet_v3_small": (2_542_856, 244),
          "efficientnet_b0": (5_288_548, 360), "convnext_tiny": (28_589_128, 182)}
FAMILIES = list(COUNTS)


@pytest.mark.parametrize("name", FAMILIES)
def test_parameter_counts_and_key_layout_are_torchvisions(name):
    model = attnzoo.create_model(name)
    params, keys = COUNTS[name]
    assert attnzoo.count_params(model) == params
    assert len(model.state_dict()) == keys


def test_key_names_follow_torchvision():
    keys = set(attnzoo.create_model("mobilenet_v3_large").state_dict())
    assert {"features.0.0.weight", "features.4.block.2.fc1.weight", "features.4.block.3.1.running_var", "classifier.3.bias"} <= keys
    keys = set(attnzoo.create_model("efficientnet_b0").state_dict())
    assert {"features.1.0.block.1.fc1.weight", "features.2.0.block.2.fc2.bias", "features.8.1.weight", "classifier.1.weight"} <= keys
    keys = set(attnzoo.create_model("convnext_tiny").state_dict())
    assert {"features.0.1.weight", "features.1.0.layer_scale", "features.1.0.block.3.weight", "features.2.1.weight",
            "classifier.0.weight", "classifier.2.bias"} <= keys


def test_native_se_is_each_papers():
    se = attnzoo.create_model("mobilenet_v3_large").features[4].block[2]
    assert isinstance(se, SqueezeExcite) and se.fc1.out_channels == 24 and type(se.gate).__name__ == "HardSigmoid"  # make_divisible(72/4)
    se = attnzoo.create_model("efficientnet_b0").features[2][0].block[2]
    assert se.fc1.in_channels == 96 and se.fc1.out_channels == 4 and type(se.act).__name__ == "SiLU"  # a quarter of the block's input (16)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("attn", ["cbam", "eca", "coord"])
def test_attention_is_one_argument(name, attn):
    model = attnzoo.create_model(name, attn=attn, num_classes=10)
    cls = {"cbam": CBAM, "eca": ECA}.get(attn)
    modules = [m for m in model.modules() if type(m).__name__ == (cls.__name__ if cls else "CoordAttention")]
    slots = {"mobilenet_v3_large": 8, "mobilenet_v3_small": 9, "efficientnet_b0": 16, "convnext_tiny": 18}[name]
    assert len(modules) == slots
    assert not any(isinstance(m, SqueezeExcite) for m in model.modules())  # swapped, not added
    x = torch.randn(2, 3, 64, 64)
    with capture_attention(model) as maps:
        y = model(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    assert len(maps) == (2 * slots if attn == "cbam" else slots if attn == "eca" else 0)  # CBAM: two halves; coord: not captured
    y.sum().backward()
    assert all(p.grad is not None for p in modules[0].parameters())


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0"])
def test_native_se_can_be_left_out(name):
    model = attnzoo.create_model(name, native_se=False)
    assert not any(isinstance(m, SqueezeExcite) for m in model.modules())
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_stage_and_head_modules_are_refused_with_where_they_go():
    with pytest.raises(ValueError, match="mobilenet_v3_large: attention 'bam' is placed per stage, not in blocks"):
        attnzoo.create_model("mobilenet_v3_large", attn="bam")
    with pytest.raises(ValueError, match="no fusion"):
        attnzoo.create_model("convnext_tiny", fusion="aff")


@pytest.mark.parametrize("name", FAMILIES)
def test_a_checkpoint_in_torchvisions_layout_loads_and_predicts_the_same(name, tmp_path):
    torch.manual_seed(0)
    source = attnzoo.create_model(name, num_classes=10).eval()
    path = tmp_path / "tv.pth"
    torch.save(source.state_dict(), path)  # torchvision's layout: the same keys
    loaded = attnzoo.create_model(name, num_classes=10, weights=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))
    assert loaded.weights_report.source == "torchvision"


def test_train_and_viz_a_mobilenet_with_cbam_from_the_command_line(tmp_path):
    from attnzoo.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", "mobilenet_v3_small", "--attn", "cbam", "--epochs", "1", "--train-size", "64", "--test-size", "32",
                 "--batch-size", "32", "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()
    assert main(["viz", "--checkpoint", str(out), "--out", str(tmp_path / "viz")]) == 0
    assert (tmp_path / "viz" / "spatial.png").stat().st_size > 1000


def test_pretrained_weights_with_another_attention_is_a_clear_error(tmp_path):
    torch.save(attnzoo.create_model("mobilenet_v3_small").state_dict(), tmp_path / "tv.pth")
    with pytest.raises(ValueError, match="retrofitting attention into a pretrained checkpoint is for ResNets"):
        attnzoo.create_model("mobilenet_v3_small", attn="cbam", weights=tmp_path / "tv.pth")

"""Each backbone's Layout names real modules; freezing and Grad-CAM follow it on every family."""

from __future__ import annotations

import pytest
import torch

import attnzoo
from attnzoo.models import default_input_size, list_models
from attnzoo.models.slots import Layout, attention_modules, freeze_stages, grouped_by_stride, layout_of
from attnzoo.viz.gradcam import grad_cam

@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_a_layout_of_real_modules(name):
    with torch.device("meta"):
        model = attnzoo.create_model(name)
    layout = layout_of(model)
    modules = dict(model.named_modules())
    named = [*layout.stem, *(n for stage in layout.stages for n in stage), layout.feature_layer, *layout.head]
    assert [n for n in named if n not in modules] == []
    assert len(layout.stages) >= 3 and default_input_size(name) == layout.input_size


def test_input_sizes():
    assert default_input_size("cifar_resnet20") == (32, 32) and default_input_size("hacnn") == (160, 64)
    assert default_input_size("convnext_tiny") == default_input_size("resnet50") == (224, 224)


def test_a_model_without_a_layout_is_named():
    with pytest.raises(ValueError, match=r"^Linear declares no layout"):
        layout_of(torch.nn.Linear(2, 2))


def test_stages_cut_where_the_resolution_changes():
    assert grouped_by_stride(1, [1, 2, 1, 2, 1, 1]) == (("features.1",), ("features.2", "features.3"), ("features.4", "features.5", "features.6"))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"])
def test_freezing_covers_the_stem_and_first_stages_but_not_attention(name):
    model = attnzoo.create_model(name, attn="cbam", num_classes=10)
    layout = layout_of(model)
    n = len(layout.stages) - 1
    frozen = set(freeze_stages(model, n))
    prefixes = tuple(f"{p}." for p in (*layout.stem, *(m for stage in layout.stages[:n] for m in stage)))
    attention = tuple(f"{m}." for m, _ in attention_modules(model))
    assert any(p.startswith(prefixes) and p.startswith(attention) for p, _ in model.named_parameters())
    for pname, p in model.named_parameters():
        assert (pname in frozen) == (pname.startswith(prefixes) and not pname.startswith(attention)), pname
        assert p.requires_grad == (pname not in frozen)
    with pytest.raises(ValueError, match=rf"freeze_stages must be in 0..{len(layout.stages)}"):
        freeze_stages(model, len(layout.stages) + 1)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "convnext_tiny", "hacnn"])
def test_grad_cam_runs_at_every_familys_feature_layer(name):
    torch.manual_seed(0)
    model = attnzoo.create_model(name, num_classes=5).eval()
    h, w = layout_of(model).input_size
    size = (h, w) if name == "hacnn" else (h // 2, w // 2)  # HA-CNN's hard attention is built for its input size
    cam = grad_cam(model, torch.randn(1, 3, *size), layout_of(model).feature_layer)
    assert cam.shape[0] == 1 and float(cam.max()) == pytest.approx(1.0)


def test_layout_is_frozen_data():
    layout = Layout(stem=("a",), stages=(("b",),), feature_layer="b", head=("c",))
    with pytest.raises(Exception):
        layout.stem = ("c",)


@pytest.mark.parametrize("name, head", [("mobilenet_v3_small", "classifier.3"), ("efficientnet_b0", "classifier.1"),
                                        ("convnext_tiny", "classifier.2"), ("resnet18", "fc")])
def test_a_checkpoint_with_another_number_of_classes_reinitialises_the_layouts_head(tmp_path, name, head):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file(attnzoo.create_model(name, num_classes=1000).state_dict(), str(path))
    model = attnzoo.create_model(name, num_classes=10, weights=path, head="reinit")
    assert model.weights_report.reinitialised == [f"{head}.bias", f"{head}.weight"]
    assert not model.weights_report.missing and not model.weights_report.unexpected

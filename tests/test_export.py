"""Exported models compute what the eager ones compute, at two batch sizes (a dynamic batch axis)."""

import json

import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.cli import main
from attnzoo.export import check_export, export_model
from attnzoo.layers import create_module, list_attn, list_conv, list_fusion, module_kind
from tests.conftest import randomize_

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


class FuseWithFlipped(nn.Module):
    """A fusion module as a one-input model: z = m(x, flip(x))."""

    def __init__(self, fusion: nn.Module) -> None:
        super().__init__()
        self.fusion = fusion

    def forward(self, x):
        return self.fusion(x, x.flip(1))


@pytest.mark.parametrize("name", list_attn() + list_fusion() + list_conv())
def test_every_module_exports_to_onnx(name, tmp_path):
    module = randomize_(create_module(name, 16)).eval()
    model = FuseWithFlipped(module) if module_kind(name) == "fusion" else module
    path = export_model(model, (16, 9, 7), tmp_path / f"{name}.onnx", "onnx")
    assert check_export(model, path, "onnx", (16, 9, 7), batches=(1, 3)) <= 1e-4


SEED_MODULES = [None, "se", "cbam", "self_attn", "aff", "iaff", "ha_soft"]


@pytest.mark.parametrize("model_name", ["cifar_resnet20", "resnet18", "hacnn"])
@pytest.mark.parametrize("module", SEED_MODULES)
def test_models_with_each_seed_module_export_to_onnx(model_name, module, tmp_path):
    if model_name == "hacnn" and module is not None:
        pytest.skip("HA-CNN has its own (harmonious) attention; it takes no attn/fusion option")
    kind = "fusion" if module in ("aff", "iaff") else "attn"
    options = {kind: module} if module else {}
    if module == "self_attn":
        options["attn_stages"] = [3]
    model = attnzoo.create_model(model_name, num_classes=10, **options).eval()
    shape = (3, 160, 64) if model_name == "hacnn" else (3, 32, 32)
    path = export_model(model, shape, tmp_path / "m.onnx", "onnx")
    assert check_export(model, path, "onnx", shape, batches=(1, 3)) <= 1e-4


@pytest.mark.parametrize("fmt", ["exported-program", "torchscript"])
def test_other_formats(fmt, tmp_path):
    model = attnzoo.create_model("cifar_resnet8", attn="cbam", fusion="aff", num_classes=10).eval()
    path = export_model(model, (3, 24, 24), tmp_path / "m.bin", fmt)
    assert check_export(model, path, fmt, (3, 24, 24)) <= 1e-5


def test_export_command_from_a_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--epochs", "1", "--train-size", "64", "--test-size", "32", "--attn", "se",
                 "--no-progress"]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "se.onnx")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'se.onnx'} (onnx, input (N, 3, 24, 24) with N dynamic); checked at batch 1 and 3" in out
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["attn"] == "se"


def test_torch_jit_script_is_not_the_supported_path():
    # Documented: scripting fails on attnzoo's modules; trace and torch.export are the supported paths.
    with pytest.raises(Exception):
        torch.jit.script(attnzoo.create_model("cifar_resnet8", num_classes=10))


def test_the_parity_check_refuses_non_finite_outputs(tmp_path):
    # max(worst, nan) keeps worst: a NaN model once passed with "largest relative difference 0.0e+00".
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    path = export_model(model, (3, 2, 2), tmp_path / "nan.pt", "torchscript")
    with pytest.raises(ValueError, match="eager model's output is not finite at batch 1 .3 NaN and 0 infinite of 3 values"):
        check_export(model, path, "torchscript", (3, 2, 2))


@pytest.mark.parametrize("model_name, attn", [("mobilenet_v3_small", None), ("mobilenet_v3_small", "cbam"), ("efficientnet_b0", "eca"),
                                              ("convnext_tiny", "se")])
def test_the_other_families_export_to_onnx(model_name, attn, tmp_path):
    model = randomize_(attnzoo.create_model(model_name, num_classes=10, attn=attn), std=0.05).eval()
    path = export_model(model, (3, 64, 64), tmp_path / "m.onnx", "onnx")
    assert check_export(model, path, "onnx", (3, 64, 64), batches=(1, 3)) <= 1e-4

"""TrainConfig: a ModelSpec and four parts, stored flat."""

import json

import pytest

from attnzoo.models.spec import ModelSpec
from attnzoo.train import DataConfig, ExecutionConfig, FinetuneConfig, OptimConfig, TrainConfig


def test_parts_hold_their_fields_and_flat_names_reach_them():
    cfg = TrainConfig.of(attn="cbam", attn_stages=[3, 2], data_seed=1, epochs=3, batch_size=64, init_from="w.pth", seed=7, out="runs/x")
    assert cfg.model == ModelSpec("cifar_resnet8", attn="cbam", attn_stages=(2, 3))
    assert cfg.data == DataConfig(data_seed=1)
    assert cfg.optim == OptimConfig(epochs=3, batch_size=64)
    assert cfg.finetune == FinetuneConfig(init_from="w.pth")
    assert cfg.execution == ExecutionConfig(seed=7, out="runs/x")
    assert cfg.optim.peak_lr == pytest.approx(0.1)  # the recipe's 0.05 × 64 / 32
    assert cfg.spec().model_options == {"retrofit": True}  # fine-tuning retrofits the attention
    assert cfg.model.model_options == {}


def test_field_names_are_unique_across_the_parts():
    names = [f.name for _, f in TrainConfig.fields()]
    assert len(names) == len(set(names)) > 40


def test_stored_form_is_flat_and_round_trips():
    cfg = TrainConfig.of(attn="se", attn_options={"reduction": 8}, fusion_stages=[2], lr=0.02, threads=1)
    stored = json.loads(cfg.to_json())
    assert stored["attn"] == "se" and stored["lr"] == 0.02 and stored["fusion_stages"] == [2] and stored["threads"] == 1
    assert not any(isinstance(v, dict) and k in ("model", "data", "optim", "finetune", "execution") for k, v in stored.items())
    assert TrainConfig.from_dict(stored) == cfg


def test_replace_changes_only_what_it_names_and_leaves_the_original():
    cfg = TrainConfig.of(attn="se", epochs=2)
    other = cfg.replace(seed=3, epochs=4)
    assert (other.execution.seed, other.optim.epochs, other.model.attn) == (3, 4, "se")
    assert (cfg.execution.seed, cfg.optim.epochs) == (0, 2)


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="unknown training options: bogus, learning_rate"):
        TrainConfig.of(learning_rate=0.1, bogus=1)
    with pytest.raises(ValueError, match="unknown training options: nope"):
        TrainConfig.from_dict({"epochs": 2, "nope": 1})

"""TrainConfig: a ModelSpec and four parts, stored flat."""

import json
import re

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


def test_a_v2_run_folder_is_read_as_v2_from_its_checkpoint_header(tmp_path):
    # config.json carries no format; the run's weights file does. Only the header is read.
    from attnzoo.train import checkpoint as ckpt
    from attnzoo.train.engine import stored_config

    (tmp_path / "config.json").write_text(TrainConfig.of(attn="sge").to_json())
    assert stored_config(tmp_path).model.attn_options == {}  # no weights yet: today's format
    (tmp_path / "epoch-0001.safetensors").write_bytes(b"not a safetensors file")  # unreadable files are skipped
    ckpt.save_weights(tmp_path / "epoch-0002.safetensors", {"w": __import__("torch").zeros(1)}, {"format": "attnzoo-checkpoint-v2"})
    assert stored_config(tmp_path).model.attn_options == {"min_group_channels": 1}


@pytest.mark.parametrize("fmt, attn, options", [
    ("attnzoo-checkpoint-v1", "cbam", {"variant": "paper"}),
    ("attnzoo-checkpoint-v2", "cbam", {}),
    ("attnzoo-checkpoint-v1", "ecam", {"bias": True}),
    ("attnzoo-checkpoint-v2", "ecam", {"bias": True}),
    ("attnzoo-checkpoint-v2", "sge", {"min_group_channels": 1}),
    ("attnzoo-checkpoint-v3", "ecam", {}),
    ("attnzoo-checkpoint-v2", "se", {}),
])
def test_older_formats_read_as_their_defaults_meant(fmt, attn, options):
    assert TrainConfig.from_checkpoint({"attn": attn}, fmt).model.attn_options == options
    # An explicit option is kept as written.
    assert TrainConfig.from_checkpoint({"attn": "ecam", "attn_options": {"bias": False}}, fmt).model.attn_options == {"bias": False}


def test_an_old_ecam_checkpoint_loads_into_the_form_it_was_trained_in():
    # Weights trained when ECAM's default had biases (format v2) load strictly into the model the
    # v2 config builds, and would not into today's default.
    trained = TrainConfig.of(attn="ecam", attn_options={"bias": True}).spec().build(10).state_dict()
    TrainConfig.from_checkpoint({"attn": "ecam"}, "attnzoo-checkpoint-v2").spec().build(10).load_state_dict(trained)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        TrainConfig.of(attn="ecam").spec().build(10).load_state_dict(trained)
    with pytest.raises(ValueError, match="unknown checkpoint format 'attnzoo-checkpoint-v9'"):
        TrainConfig.from_checkpoint({}, "attnzoo-checkpoint-v9")


def test_every_numeric_or_named_field_declares_what_it_may_be():
    undeclared = [f.name for _, f in TrainConfig.fields()
                  if f.type in ("int", "float", "Optional[int]", "Optional[float]") and not (f.metadata["rule"] or f.metadata["choices"])]
    assert undeclared == []


@pytest.mark.parametrize("name, value, expected", [
    ("lr", float("inf"), "a number > 0"), ("momentum", float("nan"), "a number in [0, 1)"), ("weight_decay", -1.0, "a number ≥ 0"),
    ("warmup_epochs", -1.0, "a number ≥ 0"), ("seed", -1, "an integer ≥ 0"), ("data_seed", -1, "an integer ≥ 0"),
    ("epochs", 0, "an integer ≥ 1"), ("label_smoothing", 1.0, "a number in [0, 1)"), ("schedule", "step", "one of cosine, onecycle"),
    ("train_size", 0, "an integer ≥ 1"), ("freeze_stages", -1, "an integer ≥ 0"),
])
def test_a_config_built_in_python_is_checked_by_the_same_rules(name, value, expected):
    with pytest.raises(ValueError, match=rf"^{name}={re.escape(repr(value))}: expected {re.escape(expected)}$"):
        TrainConfig.of(**{name: value}).validate()
    TrainConfig.of().validate()  # the defaults pass their own rules


def test_one_list_of_execution_only_fields_serves_resume_and_compare():
    from attnzoo.experiments.sweep import differences

    assert set(TrainConfig.execution_only_fields()) == {"out", "resume", "overwrite", "progress", "threads", "device", "eval_batch_size",
                                                        "eval_subset"}
    stored = TrainConfig.of(device="cpu", threads=1).to_dict()
    assert differences(stored, TrainConfig.of(device="cuda", threads=2, out="elsewhere").to_dict()) == []  # compare re-run: same run
    assert differences(stored, TrainConfig.of(device="cpu", lr=0.1).to_dict()) == ["lr: None -> 0.1"]


def test_dataset_options_are_checked_like_module_options():
    TrainConfig.of(dataset="imagefolder", data_options={"image_size": 32, "allow_empty_classes": True}).validate()
    for options, message in (({"image_sise": 32}, "dataset 'imagefolder': unknown option image_sise; valid options: image_size, allow_empty_classes"),
                             ({"image_size": "big"}, "dataset 'imagefolder': option image_size='big' must be a number"),
                             ({"image_size": 0}, "dataset 'imagefolder': image_size=0: expected an integer ≥ 1"),
                             ({"allow_empty_classes": "maybe"}, "option allow_empty_classes='maybe' must be true or false")):
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainConfig.of(dataset="imagefolder", data_options=options).validate()
    with pytest.raises(ValueError, match=re.escape("dataset 'digits': unknown option image_size; valid options: none")):
        TrainConfig.of(data_options={"image_size": 32}).validate()


def test_flat_image_size_and_allow_empty_classes_of_older_stored_forms_become_imagefolder_options():
    old = {**TrainConfig.of(dataset="imagefolder").to_dict(), "image_size": 96, "allow_empty_classes": True}
    del old["data_options"]
    cfg = TrainConfig.from_dict(old)
    assert cfg.data.data_options == {"image_size": 96, "allow_empty_classes": True}
    digits = {**TrainConfig.of().to_dict(), "image_size": 64, "allow_empty_classes": False}
    assert TrainConfig.from_dict(digits).data.data_options == {}  # unused defaults there
    default = {**TrainConfig.of(dataset="imagefolder").to_dict(), "image_size": 64, "allow_empty_classes": False}
    del default["data_options"]
    assert TrainConfig.from_dict(default) == TrainConfig.of(dataset="imagefolder")  # an old default run is today's default
    assert cfg.data.dataset_options("digits") == {} and cfg.data.dataset_options() == {"image_size": 96, "allow_empty_classes": True}

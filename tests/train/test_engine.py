import json
import math

import pytest
import torch

import attnzoo
from attnzoo.train import TrainConfig, lr_factor, train, variant_name
from attnzoo.train.engine import param_groups

TINY = dict(train_size=256, test_size=64, batch_size=32, threads=1, progress=False)


def test_train_writes_metrics_summary_and_checkpoints(tmp_path):
    out = tmp_path / "run"
    summary = train(TrainConfig.of(out=str(out), epochs=2, attn="se", **TINY))
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2]
    assert {"train_loss", "test_top1", "test_top5", "images_per_s", "data_share", "lr"} <= set(lines[0])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["last_top1"] == summary["last_top1"] == lines[-1]["test_top1"]
    assert on_disk["variant"] == "se" and on_disk["params"] > 0 and on_disk["macs"] > 0
    assert on_disk["config"]["attn"] == "se" and on_disk["versions"]["torch"] == torch.__version__
    assert (out / "best.safetensors").is_file() and (out / "checkpoint.json").is_file()


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    train(TrainConfig.of(out=str(tmp_path), epochs=1, **TINY))
    with pytest.raises(ValueError, match="already holds a run; pass --resume to continue it, --overwrite to replace it"):
        train(TrainConfig.of(out=str(tmp_path), epochs=1, **TINY))


def test_lr_schedules():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(0, 100, 10, "onecycle") == pytest.approx(1 / 25)
    assert lr_factor(10, 100, 10, "onecycle") == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "onecycle") == pytest.approx(1e-4)


def test_no_weight_decay_on_bn_and_bias():
    import attnzoo

    model = attnzoo.create_model("cifar_resnet8", attn="self_attn", num_classes=10)
    decay, no_decay = param_groups(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"])
    names_no_decay = {n for n, p in model.named_parameters() if any(p is q for q in no_decay["params"])}
    assert "bn1.weight" in names_no_decay and "fc.bias" in names_no_decay and "layer1.0.attn.gamma" in names_no_decay


def test_variant_names():
    assert variant_name(TrainConfig()) == "plain"
    assert variant_name(TrainConfig.of(attn="self_attn", attn_stages=[3])) == "self_attn@3"
    assert variant_name(TrainConfig.of(attn="cbam", fusion="iaff")) == "cbam+iaff"


def test_bad_config_values():
    with pytest.raises(ValueError, match=r"^schedule='step': expected one of cosine, onecycle$"):
        train(TrainConfig.of(schedule="step"))
    with pytest.raises(ValueError, match="unknown training options: colour"):
        TrainConfig.from_dict({"colour": 1})


def test_sync_bn_rejected_on_cpu(tmp_path):
    with pytest.raises(ValueError, match="--sync-bn needs CUDA"):
        train(TrainConfig.of(out=str(tmp_path), sync_bn=True, device="cpu", **TINY))


def test_bf16_amp_and_channels_last_train(tmp_path):
    summary = train(TrainConfig.of(out=str(tmp_path), epochs=1, amp=True, channels_last=True, attn="cbam", **TINY))
    assert math.isfinite(summary["last_top1"])


def test_init_from_retrofits_attention_and_starts_from_the_plain_models_score(tmp_path):
    from attnzoo.cli import main

    plain_args = ["--train-size", "256", "--test-size", "128", "--no-progress", "--threads", "1"]
    assert main(["train", "--out", str(tmp_path / "plain"), "--epochs", "2", *plain_args]) == 0
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    weights = str(tmp_path / "plain" / "epoch-0002.safetensors")
    assert main(["train", "--out", str(tmp_path / "ft"), "--epochs", "1", "--attn", "se", "--init-from", weights,
                 "--freeze-stages", "1", *plain_args]) == 0
    history = [json.loads(line) for line in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1]
    # epoch 0 is the plain network's evaluation: same test images, same predictions
    assert history[0]["test_top1"] == plain["last_top1"]
    assert abs(history[0]["test_loss"] - json.loads((tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()[-1])["test_loss"]) < 1e-6
    from attnzoo.train.evaluate import load_trained_model

    model, cfg, _ = load_trained_model(tmp_path / "ft")  # rebuilt from its config: retrofitted layout
    gammas = [m.gamma.item() for m in model.modules() if type(m).__name__ == "ResidualMix"]
    assert len(gammas) == 3 and all(g != 0 for g in gammas)  # γ trained away from 0
    frozen = load_trained_model(tmp_path / "plain")[0]
    torch.testing.assert_close(model.layer1[0].conv1.weight, frozen.layer1[0].conv1.weight)  # stage 1 frozen
    assert not torch.equal(model.layer3[0].conv1.weight, frozen.layer3[0].conv1.weight)  # stage 3 fine-tuned


def test_evaluation_takes_any_batch_source_not_only_the_in_memory_one():
    """The Batches protocol: a source with __len__ and __call__(index, generator) (here one that
    builds each batch on request, as a streaming source would) serves evaluation unchanged."""
    from attnzoo.train.engine import evaluate

    class Generated:
        def __len__(self):
            return 10

        def __call__(self, index, generator=None):
            g = torch.Generator().manual_seed(int(index[0]))
            return torch.randn(len(index), 3, 24, 24, generator=g), index % 3

    torch.manual_seed(0)
    model = attnzoo.create_model("cifar_resnet8", num_classes=3).eval()
    result = evaluate(model, Generated(), num_classes=3, batch_size=4)
    assert result["count"] == 10 and sum(map(sum, result["confusion"])) == 10

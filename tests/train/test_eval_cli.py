import json

import pytest

from attnzoo.cli import main

TINY = ["--train-size", "256", "--test-size", "64", "--batch-size", "32", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), "--epochs", "1", "--attn", "cbam", "--attn-opt", "reduction=4", *TINY]) == 0
    return out


def test_train_cli_passes_options(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config"]["attn_options"] == {"reduction": 4}


def test_eval_reports_top1_top5_per_class_and_confusion(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(run_dir), "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out.read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["top1"] == pytest.approx(summary["last_top1"])
    assert result["count"] == 64 and len(result["per_class_top1"]) == 10
    assert sum(map(sum, result["confusion"])) == 64
    assert sum(result["confusion"][i][i] for i in range(10)) / 64 == pytest.approx(result["top1"])


def test_eval_table_and_best_weights(run_dir, capsys):
    assert main(["eval", str(run_dir / "best.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "class" in out


def test_eval_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(tmp_path)])
    assert e.value.code == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_bad_option_syntax(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--attn", "se", "--attn-opt", "reduction", *TINY])
    assert e.value.code == 2
    assert capsys.readouterr().err == "attnzoo train: error: --attn-opt: expected KEY=VALUE, got 'reduction'\n"

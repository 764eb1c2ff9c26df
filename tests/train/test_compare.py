import json
import statistics

import pytest

from attnzoo.cli import main
from attnzoo.train import compare


def test_parse_variant():
    v = compare.parse_variant("self_attn@3")
    assert v.attn == "self_attn" and v.attn_stages == (3,) and v.fusion is None
    v = compare.parse_variant("cbam+iaff@34")
    assert v.attn == "cbam" and v.fusion == "iaff" and v.fusion_stages == (3, 4)
    assert compare.parse_variant("plain").train_args() == []
    with pytest.raises(ValueError, match="unknown variant part 'sse'"):
        compare.parse_variant("sse")
    with pytest.raises(ValueError, match="names two attn modules"):
        compare.parse_variant("se+cbam")


def test_welch_ci_matches_hand_computation():
    a, b = [0.80, 0.82, 0.84], [0.70, 0.71, 0.72]
    lo, hi = compare.welch_ci(a, b)
    se = (statistics.variance(a) / 3 + statistics.variance(b) / 3) ** 0.5
    # Welch df here = (0.0004/3 + 0.0001/3)^2 / ((0.0004/3)^2/2 + (0.0001/3)^2/2) = 2.94 -> df 2, t = 4.303
    assert lo == pytest.approx(0.11 - 4.303 * se) and hi == pytest.approx(0.11 + 4.303 * se)
    assert compare.welch_ci([0.5], b) is None


def _summary(variant, seed, top1, **cfg):
    config = {"model": "cifar_resnet8", "attn": None, "fusion": None, "attn_stages": None, "fusion_stages": None,
              "attn_options": {}, "fusion_options": {}, "dataset": "digits", "epochs": 1, **cfg}
    return {"variant": variant, "seed": seed, "last_top1": top1, "best_top1": top1, "params": 10, "macs": 100,
            "wall_time_s": 1.0, "data_share": 0.02, "config": config, "versions": {"torch": "x"}}


def test_aggregate_groups_ranks_and_diffs(tmp_path):
    runs = []
    for variant, tops in {"plain": [0.6, 0.62, 0.64], "se": [0.7, 0.72, 0.74]}.items():
        for seed, top in enumerate(tops):
            d = tmp_path / f"{variant}-{seed}"
            d.mkdir()
            (d / "summary.json").write_text(json.dumps(_summary(variant, seed, top, attn=None if variant == "plain" else variant)))
            runs.append(d)
    result = compare.aggregate(compare.find_runs([tmp_path]))
    assert [r["variant"] for r in result["rows"]] == ["se", "plain"]
    se = result["rows"][0]
    assert se["top1_mean"] == pytest.approx(0.72) and se["top1_std"] == pytest.approx(0.02)
    assert se["diff_to_plain"] == pytest.approx(0.10)
    assert se["diff_ci95"][0] > 0  # clearly better
    md = compare.report_markdown(result)
    assert "| se | 3 | 72.0 ± 2.0 | +10.0 |" in md


def test_compare_quick_end_to_end_and_from(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--variants", "se", "--seeds", "2", "--out", str(out), "--no-progress", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "plain" in printed and "se" in printed
    results = json.loads((out / "results.json").read_text())
    assert {r["variant"] for r in results["rows"]} == {"plain", "se"}
    assert all(r["runs"] == 2 and r["latency_ratio"] > 0 for r in results["rows"])
    assert (out / "report.md").read_text().startswith("# attnzoo compare")
    assert (out / "leaderboard.png").stat().st_size > 10_000
    assert len(list((out / "runs").iterdir())) == 4
    # aggregate the same runs elsewhere, without training
    assert main(["compare", "--from", str(out / "runs"), "--out", str(tmp_path / "agg"), "--no-latency"]) == 0
    again = json.loads((tmp_path / "agg" / "results.json").read_text())
    assert [r["top1_mean"] for r in again["rows"]] == [r["top1_mean"] for r in results["rows"]]

import pytest
"""The bench command runs and reports; it makes no claim about speed here (no timing assertions)."""

import json

import torch

from attnzoo.bench.memory import saved_activation_bytes
from attnzoo.bench.timing import time_interleaved, time_paired
from attnzoo.cli import main


def test_timing_records_every_candidate_with_consistent_statistics():
    calls = {"a": 0, "b": 0}

    def make(name):
        def run():
            calls[name] += 1
        return run

    result = time_interleaved({"a": make("a"), "b": make("b")}, rounds=5, warmup=2)
    assert calls == {"a": 7, "b": 7}
    assert all(r["min"] <= r["median"] <= r["max"] and r["rounds"] == 5 for r in result.values())
    paired = time_paired(make("a"), {"b": make("b")}, rounds=4, warmup=1)
    assert paired["__reference__"]["rounds"] == 8 and paired["b"]["rounds"] == 4  # (b's pairs and the control's)
    assert calls == {"a": 7 + 3 + 3 * 4, "b": 7 + 1 + 4}  # (the control pairs the reference with itself)


def test_paired_ratio_is_the_median_of_per_round_ratios(monkeypatch):
    # A fake clock: round 2 is slow for both (a burst of load on the machine). Per-round ratios are
    # 2, 1, 3, 2 -> 2; the ratio of the two medians (2.5 / 1) would be thrown by the burst.
    clock = [0.0]
    order = []
    # Calls, round by round: (ref, b) (ref, ref) | (ref, ref) (b, ref) | (ref, b) (ref, ref) | (ref, ref) (b, ref);
    # the reference paired with b in round 1 is the 6th reference call.
    ref_times, cand_times = iter([1] * 5 + [10] + [1] * 6), iter([2, 10, 3, 2])
    monkeypatch.setattr("attnzoo.bench.timing.time.perf_counter", lambda: clock[0])

    def advance(name, times):
        def run():
            order.append(name)
            clock[0] += next(times)
        return run

    paired = time_paired(advance("ref", ref_times), {"b": advance("b", cand_times)}, rounds=4, warmup=0)
    assert paired["b"]["ratio"] == 2.0 and paired["__control__"]["ratio"] == 1.0
    assert paired["b"]["median"] == 2.5 and paired["b"]["reference_median"] == 1.0
    # The reference goes first in even rounds and second in odd ones.
    assert [order[i] for i in (0, 1, 6, 7, 8, 9, 14, 15)] == ["ref", "b", "b", "ref", "ref", "b", "b", "ref"]


def test_saved_activation_bytes_counts_distinct_storages():
    x = torch.randn(100, requires_grad=True)
    y = torch.randn(100, requires_grad=True)
    assert saved_activation_bytes(lambda: x * y) == 2 * 100 * 4  # mul saves both inputs
    assert saved_activation_bytes(lambda: x * x) == 100 * 4  # the same storage once


def test_bench_modules_writes_table_json_markdown_and_plot(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "modules", "se", "cbam", "aff", "sk", "--channels", "16", "--size", "8", "--batch", "2",
                 "--rounds", "2", "--warmup", "1", "--threads", "1", "--out", str(out)]) == 0
    assert "| cbam |" in capsys.readouterr().out
    result = json.loads((out / "modules-cpu-fp32.json").read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"copy", "se", "cbam", "aff", "sk"}
    assert rows["copy"]["forward_ratio"] == 1.0 and rows["se"]["params"] == 16 * 8 * 2 + 8 + 16
    assert all(r["forward_ratio"] > 0 and r["train_ratio"] > 0 for r in rows.values())
    assert rows["cbam"]["saved_for_backward_mb"] > 0 and result["machine"]["threads"] == 1
    assert (out / "modules-cpu-fp32.md").read_text().count("\n|") >= 6
    assert (out / "modules-cpu-fp32.png").stat().st_size > 5_000


def test_bench_modules_skips_a_module_that_refuses_the_shape_and_says_why(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "modules", "eca", "bottleneck", "--channels", "16", "--size", "20", "--batch", "1", "--no-backward",
                 "--rounds", "1", "--warmup", "0", "--threads", "1", "--out", str(out)]) == 0
    assert "Skipped bottleneck at this shape: BottleneckAttention: input of 20×20 exceeds feat_size=16" in capsys.readouterr().out
    result = json.loads((out / "modules-cpu-fp32.json").read_text())
    assert [r["name"] for r in result["rows"]] == ["copy", "eca"] and set(result["skipped"]) == {"bottleneck"}


def test_bench_models_ratios_to_plain(tmp_path):
    out = tmp_path / "m"
    assert main(["bench", "models", "plain", "se", "bam", "--model", "cifar_resnet8", "--size", "16", "--batch", "2",
                 "--rounds", "2", "--warmup", "1", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads((out / "models-cpu-fp32.json").read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["plain"]["forward_ratio"] == 1.0 and rows["se"]["params"] > rows["plain"]["params"]
    assert result["setup"]["reference"] == "plain" and result["setup"]["control_ratio"] > 0
    assert "Control: the plain cifar_resnet8 paired with itself" in (out / "models-cpu-fp32.md").read_text()


def test_bench_models_with_onnxruntime_rows(tmp_path):
    pytest.importorskip("onnxruntime")
    from attnzoo.bench.run import bench_models

    result = bench_models("cifar_resnet8", ["plain", "se"], batch=2, size=16, rounds=2, warmup=1, backend="onnxruntime")
    names = [r["name"] for r in result["rows"]]
    assert names == ["plain", "plain [onnxruntime]", "se", "se [onnxruntime]"]
    assert all(r["forward_ratio"] > 0 for r in result["rows"])


def test_bench_models_train_step_and_memory():
    from attnzoo.bench.run import bench_models, to_markdown

    result = bench_models("cifar_resnet8", ["plain", "cbam"], batch=2, size=16, rounds=2, warmup=1, backward=True, optimizer_step=True)
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["cbam"]["saved_for_backward_mb"] > rows["plain"]["saved_for_backward_mb"] > 0
    assert rows["plain"]["train_ratio"] > 0 and "SGD step" in result["setup"]["mode"]
    assert "| train step ms | × ref | saved for bwd MB |" in to_markdown(result)

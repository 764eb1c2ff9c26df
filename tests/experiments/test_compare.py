import json

import pytest
import torch

from attnzoo.cli import main
from attnzoo.experiments import report
from attnzoo.experiments.sweep import plan, run_state, worker_layout
from attnzoo.models.spec import parse_variant
from attnzoo.train import TrainConfig
from attnzoo.train.health import GateStats, health_flags
from attnzoo.layers import create_attn


def _summary(variant, seed, top1, healthy=True, flags=()):
    config = {"model": "cifar_resnet8", "dataset": "digits", "epochs": 1, "batch_size": 32, "lr": None, "momentum": 0.9,
              "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 0.5, "train_size": None, "test_size": None, "data_seed": 0}
    return {"variant": variant, "seed": seed, "last_top1": top1, "healthy": healthy, "health_flags": list(flags), "params": 10,
            "macs": 100, "wall_time_s": 1.0, "data_share": 0.02, "images_per_s": 100.0, "config": config, "peak_lr": 0.05,
            "versions": {"torch": "x"}}


def test_flagged_runs_are_listed_not_averaged():
    runs = [_summary("plain", s, t) for s, t in enumerate([0.80, 0.82, 0.84])]
    runs += [_summary("se", 0, 0.83), _summary("se", 1, 0.85), _summary("se", 2, 0.10, healthy=False, flags=["top-1 0.100 below 2x chance (0.200)"])]
    result = report.aggregate(runs)
    se = next(r for r in result["rows"] if r["variant"] == "se")
    assert se["runs"] == 3 and se["healthy_runs"] == 2
    assert se["top1_mean"] == pytest.approx(0.84)  # (0.83 + 0.85) / 2: the collapsed seed is not averaged in
    assert se["paired"]["n"] == 2 and se["paired"]["diff"] == pytest.approx(0.03)
    assert se["flagged"] == [{"seed": 2, "top1": 0.10, "flags": ["top-1 0.100 below 2x chance (0.200)"]}]
    md = report.report_markdown(result)
    assert "| se | 2/3 | 84.0 ± 1.4 | +3.0 [" in md
    assert "`se` seed 2 (top-1 10.0): top-1 0.100 below 2x chance" in md
    assert "1 flagged run(s) left out" in md


def test_verdicts_use_holm_adjusted_paired_tests():
    runs = [_summary("plain", s, 0.80 + 0.04 * (s % 2)) for s in range(5)]
    runs += [_summary("se", s, 0.80 + 0.04 * (s % 2) + 0.02 + 0.001 * s) for s in range(5)]  # consistently better
    runs += [_summary("cbam", s, 0.80 + 0.04 * (s % 2) + (0.01 if s % 2 else -0.01)) for s in range(5)]  # noise
    result = report.aggregate(runs)
    rows = {r["variant"]: r for r in result["rows"]}
    assert rows["se"]["paired"]["p_holm"] == pytest.approx(min(1, 2 * rows["se"]["paired"]["p"]))
    assert any(v.startswith("`se` is shown better than plain") for v in result["verdicts"])
    assert any(v.startswith("`cbam`: no difference from plain shown") for v in result["verdicts"])


def test_health_flags():
    assert health_flags(0.9, 10, {"a.gate": {"mean": 0.5, "std": 0.1}}) == []
    assert health_flags(0.15, 10, {}) == ["top-1 0.150 below 2x chance (0.200)"]
    assert health_flags(0.9, 10, {"layer1.0.attn.gate": {"mean": 0.03, "std": 0.0}}) == ["gate layer1.0.attn.gate saturated (mean 0.030)"]
    assert health_flags(0.9, 10, {"g": {"mean": 0.97, "std": 0.0}}) == ["gate g saturated (mean 0.970)"]
    assert health_flags(None, 10, {}, diverged=True) == ["non-finite loss"]


def test_gate_stats_see_a_forced_collapse():
    se = create_attn("se", 16)
    x = torch.randn(4, 16, 5, 5)
    with GateStats(se) as gates:
        se(x)
    healthy = gates.summary()["gate"]
    with torch.no_grad():
        se.fc2.bias.fill_(-20.0)  # every channel switched off
        se.fc2.weight.zero_()
    with GateStats(se) as collapsed:
        se(x)
        se(x)  # sums carry over
    stats = collapsed.summary()["gate"]
    assert 0.2 < healthy["mean"] < 0.8
    assert stats["mean"] < 1e-8 and stats["std"] < 1e-8
    assert health_flags(0.9, 10, collapsed.summary())


def test_softmax_gates_are_not_judged_for_saturation():
    m = create_attn("self_attn", 16)
    with GateStats(m) as gates:
        m(torch.randn(2, 16, 4, 4))
    assert gates.summary() == {}


def test_worker_layout_never_oversubscribes():
    assert worker_layout(21, cores=2) == (2, 1)
    assert worker_layout(1, cores=2) == (1, 2)
    assert worker_layout(5, jobs=8, cores=4) == (4, 1)
    assert worker_layout(10, jobs=1, cores=4) == (1, 4)


def test_a_run_folder_with_another_config_is_refused(tmp_path):
    base = TrainConfig.of(epochs=1, train_size=64, test_size=32)
    (cfg,) = plan([parse_variant("cbam")], [0], base, tmp_path)
    assert run_state(cfg) == "new"
    cfg_dir = tmp_path / "runs" / "cbam-seed0"
    cfg_dir.mkdir(parents=True)
    (cfg_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "attn_options": {"variant": "paper"}, "lr": 0.1}))
    with pytest.raises(ValueError, match=r"another config \(attn_options: \{'variant': 'paper'\} -> \{\}; lr: 0.1 -> None\)"):
        run_state(cfg)
    (cfg_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "threads": 7, "progress": True}))
    assert run_state(cfg) == "resume"  # execution details may differ
    (cfg_dir / "summary.json").write_text("{}")
    assert run_state(cfg) == "done"


def test_compare_quick_end_to_end_refusal_and_from(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--quick", "--variants", "se:reduction=8", "--seeds", "2", "--out", str(out), "--no-progress", "--no-localisation"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "se:reduction=8" in printed and "FLAGGED plain seed 0" in printed  # 1 epoch on 512 images: at chance, and said so
    results = json.loads((out / "results.json").read_text())
    assert {r["variant"] for r in results["rows"]} == {"plain", "se:reduction=8"}
    assert all(r["runs"] == 2 and r["latency_ratio"] > 0 and r["images_per_s"] > 0 for r in results["rows"])
    se_run = out / "runs" / "se_reduction=8-seed0"
    assert json.loads((se_run / "config.json").read_text())["attn_options"] == {"reduction": 8}
    history = [json.loads(line) for line in (se_run / "metrics.jsonl").read_text().splitlines()]
    assert set(history[-1]["gates"]) == {"layer1.0.attn.gate", "layer2.0.attn.gate", "layer3.0.attn.gate"}
    for name in ("report.md", "leaderboard.png", "gates.png"):
        assert (out / name).stat().st_size > 1000
    # the same folder with another recipe: refused before any training, naming the difference
    with pytest.raises(SystemExit) as e:
        main([*args, "--lr", "0.2"])
    assert e.value.code == 2
    assert "lr: None -> 0.2" in capsys.readouterr().err
    # aggregate the same runs elsewhere, without training
    assert main(["compare", "--from", str(out / "runs"), "--out", str(tmp_path / "agg"), "--no-latency", "--no-localisation"]) == 0
    again = json.loads((tmp_path / "agg" / "results.json").read_text())
    assert [r["top1_by_seed"] for r in again["rows"]] == [r["top1_by_seed"] for r in results["rows"]]


def test_a_failing_run_is_printed_with_its_log(tmp_path, capsys):
    empty = tmp_path / "no-images"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:  # the data only fails inside the runs
        main(["compare", "--quick", "--variants", "se", "--seeds", "1", "--out", str(tmp_path / "out"), "--no-progress",
              "--dataset", "imagefolder", "--data-root", str(empty)])
    err = capsys.readouterr().err
    assert e.value.code == 1
    assert "run se-seed0 failed: ValueError: imagefolder: no train folder under" in err
    assert f"log: {tmp_path / 'out' / 'runs' / 'se-seed0' / 'train.log'}" in err
    assert "2 of 2 runs failed" in err


def test_a_variant_that_cannot_be_built_is_refused_before_any_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", "--quick", "--variants", "sk", "--seeds", "1", "--out", str(tmp_path), "--no-progress"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "attnzoo compare: error: BasicBlock supports only groups=1, width_per_group=64 and the standard 3×3 conv\n"
    assert not (tmp_path / "runs").exists()


def test_readme_names_untested_variants_in_one_line():
    lines = ["`a`: too few paired healthy seeds to test.", "`b` is shown worse than plain: -3.0 points [-5.0, -1.0], Holm-adjusted p = 0.01.",
             "`c`: too few paired healthy seeds to test.", "`d`: too few paired healthy seeds to test (1 flagged run(s) left out)."]
    assert report.readme_verdicts(lines) == ["Too few paired healthy seeds to test: `a`, `c`.", lines[1], lines[3]]
    assert report.readme_verdicts(lines[:2]) == lines[:2]  # a single one keeps its own line


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc and uses PR_SET_PDEATHSIG (Linux)")
def test_killing_compare_ends_its_workers(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    def children(pid):
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            except OSError:
                continue
            if fields.get("PPid", "").strip() == str(pid):
                found.append(int(status.parent.name))
        return found

    out = tmp_path / "cmp"
    workers = []
    parent = subprocess.Popen([sys.executable, "-m", "attnzoo", "compare", "--variants", "se", "--seeds", "2", "--epochs", "20",
                               "--jobs", "1", "--out", str(out), "--no-progress", "--no-localisation", "--no-latency"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list(out.glob("runs/*/config.json")) and time.time() < deadline:
            time.sleep(0.2)
        workers = [p for p in children(parent.pid) if "python" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
        assert workers, "compare started no worker"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 20
        while any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2] for p in workers) \
                and time.time() < deadline:
            time.sleep(0.2)
        alive = [p for p in workers if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]
        assert not alive, f"workers {alive} outlived compare"
    finally:
        for pid in [parent.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        parent.wait()

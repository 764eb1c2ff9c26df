"""Crash safety: a SIGKILLed run resumes to the same weights; a diverging run keeps its last good checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import torch

from attnzoo.train import latest_checkpoint, load_weights

ARGS = ["--train-size", "384", "--test-size", "64", "--batch-size", "32", "--threads", "1", "--deterministic", "--no-progress", "--attn", "cbam"]


def _train(out, *extra):
    return subprocess.run([sys.executable, "-m", "attnzoo", "train", "--out", str(out), *ARGS, *extra], capture_output=True, text=True)


def _final_weights(out):
    weights, _ = latest_checkpoint(out)
    return load_weights(weights)[0]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    epochs = ["--epochs", "5"]
    reference = _train(tmp_path / "ref", *epochs)
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "attnzoo", "train", "--out", str(out), *ARGS, *epochs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.json").is_file():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists(), "the run finished before it could be killed"
    killed_at = json.loads((out / "checkpoint.json").read_text())["history"][-1]

    resumed = _train(out, *epochs, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    ref, got = _final_weights(tmp_path / "ref"), _final_weights(out)
    assert ref.keys() == got.keys()
    mismatched = [k for k in ref if not torch.equal(ref[k], got[k])]
    assert not mismatched, f"killed after {killed_at}; differing tensors: {mismatched[:5]}"
    metrics = [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [1, 2, 3, 4, 5]


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    ok = _train(tmp_path, "--epochs", "1")
    assert ok.returncode == 0, ok.stderr
    before = _final_weights(tmp_path)
    diverged = _train(tmp_path, "--epochs", "3", "--resume", "--lr", "1e30", "--warmup-epochs", "0")
    assert diverged.returncode == 3
    assert "loss is" in diverged.stderr and "training stopped" in diverged.stderr and "last good checkpoint" in diverged.stderr
    weights, _ = latest_checkpoint(tmp_path)
    assert weights.name == "epoch-0001.safetensors"
    after = _final_weights(tmp_path)
    assert all(torch.equal(before[k], after[k]) and torch.isfinite(after[k].float()).all() for k in before)


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnzoo", "train", "--out", str(tmp_path), *ARGS, "--epochs", "50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "checkpoint.json").is_file():
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: checkpoint saved" in err
    info = json.loads((tmp_path / "checkpoint.json").read_text())
    assert info["weights"] == "interrupted.safetensors"
    resumed = _train(tmp_path, "--epochs", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr

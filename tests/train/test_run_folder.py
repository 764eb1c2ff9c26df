"""Run folders lose nothing: --overwrite keeps the old run until the new one has a checkpoint and
never touches a user's own files; one run per folder at a time; damaged checkpoints are named and
never silently replaced by a fresh start."""

import subprocess
import sys

import pytest

from attnzoo.train import TrainConfig, engine, train
from attnzoo.train.run_folder import REPLACED, RunLock

SMALL = dict(train_size=128, test_size=32, batch_size=32, threads=1, progress=False, deterministic=True, epochs=1)
ARGS = ["--train-size", "128", "--test-size", "32", "--batch-size", "32", "--threads", "1", "--no-progress", "--epochs", "1"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "attnzoo", "train", *ARGS, *args], capture_output=True, text=True)


def _run_files(out):
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_overwrite_keeps_the_users_own_files_and_reads_them_first(tmp_path):
    out = tmp_path / "ow"
    train(TrainConfig.of(out=str(out), **SMALL))
    (out / "mine.safetensors").write_bytes((out / "best.safetensors").read_bytes())  # the user's file, in the folder
    again = _cli("--out", str(out), "--overwrite", "--init-from", str(out / "mine.safetensors"))
    assert again.returncode == 0, again.stderr
    assert (out / "mine.safetensors").is_file() and "mine.safetensors" in _run_files(out)
    assert not (out / REPLACED).exists()  # the new run saved a checkpoint: the old one is gone


def test_a_replacement_that_fails_at_its_first_step_leaves_the_old_run_whole(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(TrainConfig.of(out=str(out), **SMALL))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}

    def crash(*_args, **_kwargs):
        raise RuntimeError("the new run crashed at its first step")

    monkeypatch.setattr(engine, "_train_epoch", crash)
    with pytest.raises(RuntimeError, match="first step"):
        train(TrainConfig.of(out=str(out), overwrite=True, seed=1, **SMALL))
    kept = {p.name: p.read_bytes() for p in (out / REPLACED).iterdir()}
    assert {k: v for k, v in kept.items() if k != "config.json"} == {k: v for k, v in before.items() if k != "config.json"}
    assert kept["config.json"] == before["config.json"]


def test_a_folder_whose_run_failed_before_any_checkpoint_takes_the_corrected_command(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(engine, "_train_epoch", lambda *_a, **_k: (_ for _ in ()).throw(RuntimeError("bad flag")))
    with pytest.raises(RuntimeError, match="bad flag"):
        train(TrainConfig.of(out=str(out), **SMALL))
    assert _run_files(out) == ["config.json"]
    monkeypatch.undo()
    summary = train(TrainConfig.of(out=str(out), seed=2, **SMALL))  # no --overwrite needed: nothing to lose
    assert summary["config"]["seed"] == 2


def test_a_second_run_on_a_locked_folder_stops_at_once(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):
        second = _cli("--out", str(out))
    assert second.returncode == 2
    assert f"{out} is in use by another attnzoo run (pid " in second.stderr
    assert _run_files(out) == []
    assert _cli("--out", str(out)).returncode == 0  # released with its holder


def _flip(path):
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x10
    path.write_bytes(bytes(data))


def test_resume_names_damaged_checkpoints_and_never_restarts_over_them(tmp_path):
    out = tmp_path / "run"
    assert _cli("--out", str(out), "--epochs", "2").returncode == 0
    _flip(out / "epoch-0002.safetensors")
    resumed = _cli("--out", str(out), "--epochs", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped damaged checkpoint files: " in resumed.stderr and "epoch-0002.safetensors does not match" in resumed.stderr
    for name in ("epoch-0002.safetensors", "epoch-0003.safetensors"):
        if (out / name).exists():
            _flip(out / name)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    again = _cli("--out", str(out), "--epochs", "4", "--resume")
    assert again.returncode == 2
    assert "--resume: no checkpoint in" in again.stderr and "pass --overwrite" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")} == before

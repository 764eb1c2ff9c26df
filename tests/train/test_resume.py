"""Crash safety: a SIGKILLed run resumes to the same weights; a diverging run keeps its last good checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
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


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from attnzoo.cli import main
    from attnzoo.train import engine

    real_loss, calls = engine._loss, []

    def loss_that_explodes_in_epoch_2(out, target, smoothing):  # 384 images / 32 = 12 steps an epoch
        calls.append(1)
        loss = real_loss(out, target, smoothing)
        return loss * float("nan") if len(calls) > 14 else loss

    monkeypatch.setattr(engine, "_loss", loss_that_explodes_in_epoch_2)
    assert main(["train", "--out", str(tmp_path), *ARGS, "--epochs", "3"]) == 3
    err = capsys.readouterr().err
    assert "loss is nan at epoch 2, step 2; training stopped." in err
    assert f"The last good checkpoint is kept: {tmp_path / 'epoch-0001.safetensors'}." in err
    weights, _ = latest_checkpoint(tmp_path)
    assert weights.name == "epoch-0001.safetensors"
    assert all(torch.isfinite(v.float()).all() for v in _final_weights(tmp_path).values())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["health_flags"][0] == "non-finite loss"


def test_nan_before_any_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    from attnzoo.cli import main
    from attnzoo.train import engine

    monkeypatch.setattr(engine, "_loss", lambda out, target, smoothing: out.sum() * float("inf"))
    assert main(["train", "--out", str(tmp_path), *ARGS, "--epochs", "1"]) == 3
    assert "No checkpoint had been written yet." in capsys.readouterr().err


def _interruptible(out, *extra):
    """A training child whose SIGINT is delivered (default disposition), even when this test
    process runs in the background with SIGINT ignored: the child's disposition is set here."""
    return subprocess.Popen(
        [sys.executable, "-m", "attnzoo", "train", "--out", str(out), *ARGS, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(path, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and not path.is_file():
        time.sleep(0.01)


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_ctrl_c_then_resume_matches_uninterrupted_run(tmp_path, delay):
    epochs = ["--epochs", "4"]
    reference = _train(tmp_path / "ref", *epochs)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "interrupted"
    proc = _interruptible(out, *epochs)
    _wait_for(out / "checkpoint.json")
    time.sleep(delay)  # mid-epoch, or during an evaluation
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 130, err
    assert "interrupted: checkpoint saved" in err
    resumed = _train(out, *epochs, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    ref, got = _final_weights(tmp_path / "ref"), _final_weights(out)
    mismatched = [k for k in ref if not torch.equal(ref[k], got[k])]  # BN running stats and num_batches_tracked included
    assert not mismatched, f"differing tensors: {mismatched[:5]}"
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert all(r["images_per_s"] > 0 for r in records)


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    assert _train(tmp_path, "--epochs", "1").returncode == 0
    files = lambda: {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != ".attnzoo.lock"}  # noqa: E731
    before = files()
    again = _train(tmp_path, "--epochs", "1", "--resume")
    assert again.returncode == 0, again.stderr
    assert "finished all 1 epochs already; nothing to do" in again.stderr
    assert files() == before  # the lock file holds the last holder's pid, nothing of the run


def test_resume_takes_the_runs_config_and_refuses_changes(tmp_path):
    assert _train(tmp_path, "--epochs", "1", "--lr", "0.03", "--seed", "5").returncode == 0
    extended = subprocess.run([sys.executable, "-m", "attnzoo", "train", "--out", str(tmp_path), "--resume", "--epochs", "2", "--no-progress"],
                              capture_output=True, text=True)
    assert extended.returncode == 0, extended.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["lr"], config["seed"], config["train_size"], config["attn"], config["epochs"]) == (0.03, 5, 384, "cbam", 2)
    changed = _train(tmp_path, "--epochs", "3", "--resume", "--lr", "0.1")
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines()[-1] == (
        f"attnzoo train: error: --resume continues {tmp_path} as it was configured; it differs in lr (run: 0.03, now: 0.1). "
        "Start a new run (another --out) to change them")


def test_missing_manifest_neither_overwrites_nor_loses_the_run(tmp_path):
    assert _train(tmp_path, "--epochs", "2").returncode == 0
    (tmp_path / "checkpoint.json").unlink()
    (tmp_path / "summary.json").unlink()
    best = (tmp_path / "best.safetensors").read_bytes()
    fresh = _train(tmp_path, "--epochs", "3")
    assert fresh.returncode == 2 and "already holds a run; pass --resume" in fresh.stderr
    assert (tmp_path / "best.safetensors").read_bytes() == best
    resumed = _train(tmp_path, "--epochs", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "from epoch-0002.safetensors at epoch 3" in resumed.stderr


def _flip_a_bit(path, offset_from_end=100):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x10
    path.write_bytes(bytes(data))


def test_flipped_bits_are_refused_with_the_file_named(tmp_path):
    assert _train(tmp_path, "--epochs", "2").returncode == 0
    weights = tmp_path / "epoch-0002.safetensors"
    _flip_a_bit(weights)
    evaluated = subprocess.run([sys.executable, "-m", "attnzoo", "eval", str(tmp_path)], capture_output=True, text=True)
    assert evaluated.returncode == 2
    assert evaluated.stderr.strip() == (f"attnzoo eval: error: {weights} does not match the checksum recorded in "
                                        f"{tmp_path / 'checkpoint.json'}: the file was altered or damaged")
    _flip_a_bit(tmp_path / "best.safetensors")
    assert "best.safetensors does not match the checksum" in subprocess.run(
        [sys.executable, "-m", "attnzoo", "eval", str(tmp_path / "best.safetensors")], capture_output=True, text=True).stderr
    # resume falls back to the newest checkpoint that verifies
    resumed = _train(tmp_path, "--epochs", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "from epoch-0001.safetensors at epoch 2" in resumed.stderr


def test_truncated_and_foreign_files_are_one_line_errors(tmp_path):
    from attnzoo.train.checkpoint import CheckpointError, load_state, load_weights as load

    assert _train(tmp_path, "--epochs", "1").returncode == 0
    (tmp_path / "checkpoint.json").unlink()  # no checksum to compare: the format check must catch it
    weights = tmp_path / "epoch-0001.safetensors"
    weights.write_bytes(weights.read_bytes()[:-500])
    with pytest.raises(CheckpointError, match=f"{weights} is not a readable safetensors file"):
        load(weights)
    evil = tmp_path / "evil.state.pt"
    torch.save({"x": ValueError("not a tensor")}, evil)  # pickles a class: refused by weights_only
    with pytest.raises(CheckpointError, match=f"{evil}: refused to load as a training state"):
        load_state(evil)


def test_read_only_output_fails_before_any_work(tmp_path, monkeypatch, capsys):
    from attnzoo.cli import main
    from attnzoo.utils import io

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() == 0:  # root writes into read-only folders: make the write fail as it would for a user
        monkeypatch.setattr(io.tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(ro), *ARGS, "--epochs", "1"])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"attnzoo train: error: cannot write to {ro}: Permission denied\n"
    assert not (ro / "config.json").exists()


def test_unwritable_output_fails_before_any_work(tmp_path, monkeypatch):
    from attnzoo.train import TrainConfig, train
    from attnzoo.utils import io

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match="cannot write to .*: No space left on device"):
        train(TrainConfig.of(out=str(tmp_path / "full"), epochs=1, train_size=64, test_size=32))
    assert not list((tmp_path / "full").glob("*"))  # nothing trained, nothing written


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    from attnzoo.train import TrainConfig, train
    from attnzoo.train import checkpoint as ckpt

    cfg = TrainConfig.of(out=str(tmp_path), epochs=2, train_size=64, test_size=32, progress=False)
    train(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 1}))
    before = (tmp_path / "checkpoint.json").read_text()
    real = ckpt.atomic_write_bytes

    def full(path, data):
        if str(path).endswith("epoch-0002.state.pt"):
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        train(TrainConfig.from_dict({**cfg.to_dict(), "resume": True}))
    assert (tmp_path / "checkpoint.json").read_text() == before  # the manifest still names epoch 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(ckpt, "atomic_write_bytes", real)
    assert train(TrainConfig.from_dict({**cfg.to_dict(), "resume": True}))["last_top1"] is not None


def test_fault_walkthrough_ends_where_an_uninterrupted_run_ends(tmp_path):
    """One run through every fault in turn — kill -9, Ctrl-C, a deleted manifest, a truncated and a
    bit-flipped weight file — resumed after each: nothing is lost, every failure is named, and the
    final weights equal an uninterrupted run's bit for bit."""
    epochs = ["--epochs", "6"]
    assert _train(tmp_path / "ref", *epochs).returncode == 0
    out = tmp_path / "run"

    proc = _interruptible(out, *epochs)  # 1. kill -9 once the first checkpoint exists
    _wait_for(out / "checkpoint.json")
    proc.kill()
    proc.wait()

    before = (out / "checkpoint.json").read_text()
    proc = _interruptible(out, *epochs, "--resume")  # 2. Ctrl-C during the resumed run, once it trains:
    deadline = time.time() + 120  # (a fixed delay could land in the child's `import torch` on a loaded machine)
    while time.time() < deadline and (out / "checkpoint.json").read_text() == before and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err

    (out / "checkpoint.json").unlink()  # 3. the manifest is lost
    names = sorted(p.name for p in out.glob("epoch-*.safetensors"))
    newest = out / names[-1]
    newest.write_bytes(newest.read_bytes()[:-300])  # 4. the newest weights are truncated
    refused = subprocess.run([sys.executable, "-m", "attnzoo", "eval", str(newest)], capture_output=True, text=True)
    assert refused.returncode == 2 and f"{newest} is not a readable safetensors file" in refused.stderr
    resumed = _train(out, *epochs, "--resume")
    assert resumed.returncode == 0, resumed.stderr

    _flip_a_bit(out / "best.safetensors")  # 5. a flipped bit in a finished run is named, not used
    flipped = subprocess.run([sys.executable, "-m", "attnzoo", "eval", str(out / "best.safetensors")], capture_output=True, text=True)
    assert flipped.returncode == 2 and "does not match the checksum" in flipped.stderr

    ref, got = _final_weights(tmp_path / "ref"), _final_weights(out)
    assert [k for k in ref if not torch.equal(ref[k], got[k])] == []
    assert [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_a_full_disk_is_one_line_and_leaves_a_resumable_run(tmp_path, monkeypatch, capsys):
    """ENOSPC while epoch 2's checkpoint is written: one line naming the file, exit 1, no part of
    the epoch-2 files left, and --resume continues from epoch 1's checkpoint."""
    import errno

    from attnzoo.cli import main
    from attnzoo.utils import io

    real_replace = os.replace

    def replace_with_a_full_disk(src, dst):
        if os.path.basename(dst).startswith("epoch-0002"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", replace_with_a_full_disk)
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(tmp_path), *ARGS, "--epochs", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 1
    assert err.endswith(f"attnzoo train: error: {tmp_path / 'epoch-0002.safetensors'}: No space left on device\n"), err
    assert sorted(p.name for p in tmp_path.glob("epoch-0002*")) == [] and not list(tmp_path.glob(".*.tmp"))

    monkeypatch.setattr(io.os, "replace", real_replace)
    assert main(["train", "--out", str(tmp_path), *ARGS, "--epochs", "2", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().err and (tmp_path / "epoch-0002.safetensors").is_file()


@pytest.mark.parametrize("name", ["config.json", "summary.json"])
def test_a_damaged_json_file_of_a_run_is_named(tmp_path, name, capsys):
    from attnzoo.cli import main

    assert main(["train", "--out", str(tmp_path), *ARGS, "--epochs", "1"]) == 0
    (tmp_path / name).write_text('{"epochs": 1,')
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(tmp_path), *ARGS, "--epochs", "1", "--resume"])
    assert e.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: {tmp_path / name}: not valid JSON (Expecting property name enclosed "
                                            "in double quotes at line 1, column 14)\n")

import json
import os

import pytest
import torch

from attnzoo.train import checkpoint as ckpt


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    ckpt.atomic_write_bytes(path, b"old")

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


def test_weights_roundtrip_with_metadata(tmp_path):
    sd = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    ckpt.save_weights(tmp_path / "w.safetensors", sd, {"config": "{}"})
    loaded, meta = ckpt.load_weights(tmp_path / "w.safetensors")
    assert meta == {"config": "{}"}
    assert all(torch.equal(sd[k], loaded[k]) for k in sd)


def test_state_loads_with_weights_only(tmp_path):
    state = {"optimizer": torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1).state_dict(), "epoch": 3, "rng": torch.get_rng_state(), "history": [{"epoch": 1, "top1": 0.5}]}
    ckpt.save_state(tmp_path / "s.pt", state)
    assert ckpt.load_state(tmp_path / "s.pt")["epoch"] == 3


def test_state_loader_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        ckpt.load_state(tmp_path / "evil.pt")


def test_checkpoint_pointer_and_pruning(tmp_path):
    for epoch in range(1, 5):
        ckpt.save_checkpoint(tmp_path, f"epoch-{epoch:04d}", {"w": torch.full((2,), float(epoch))}, {"epoch": epoch}, {"format": "x"})
    weights, state = ckpt.latest_checkpoint(tmp_path)
    assert weights.name == "epoch-0004.safetensors" and ckpt.load_state(state)["epoch"] == 4
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["epoch-0003.safetensors", "epoch-0004.safetensors"]
    assert json.loads((tmp_path / "checkpoint.json").read_text())["history"] == ["epoch-0003", "epoch-0004"]
    assert ckpt.latest_checkpoint(tmp_path / "none") is None


def test_a_run_written_by_the_previous_layout_loads_and_resumes(tmp_path):
    """tests/fixtures/v1-run: `attnzoo train --attn cbam --train-size 64 --test-size 32 --epochs 1`
    written by attnzoo at e0e700b (checkpoint format v1: no config.json, no checksums, and CBAM's
    default spatial gate was then the paper form)."""
    import shutil
    from pathlib import Path

    from attnzoo.cli import main
    from attnzoo.train.evaluate import load_trained_model

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "v1-run"
    model, cfg, meta = load_trained_model(fixture)
    assert meta["format"] == "attnzoo-checkpoint-v1" and cfg.model.attn_options == {"variant": "paper"}
    assert model.layer1[0].attn.spatial.variant == "paper"  # the weights loaded strictly into the form they were trained in
    run = tmp_path / "run"
    shutil.copytree(fixture, run)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 0
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert json.loads((run / "config.json").read_text())["attn_options"] == {"variant": "paper"}


def _fake_checkpoint(directory, tag):
    ckpt.save_checkpoint(directory, tag, {"w": torch.zeros(2)}, {"epoch": 1, "step": 1}, {})


@pytest.mark.parametrize("entry", ["../victim/model", "{victim}/model", "sub/../../victim/model"])
def test_a_manifest_from_elsewhere_never_deletes_files_outside_its_folder(tmp_path, entry):
    run, victim = tmp_path / "run", tmp_path / "victim"
    run.mkdir(), victim.mkdir()
    for suffix in (".safetensors", ".state.pt"):
        (victim / f"model{suffix}").write_bytes(b"precious")
    _fake_checkpoint(run, "epoch-0001")
    manifest = json.loads((run / ckpt.POINTER).read_text())
    manifest["history"] = [entry.format(victim=victim)] + manifest["history"]  # planted, as in a received folder
    (run / ckpt.POINTER).write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match="names files outside its folder"):
        ckpt.read_manifest(run)
    for tag in ("epoch-0002", "epoch-0003", "epoch-0004"):  # each save prunes the history
        _fake_checkpoint(run, tag)
    assert sorted(p.name for p in victim.iterdir()) == ["model.safetensors", "model.state.pt"]
    assert json.loads((run / ckpt.POINTER).read_text())["history"] == ["epoch-0003", "epoch-0004"]


def test_a_manifest_pointing_outside_its_folder_is_refused(tmp_path):
    _fake_checkpoint(tmp_path, "epoch-0001")
    manifest = json.loads((tmp_path / ckpt.POINTER).read_text())
    manifest["weights"] = "/etc/model.safetensors"
    (tmp_path / ckpt.POINTER).write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match="refusing it"):
        ckpt.latest_checkpoint(tmp_path)


def test_tags_are_bare_checkpoint_names():
    assert ckpt.is_tag("epoch-0012") and ckpt.is_tag("interrupted")
    assert not any(ckpt.is_tag(t) for t in ("../epoch-0001", "/abs/interrupted", "epoch-1", "best", None, 3))

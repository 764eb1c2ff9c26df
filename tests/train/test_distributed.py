"""torchrun with 2 CPU processes (gloo) must train like one process with the same global batch."""

import json
import socket
import subprocess
import sys

import torch

from attnzoo.train import latest_checkpoint, load_weights

# One epoch (8 steps): gradients are averaged across ranks in another summation order, and on the
# loss plateau at chance that rounding difference grows with every step. GroupNorm: with BatchNorm each rank normalises its own half batch, which is DDP's documented
# behaviour on CPU (no SyncBatchNorm there) but not the same computation as one process.
ARGS = ["--train-size", "256", "--test-size", "96", "--batch-size", "32", "--epochs", "1", "--threads", "1", "--no-progress",
        "--model-opt", "norm=\"group\"", "--attn", "se"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_single_process(tmp_path):
    single = subprocess.run([sys.executable, "-m", "attnzoo", "train", "--out", str(tmp_path / "one"), *ARGS], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2", "--master-addr=127.0.0.1",
         f"--master-port={_free_port()}", "-m", "attnzoo", "train", "--out", str(tmp_path / "two"), *ARGS],
        capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two"))
    assert two["world_size"] == 2 and one["world_size"] == 1
    a = load_weights(latest_checkpoint(tmp_path / "one")[0])[0]
    b = load_weights(latest_checkpoint(tmp_path / "two")[0])[0]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    # the sharded evaluation sums to the whole test set
    assert abs(one["last_top1"] - two["last_top1"]) <= 1 / 96 + 1e-9
    # only rank 0 wrote: one metrics line per epoch
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 1

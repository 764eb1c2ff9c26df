"""Training cost before and after a change, measured in one run: an older commit's attnzoo (taken
from git into a temporary package ``attnzoo_before``) beside this checkout's, on the same backbone.

    python scripts/before_after.py --before b83c25c --model resnet50 --batch 8 --size 128 --threads 2 --rounds 60

Every candidate's training step (zero_grad, forward, cross-entropy, backward) is timed in
interleaved rounds (medians), and each version's attention models are given as ratios to that
version's plain backbone; the bytes autograd saves for backward in one step are counted too.
Writes ``OUT.json`` and ``OUT.md`` (default docs/bench/ops/before-after).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from attnzoo.bench.memory import saved_activation_bytes  # noqa: E402
from attnzoo.bench.timing import time_interleaved  # noqa: E402
from attnzoo.utils.io import atomic_write_text  # noqa: E402


def import_commit(commit: str, folder: Path):
    """attnzoo as of ``commit``, importable as ``attnzoo_before`` (its imports inside are relative)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src/attnzoo"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "src" / "attnzoo").rename(folder / "attnzoo_before")
    sys.path.insert(0, str(folder))
    return importlib.import_module("attnzoo_before")


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    def run():
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="b83c25c")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--variants", nargs="+", default=["plain", "se", "eca", "cbam"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "ops" / "before-after"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import attnzoo

    with tempfile.TemporaryDirectory() as tmp:
        versions = {"before": import_commit(args.before, Path(tmp)), "after": attnzoo}
        x = torch.randn(args.batch, 3, args.size, args.size)
        y = torch.randint(0, 1000, (args.batch,))
        candidates, saved = {}, {}
        for version, package in versions.items():
            for variant in args.variants:
                torch.manual_seed(0)
                role = "fusion" if variant in package.list_fusion() else "attn"  # aff, iaff: the block's addition
                model = package.create_model(args.model, **{role: None if variant == "plain" else variant}).train()
                step = train_step(model, x, y)
                saved[f"{version} {variant}"] = saved_activation_bytes(lambda: model(x))
                candidates[f"{version} {variant}"] = step
        times = time_interleaved(candidates, rounds=args.rounds, warmup=args.warmup)
    rows = []
    for variant in args.variants:
        row = {"variant": variant}
        for version in versions:
            key = f"{version} {variant}"
            row[f"{version}_ms"] = times[key]["median"] * 1e3
            row[f"{version}_x_plain"] = times[key]["median"] / times[f"{version} plain"]["median"]
            row[f"{version}_saved_mb"] = saved[key] / 2**20
        rows.append(row)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True).stdout.strip())
    result = {"command": "python scripts/before_after.py " + " ".join(argv or sys.argv[1:]), "before": args.before,
              "after": head + (" + uncommitted src changes" if dirty else ""), "torch": torch.__version__,
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "cores": os.cpu_count()},
              "setting": f"{args.model}, batch {args.batch}, {args.size}², training step (zero_grad, forward, cross-entropy, backward), "
                         f"{args.rounds} interleaved rounds, medians", "rows": rows}
    lines = [f"Training step, before ({args.before}) and after ({result['after']}), one run: {result['setting']}; "
             f"torch {torch.__version__}, {args.threads} threads.", "",
             "| variant | before ms | × plain | saved MB | after ms | × plain | saved MB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['before_ms']:.1f} | {r['before_x_plain']:.3f} | {r['before_saved_mb']:.1f} | "
                     f"{r['after_ms']:.1f} | {r['after_x_plain']:.3f} | {r['after_saved_mb']:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

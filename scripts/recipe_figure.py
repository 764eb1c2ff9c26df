"""docs/results/recipe/: the lr × epochs grid of plain ResNet-8 runs (scripts/results.sh recipe)
as a table, and the test-accuracy and loss curves of every run (collapsed ones stand out)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnzoo.utils.io import atomic_write_text, save_figure  # noqa: E402


def main(root: Path, dest: Path) -> None:
    cells: dict[tuple[float, int], dict[int, list[dict]]] = {}
    for summary_path in sorted(root.glob("*/runs/*/summary.json")):
        summary = json.loads(summary_path.read_text())
        history = [json.loads(line) for line in (summary_path.parent / "metrics.jsonl").read_text().splitlines()]
        key = (summary["peak_lr"], summary["config"]["epochs"])
        cells.setdefault(key, {})[summary["seed"]] = history
    lrs, epochs = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    lines = ["| peak lr (batch 32) | " + " | ".join(f"{e} epochs: top-1 per seed" for e in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for lr in lrs:
        row = []
        for e in epochs:
            runs = cells.get((lr, e), {})
            row.append(", ".join(f"{100 * h[-1]['test_top1']:.1f}" for _, h in sorted(runs.items())) or "—")
        lines.append(f"| {lr} | " + " | ".join(row) + " |")
    atomic_write_text(dest / "grid.md", "\n".join(lines) + "\n")
    fig, axes = plt.subplots(2, len(epochs), figsize=(5.5 * len(epochs), 7), squeeze=False)
    colors = {lr: c for lr, c in zip(lrs, ["tab:blue", "tab:green", "tab:red", "tab:purple"])}
    for j, e in enumerate(epochs):
        for lr in lrs:
            for seed, history in sorted(cells.get((lr, e), {}).items()):
                x = [h["epoch"] for h in history]
                label = f"lr {lr}" if seed == min(cells[(lr, e)]) else None
                axes[0][j].plot(x, [100 * h["test_top1"] for h in history], color=colors[lr], alpha=0.8, label=label)
                axes[1][j].plot(x, [h["train_loss"] for h in history], color=colors[lr], alpha=0.8)
        axes[0][j].axhline(20, color="0.5", ls=":", lw=1)
        axes[0][j].set_title(f"plain cifar_resnet8, {e} epochs, batch 32 (one line per seed)", fontsize=9)
        axes[0][j].set_ylabel("test top-1 % (dotted: 2x chance)")
        axes[1][j].axhline(2.3026, color="0.5", ls=":", lw=1)
        axes[1][j].set_ylabel("train loss (dotted: ln 10, chance)")
        axes[1][j].set_xlabel("epoch")
        axes[0][j].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, dest / "curves.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

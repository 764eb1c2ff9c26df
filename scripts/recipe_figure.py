"""A grid of plain-model runs behind the recipe (scripts/results.sh recipe, warmup) as a table of
top-1 per seed, and the test-accuracy and loss curves of every run (collapsed ones stand out).

    python scripts/recipe_figure.py RUNS DEST [--rows peak_lr] [--cols epochs]

Rows and columns are ``peak_lr`` or any field of the runs' TrainConfig (``warmup_epochs``,
``data_seed``, ...); every ``RUNS/*/runs/*/summary.json`` is one run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnzoo.utils.io import atomic_write_text, save_figure  # noqa: E402

TITLES = {"peak_lr": "peak lr (batch 32)", "warmup_epochs": "warm-up epochs", "epochs": "epochs", "data_seed": "data seed"}


def _key(summary: dict, field: str) -> Any:
    return summary["peak_lr"] if field == "peak_lr" else summary["config"][field]


def _load(root: Path, rows: str, cols: str) -> tuple[dict, dict]:
    cells: dict[tuple[Any, Any], dict[int, list[dict]]] = {}
    described: dict[Any, str] = {}
    for summary_path in sorted(root.glob("*/runs/*/summary.json")):
        summary = json.loads(summary_path.read_text())
        history = [json.loads(line) for line in (summary_path.parent / "metrics.jsonl").read_text().splitlines()]
        cells.setdefault((_key(summary, rows), _key(summary, cols)), {})[summary["seed"]] = history
        config = summary["config"]
        described[_key(summary, cols)] = f"plain {config['model']}, {config['epochs']} epochs, batch {config['batch_size']}"
    return cells, described


def main(root: Path, dest: Path, rows: str, cols: str) -> None:
    cells, described = _load(root, rows, cols)
    row_keys, col_keys = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    col_title = TITLES.get(cols, cols)
    lines = [f"| {TITLES.get(rows, rows)} | " + " | ".join(f"{col_title} {c}: top-1 per seed (seeds)" for c in col_keys) + " |",
             "|---|" + "---|" * len(col_keys)]
    for r in row_keys:
        row = []
        for c in col_keys:
            runs = sorted(cells.get((r, c), {}).items())
            row.append(", ".join(f"{100 * h[-1]['test_top1']:.1f}" for _, h in runs) + (f" ({runs[0][0]}–{runs[-1][0]})" if runs else "—"))
        lines.append(f"| {r} | " + " | ".join(row) + " |")
    atomic_write_text(dest / "grid.md", "\n".join(lines) + "\n")
    fig, axes = plt.subplots(2, len(col_keys), figsize=(5.5 * len(col_keys), 7), squeeze=False)
    colors = dict(zip(row_keys, ["tab:blue", "tab:green", "tab:red", "tab:purple"]))
    for j, c in enumerate(col_keys):
        for r in row_keys:
            for seed, history in sorted(cells.get((r, c), {}).items()):
                x = [h["epoch"] for h in history]
                label = f"{TITLES.get(rows, rows)} {r}" if seed == min(cells[(r, c)]) else None
                axes[0][j].plot(x, [100 * h["test_top1"] for h in history], color=colors[r], alpha=0.8, label=label)
                axes[1][j].plot(x, [h["train_loss"] for h in history], color=colors[r], alpha=0.8)
        axes[0][j].axhline(20, color="0.5", ls=":", lw=1)
        axes[0][j].set_title(f"{described[c]}, {col_title} {c} (one line per seed)", fontsize=9)
        axes[0][j].set_ylabel("test top-1 % (dotted: 2x chance)")
        axes[1][j].axhline(2.3026, color="0.5", ls=":", lw=1)
        axes[1][j].set_ylabel("train loss (dotted: ln 10, chance)")
        axes[1][j].set_xlabel("epoch")
        axes[0][j].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, dest / "curves.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--rows", default="peak_lr")
    parser.add_argument("--cols", default="epochs")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    main(args.runs, args.dest, args.rows, args.cols)

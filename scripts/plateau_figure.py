"""How long plain runs sit on the loss plateau at ln 10, per recipe candidate (scripts/results.sh plateau).

    python scripts/plateau_figure.py RUNS DEST

Every ``RUNS/<candidate>-data<N>/runs/*/`` is one run; runs whose folder names differ only in the
``-data<N>`` suffix belong to one candidate. A run has *left the plateau* in the first epoch whose
mean training loss is below ``ESCAPE_LOSS`` (0.3 nats under chance, ln 10 ≈ 2.303). Writes
``DEST/plateau.md`` (escape epochs and final top-1 per candidate), ``DEST/per-run.md``, ``DEST/plateau.json``
and ``DEST/plateau.png`` (every run's training loss, one panel per candidate, and the final top-1).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnzoo.experiments.stats import paired  # noqa: E402
from attnzoo.utils.io import atomic_write_json, atomic_write_text, save_figure  # noqa: E402

ESCAPE_LOSS = 2.0
LATE_TOP1 = 0.8  # a run that ends below this has spent most of its budget on the plateau


def escape_epoch(losses: list[float]) -> Optional[int]:
    """The first (1-based) epoch whose mean training loss is below ESCAPE_LOSS, None if none is."""
    return next((i + 1 for i, loss in enumerate(losses) if loss < ESCAPE_LOSS), None)


def load(root: Path) -> dict[str, list[dict[str, Any]]]:
    candidates: dict[str, list[dict[str, Any]]] = {}
    for summary_path in sorted(root.glob("*/runs/*/summary.json")):
        summary = json.loads(summary_path.read_text())
        history = [json.loads(line) for line in (summary_path.parent / "metrics.jsonl").read_text().splitlines()]
        losses = [h["train_loss"] for h in history]
        name = re.sub(r"-data\d+$", "", summary_path.parents[2].name)
        candidates.setdefault(name, []).append({
            "seed": summary["seed"], "data_seed": summary["config"]["data_seed"], "train_loss": losses,
            "escape_epoch": escape_epoch(losses), "top1": history[-1]["test_top1"],
        })
    return candidates


def summarise(runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    epochs = len(runs[0]["train_loss"])
    escapes = [r["escape_epoch"] if r["escape_epoch"] is not None else math.inf for r in runs]
    top1 = [r["top1"] for r in runs]
    # Seed k of every candidate shares its initialisation, data and data order: paired by seed.
    vs_reference = paired({r["seed"]: r["top1"] for r in runs}, {r["seed"]: r["top1"] for r in reference})
    return {
        "runs": len(runs),
        "escape_counts": {str(e): sum(x == e for x in escapes) for e in range(1, epochs + 1)} | {"never": sum(math.isinf(x) for x in escapes)},
        "escape_median": statistics.median(escapes),
        "late": sum(t < LATE_TOP1 for t in top1),
        "top1_mean": statistics.fmean(top1),
        "top1_sd": statistics.stdev(top1) if len(top1) > 1 else 0.0,
        "top1_min": min(top1),
        "top1_median": statistics.median(top1),
        "vs_reference": vs_reference.to_dict() if vs_reference else None,
    }


def markdown(candidates: dict[str, list[dict[str, Any]]], summaries: dict[str, dict[str, Any]], reference: str) -> str:
    epochs = len(next(iter(candidates.values()))[0]["train_loss"])
    head = " | ".join(str(e) for e in range(1, epochs + 1))
    lines = [
        f"Epoch in which each run's mean training loss first fell below {ESCAPE_LOSS} (chance: ln 10 ≈ 2.303), and its "
        f"final test top-1. 'late' counts runs that end below {LATE_TOP1:.0%}. Δ: top-1 minus {reference}'s on the same seed "
        "(mean, paired 95% t interval; points).",
        "",
        f"| candidate | runs | left the plateau in epoch {head} | never | median epoch | late | top-1 mean ± sd | median | min | Δ [95% CI] |",
        "|---|---|" + "---|" * epochs + "---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        counts = " | ".join(str(s["escape_counts"][str(e)]) for e in range(1, epochs + 1))
        lines.append(
            f"| {name} | {s['runs']} | {counts} | {s['escape_counts']['never']} | {s['escape_median']:g} | {s['late']} | "
            f"{100 * s['top1_mean']:.1f} ± {100 * s['top1_sd']:.1f} | {100 * s['top1_median']:.1f} | {100 * s['top1_min']:.1f} | {_delta(name, s, reference)} |"
        )
    return "\n".join(lines) + "\n"


def _delta(name: str, summary: dict[str, Any], reference: str) -> str:
    d = summary["vs_reference"]
    if name == reference or d is None:
        return "—"
    return f"{100 * d['diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"


def per_run_markdown(candidates: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["Per run — seed/data seed: epoch it left the plateau, final top-1 (%)", ""]
    for name, runs in candidates.items():
        cells = "; ".join(f"{r['seed']}/{r['data_seed']}: {r['escape_epoch'] or 'never'}, {100 * r['top1']:.1f}" for r in runs)
        lines.append(f"- **{name}**: {cells}")
    return "\n".join(lines) + "\n"


def figure(candidates: dict[str, list[dict[str, Any]]], dest: Path) -> None:
    fig, axes = plt.subplots(1, len(candidates) + 1, figsize=(3.2 * (len(candidates) + 1), 3.2), squeeze=False)
    for ax, (name, runs) in zip(axes[0], candidates.items()):
        for r in runs:
            late = r["top1"] < LATE_TOP1
            ax.plot(range(1, len(r["train_loss"]) + 1), r["train_loss"], color="tab:red" if late else "tab:blue", alpha=0.9 if late else 0.35, lw=1)
        ax.axhline(math.log(10), color="grey", ls=":", lw=1)
        ax.set(title=name, xlabel="epoch", ylim=(0, 2.6))
    axes[0][0].set_ylabel("training loss (red: ends < 80%)")
    ax = axes[0][-1]
    for i, runs in enumerate(candidates.values()):
        ax.scatter([i] * len(runs), [100 * r["top1"] for r in runs], s=12, alpha=0.6)
    ax.set_xticks(range(len(candidates)), list(candidates), rotation=30, ha="right", fontsize=7)
    ax.set(title="final test top-1 (%)")
    fig.tight_layout()
    save_figure(fig, dest / "plateau.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--reference", default="lr0.05-warmup1", help="the candidate the others are paired with (default: the recipe)")
    args = parser.parse_args()
    candidates = load(args.runs)
    if not candidates:
        raise SystemExit(f"no runs under {args.runs} (expected {args.runs}/<candidate>-data<N>/runs/<run>/summary.json)")
    if args.reference not in candidates:
        raise SystemExit(f"reference {args.reference!r} is not among the candidates ({', '.join(candidates)})")
    summaries = {name: summarise(runs, candidates[args.reference]) for name, runs in candidates.items()}
    args.dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.dest / "plateau.md", markdown(candidates, summaries, args.reference))
    atomic_write_text(args.dest / "per-run.md", per_run_markdown(candidates))
    atomic_write_json(args.dest / "plateau.json", {"escape_loss": ESCAPE_LOSS, "late_top1": LATE_TOP1, "reference": args.reference,
                                                  "summaries": summaries, "runs": candidates})
    figure(candidates, args.dest)
    print((args.dest / "plateau.md").read_text())


if __name__ == "__main__":
    main()

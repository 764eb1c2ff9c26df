"""From finished runs to a verdict: leaderboard, statistics, words, and plots.

Flagged runs (see :mod:`attnzoo.train.health`) are listed but never averaged: every mean,
interval and test uses the healthy runs only, and the paired test uses the seeds where both
the variant and plain are healthy.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from ..utils.io import atomic_write_json, atomic_write_text, read_json, read_json_lines, save_figure
from . import stats

ALPHA = 0.05


def load_summaries(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    summaries = []
    for d in run_dirs:
        s = read_json(Path(d) / "summary.json")
        s["_dir"] = str(d)
        summaries.append(s)
    if not summaries:
        raise ValueError("no runs to aggregate (no summary.json found)")
    return summaries


def is_healthy(s: dict[str, Any]) -> bool:
    # Summaries written before health checks existed carry no flags: judged by accuracy alone.
    return s.get("healthy", s.get("last_top1") is not None)


def aggregate(summaries: Sequence[dict[str, Any]], reference: str = "plain") -> dict[str, Any]:
    """Leaderboard rows grouped by variant and ranked by mean final top-1 of the healthy runs."""
    groups: dict[str, list[dict]] = {}
    for s in summaries:
        groups.setdefault(s["variant"], []).append(s)
    ref_by_seed = {s["seed"]: s["last_top1"] for s in groups.get(reference, []) if is_healthy(s)}
    rows = []
    for variant, runs in groups.items():
        runs = sorted(runs, key=lambda s: s["seed"])
        good = [s for s in runs if is_healthy(s)]
        top1 = [s["last_top1"] for s in good]
        row: dict[str, Any] = {
            "variant": variant,
            "runs": len(runs),
            "healthy_runs": len(good),
            "seeds": [s["seed"] for s in runs],
            "top1_by_seed": {str(s["seed"]): s["last_top1"] for s in good},
            "flagged": [{"seed": s["seed"], "top1": s["last_top1"], "flags": s.get("health_flags", ["no score"])} for s in runs if not is_healthy(s)],
            "top1_mean": statistics.fmean(top1) if top1 else None,
            "top1_std": statistics.stdev(top1) if len(top1) > 1 else None,
            "params": runs[0]["params"],
            "macs": runs[0]["macs"],
            "images_per_s": _mean(s.get("images_per_s") for s in runs),
            "train_time_s_mean": _mean(s.get("wall_time_s") for s in runs),
            "data_share_mean": _mean(s.get("data_share") for s in runs),
            "config": runs[0]["config"],
        }
        if variant != reference and ref_by_seed:
            mine = {s["seed"]: s["last_top1"] for s in good}
            welch = stats.welch(top1, list(ref_by_seed.values()))
            pair = stats.paired(mine, ref_by_seed)
            row["welch"] = welch.to_dict() if welch else None
            row["paired"] = pair.to_dict() if pair else None
            if pair is not None:
                d = [mine[k] - ref_by_seed[k] for k in sorted(set(mine) & set(ref_by_seed))]
                row["paired"]["sd"] = statistics.stdev(d)
                row["paired"]["seeds_for_80pct_power"] = stats.seeds_to_resolve(pair.diff, statistics.stdev(d))
        rows.append(row)
    tested = {r["variant"]: r["paired"]["p"] for r in rows if r.get("paired")}
    for variant, p_holm in stats.holm(tested).items():
        row = next(r for r in rows if r["variant"] == variant)
        row["paired"]["p_holm"] = p_holm
    rows.sort(key=lambda r: -(r["top1_mean"] if r["top1_mean"] is not None else -1))
    first = summaries[0]
    return {
        "reference": reference,
        "metric": "final-epoch test top-1 over healthy runs (mean ± sample std over seeds)",
        "dataset": first["config"]["dataset"],
        "data_seed": ", ".join(str(d) for d in sorted({s["config"].get("data_seed") for s in summaries}, key=str)),
        "model": first["config"]["model"],
        "epochs": first["config"]["epochs"],
        "recipe": {k: first["config"].get(k) for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs", "train_size", "test_size")}
        | {"peak_lr": first.get("peak_lr")},
        "rows": rows,
        "verdicts": verdicts(rows, reference),
        "versions": first["versions"],
    }


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def verdicts(rows: Sequence[dict[str, Any]], reference: str = "plain") -> list[str]:
    """One sentence per variant: which differences to plain are shown (paired t, Holm-adjusted
    across the variants, 5%) and which are not."""
    lines = []
    for r in rows:
        if r["variant"] == reference:
            if r["flagged"]:
                lines.append(f"`{reference}` itself has {len(r['flagged'])} flagged run(s): the comparison rests on {r['healthy_runs']} seed(s).")
            continue
        flagged = f" ({len(r['flagged'])} flagged run(s) left out)" if r["flagged"] else ""
        pair = r.get("paired")
        if pair is None or "p_holm" not in pair:
            lines.append(f"`{r['variant']}`: too few paired healthy seeds to test{flagged}.")
            continue
        diff, (lo, hi) = 100 * pair["diff"], (100 * pair["ci95"][0], 100 * pair["ci95"][1])
        where = f"{diff:+.1f} points [{lo:+.1f}, {hi:+.1f}], Holm-adjusted p = {pair['p_holm']:.3g}"
        if pair["p_holm"] < ALPHA:
            word = "better" if diff > 0 else "worse"
            lines.append(f"`{r['variant']}` is shown {word} than {reference}: {where}{flagged}.")
        else:
            need = pair.get("seeds_for_80pct_power")
            more = f"; a difference this size would need about {need} seeds to resolve" if need and need > pair["n"] else ""
            if lo > 0 or hi < 0:
                more += f"; the unadjusted interval excludes 0, but not after correcting for {len(tested_rows(rows, reference))} comparisons"
            lines.append(f"`{r['variant']}`: no difference from {reference} shown ({where}){more}{flagged}.")
    return lines


def tested_rows(rows: Sequence[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["variant"] != reference and (r.get("paired") or {}).get("p_holm") is not None]


def _pct(x: Optional[float], sign: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}"


def _interval(d: Optional[dict]) -> str:
    if not d:
        return "—"
    return f"{_pct(d['diff'], True)} [{_pct(d['ci95'][0], True)}, {_pct(d['ci95'][1], True)}]"


def leaderboard_rows(results: dict[str, Any]) -> list[list[str]]:
    """The table's cells, shared by the markdown report and the terminal."""
    cells = []
    for r in results["rows"]:
        pair = r.get("paired") or {}
        p_holm = f"{pair['p_holm']:.3f}" if "p_holm" in pair else "—"
        runs = f"{r['healthy_runs']}/{r['runs']}"
        top1 = f"{_pct(r['top1_mean'])} ± {_pct(r['top1_std'])}" if r["top1_std"] is not None else _pct(r["top1_mean"])
        latency = f"{r['latency_ratio']:.2f}" if r.get("latency_ratio") else "—"
        speed = f"{r['images_per_s']:.0f}" if r.get("images_per_s") else "—"
        cells.append([r["variant"], runs, top1, _interval(r.get("paired")), p_holm, _interval(r.get("welch")), f"{r['params']:,}", latency, speed])
    return cells


HEADERS = ["variant", "healthy/runs", "top-1 %", "paired Δ, 95% CI", "Holm p", "Welch Δ, 95% CI", "params", "latency × plain", "train img/s"]


def report_markdown(results: dict[str, Any], command: Optional[str] = None) -> str:
    recipe = results["recipe"]
    lines = [
        f"# attnzoo compare: {results['model']} on {results['dataset']}, {results['epochs']} epochs",
        "",
        f"Recipe: batch {recipe['batch_size']}, peak lr {recipe.get('peak_lr')}, momentum {recipe['momentum']}, weight decay "
        f"{recipe['weight_decay']}, {recipe['schedule']} schedule with {recipe['warmup_epochs']} warm-up epoch(s); "
        f"data seed(s) {results.get('data_seed')}; {recipe.get('train_size') or 'default'} training images.",
        "",
        f"Metric: {results['metric']}. Each variant's seed k shares data order and augmentation with plain's seed k, so the "
        "primary test is the **paired** difference per seed (t interval, Holm-adjusted p across all variants vs plain); "
        "Welch's interval (unpaired) is shown beside it. Δ in points.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in leaderboard_rows(results)]
    lines += ["", "## Verdict", ""] + [f"- {v}" for v in results["verdicts"]]
    flagged = [(r["variant"], f) for r in results["rows"] for f in r["flagged"]]
    lines += ["", "## Flagged runs", ""]
    if flagged:
        lines += [f"- `{v}` seed {f['seed']} (top-1 {_pct(f['top1'])}): {'; '.join(f['flags'])}" for v, f in flagged]
    else:
        lines.append("None: every run ended above 2× chance with finite loss and no saturated gate.")
    if "latency_setup" in results:
        s = results["latency_setup"]
        lines += ["", f"Latency: median of {s['rounds']} interleaved rounds, input {'×'.join(map(str, s['input_shape']))}, "
                  f"{s['threads']} thread(s), {s['mode']}. Train img/s: mean over epochs, 1 run per core."]
    share = [r["data_share_mean"] for r in results["rows"] if r.get("data_share_mean") is not None]
    if share:
        lines += ["", f"Data preparation took {100 * min(share):.1f}–{100 * max(share):.1f}% of a training step."]
    lines += _localisation_lines(results)
    if command:
        lines += ["", f"Command: `{command}`."]
    lines += ["", f"Versions: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}."]
    return "\n".join(lines) + "\n"


def _localisation_lines(results: dict[str, Any]) -> list[str]:
    if not any("localisation" in r for r in results["rows"]):
        return []
    lines = ["", "## Localisation", "", "Share of attention mass inside the target digit's box on 500 test images (first healthy "
             "run of each variant; full maps: mean over channels; self-attention: mean attention row; Grad-CAM at the last stage). "
             "Uniform attention scores the box's area share.", "",
             "| variant | layer | attention mass in box | Grad-CAM mass in box | uniform |", "|---|---|---|---|---|"]
    for r in results["rows"]:
        loc = r.get("localisation")
        if not loc:
            continue
        cam = f"{loc['gradcam']:.3f}" if "gradcam" in loc else "—"
        for layer, score in (loc["layers"] or {"— (no spatial attention)": None}).items():
            lines.append(f"| {r['variant']} | {layer} | {'—' if score is None else f'{score:.3f}'} | {cam} | {loc['uniform']:.3f} |")
    return lines


def print_leaderboard(results: dict[str, Any]) -> None:
    rows = leaderboard_rows(results)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    print(f"\n{results['model']} on {results['dataset']}, {results['epochs']} epochs ({results['metric']})\n")
    print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print()
    for line in results["verdicts"]:
        print(line.replace("`", ""))
    for r in results["rows"]:
        for f in r["flagged"]:
            print(f"FLAGGED {r['variant']} seed {f['seed']}: {'; '.join(f['flags'])}")


def plot_leaderboard(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if r["top1_mean"] is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.45 * max(len(rows), 2) + 2.5))
    names = [r["variant"] for r in rows][::-1]
    for i, r in enumerate(rows[::-1]):
        pair = r.get("paired")
        if r["variant"] == results["reference"]:
            ax1.plot([0], [i], "s", color="0.4")
            continue
        if pair:
            shown = pair.get("p_holm", 1) < ALPHA
            color = ("tab:green" if pair["diff"] > 0 else "tab:red") if shown else "tab:blue"
            ax1.errorbar(100 * pair["diff"], i, xerr=[[100 * (pair["diff"] - pair["ci95"][0])], [100 * (pair["ci95"][1] - pair["diff"])]],
                         fmt="o", color=color, capsize=3)
        ref = {int(k): v for k, v in next(rr for rr in results["rows"] if rr["variant"] == results["reference"])["top1_by_seed"].items()}
        d = [100 * (v - ref[int(k)]) for k, v in r["top1_by_seed"].items() if int(k) in ref]
        ax1.plot(d, [i] * len(d), "k.", ms=3, alpha=0.6)
        for f in r["flagged"]:
            ax1.annotate("flagged", (0, i), xytext=(4, -9), textcoords="offset points", fontsize=7, color="tab:red")
    ax1.axvline(0, color="0.3", lw=1, ls="--")
    ax1.set_yticks(range(len(names)), names)
    ax1.set_xlabel(f"Δ top-1 vs {results['reference']} (points): paired mean, 95% CI; dots: seeds\n"
                   "green/red: shown better/worse (Holm 5%), blue: not shown")
    ax1.set_title(f"{results['model']} on {results['dataset']}, {results['epochs']} epochs")
    if rows and all(r.get("latency_ratio") for r in rows):
        biggest = max(r["params"] for r in rows)
        for r in rows:
            ax2.scatter(r["latency_ratio"], 100 * r["top1_mean"], s=30 + r["params"] / biggest * 200,
                        color="0.5" if r["variant"] == results["reference"] else "tab:blue", alpha=0.8)
            ax2.annotate(r["variant"], (r["latency_ratio"], 100 * r["top1_mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax2.set_xlabel("forward latency / plain model (same run)")
        ax2.set_ylabel("test top-1 (%), healthy runs")
        ax2.set_title("accuracy vs cost (marker area ∝ parameters)")
        ax2.grid(alpha=0.3)
    else:
        ax2.axis("off")
    fig.tight_layout()
    save_figure(fig, path)


def plot_gates(run_dirs: Sequence[Path], path: Path) -> bool:
    """Mean of every sigmoid gate per epoch, one panel per variant (all seeds): how a user sees a
    collapse coming. Returns False (and writes nothing) when no run has gates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, dict[str, list[tuple[list[int], list[float]]]]] = {}
    for d in run_dirs:
        metrics = Path(d) / "metrics.jsonl"
        if not metrics.is_file():
            continue
        history = read_json_lines(metrics)
        summary = read_json(Path(d) / "summary.json")
        layers = sorted({k for h in history for k in h.get("gates", {})})
        for layer in layers:
            points = [(h["epoch"], h["gates"][layer]["mean"]) for h in history if layer in h.get("gates", {})]
            curves.setdefault(summary["variant"], {}).setdefault(layer, []).append(([e for e, _ in points], [m for _, m in points]))
    if not curves:
        return False
    cols = min(4, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, (variant, layers) in zip(axes.flat, sorted(curves.items())):
        cmap = plt.get_cmap("viridis", max(2, len(layers)))
        for j, (layer, seeds) in enumerate(sorted(layers.items())):
            for k, (epochs, means) in enumerate(seeds):
                ax.plot(epochs, means, color=cmap(j), lw=1, alpha=0.7, label=_short(layer) if k == 0 else None)
        ax.axhspan(0, 0.05, color="tab:red", alpha=0.12)
        ax.axhspan(0.95, 1, color="tab:red", alpha=0.12)
        ax.set_ylim(0, 1)
        ax.set_title(variant, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        if len(layers) <= 8:
            ax.legend(fontsize=6, loc="best")
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    axes[0][0].set_ylabel("mean gate (test set)")
    fig.suptitle("Sigmoid gate means per layer and epoch, every seed (red bands: saturation flags)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def _short(layer: str) -> str:
    return layer.replace(".attn", "").replace(".fusion", "/f").replace(".gate", "")


def write_outputs(results: dict[str, Any], run_dirs: Sequence[Path], out: Path, command: Optional[str] = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "command": command} if command else results
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", report_markdown(results, command))
    written = [out / "results.json", out / "report.md", out / "leaderboard.png"]
    plot_leaderboard(results, out / "leaderboard.png")
    if plot_gates(run_dirs, out / "gates.png"):
        written.append(out / "gates.png")
    return written


README_HEADERS = ["variant", "healthy runs", "top-1 %", "Δ vs plain (paired), 95% CI", "Holm p", "params", "latency × plain"]


def readme_table(results: dict[str, Any]) -> str:
    """The compact table the README shows for a committed ``results.json`` (a test keeps them equal)."""
    lines = ["| " + " | ".join(README_HEADERS) + " |", "|" + "---|" * len(README_HEADERS)]
    for cells in leaderboard_rows(results):
        variant, runs, top1, paired, p_holm, _welch, params, latency, _speed = cells
        lines.append("| " + " | ".join([f"`{variant}`", runs, top1, paired, p_holm, params, latency]) + " |")
    return "\n".join(lines) + "\n"


README_BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


INCLUDE_BLOCK = re.compile(r"(<!-- include:(?P<path>[\w./-]+) -->\n)(?P<body>.*?)(<!-- /include -->)", re.S)


UNTESTED = re.compile(r"^(`[^`]+`): too few paired healthy seeds to test\.$")


def readme_verdicts(lines: Sequence[str]) -> list[str]:
    """The verdict lines for the README: variants with too few seeds to test (and nothing flagged)
    named in one line rather than one line each."""
    untested = [m[1] for m in map(UNTESTED.match, lines) if m]
    if len(untested) < 2:
        return list(lines)
    return [f"Too few paired healthy seeds to test: {', '.join(untested)}."] + [line for line in lines if not UNTESTED.match(line)]


def render_readme(text: str, results_root: Path) -> str:
    """``text`` with every ``<!-- results:NAME -->`` block replaced by the table of
    ``results_root/NAME/results.json`` followed by its verdict lines, and every
    ``<!-- include:PATH -->`` block by that file (PATH relative to ``results_root``)."""

    def block(match: re.Match) -> str:
        results = read_json(results_root / match["name"] / "results.json")
        verdict = "".join(f"- {line}\n" for line in readme_verdicts(results["verdicts"]))
        return f"{match[1]}{readme_table(results)}\n{verdict}{match[4]}"

    def include(match: re.Match) -> str:
        return f"{match[1]}{(results_root / match['path']).read_text()}{match[4]}"

    return INCLUDE_BLOCK.sub(include, README_BLOCK.sub(block, text))

"""``attnzoo compare``: train the plain model and attention/fusion variants over several seeds,
then aggregate the runs into a leaderboard (mean ± std, difference to plain with a 95% CI)."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch

from ..layers import list_attn, list_conv, list_fusion
from .checkpoint import atomic_write_json, atomic_write_text

# The seed modules of the user's documents: SE, CBAM, SAGAN self-attention (in the last stage,
# where H·W is small, as SAGAN and non-local networks place it), AFF and iAFF, HA-CNN soft attention.
DEFAULT_VARIANTS = ("plain", "se", "cbam", "self_attn@3", "aff", "iaff", "ha_soft")

# Two-sided 95% Student t quantiles by degrees of freedom (Welch df is rounded down: conservative).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


@dataclass(frozen=True)
class Variant:
    """A model variant: attention and/or fusion by name, optionally restricted to stages."""

    label: str
    attn: Optional[str] = None
    fusion: Optional[str] = None
    conv: Optional[str] = None
    attn_stages: Optional[tuple[int, ...]] = None
    fusion_stages: Optional[tuple[int, ...]] = None

    def train_args(self) -> list[str]:
        args = []
        if self.attn:
            args += ["--attn", self.attn]
        if self.fusion:
            args += ["--fusion", self.fusion]
        if self.conv:
            args += ["--conv", self.conv]
        if self.attn_stages:
            args += ["--attn-stages", *map(str, self.attn_stages)]
        if self.fusion_stages:
            args += ["--fusion-stages", *map(str, self.fusion_stages)]
        return args


def parse_variant(text: str) -> Variant:
    """``plain``, ``se``, ``self_attn@3`` (stage 3 only), ``aff@34``, ``cbam+iaff``..."""
    if text == "plain":
        return Variant("plain")
    fields: dict[str, Any] = {}
    for part in text.split("+"):
        name, _, stages = part.partition("@")
        kind = "attn" if name in list_attn() else "fusion" if name in list_fusion() else "conv" if name in list_conv() else None
        if kind is None:
            raise ValueError(
                f"unknown variant part {name!r} in {text!r}; use 'plain', an attention module "
                f"({', '.join(list_attn())}), a fusion module ({', '.join(list_fusion())}) or a conv "
                f"replacement ({', '.join(list_conv())}), optionally with @stages (e.g. self_attn@3) and joined with '+'"
            )
        if kind == "conv" and stages:
            raise ValueError(f"{name} replaces the 3×3 conv of every bottleneck; it takes no @stages")
        if kind in fields:
            raise ValueError(f"variant {text!r} names two {kind} modules")
        fields[kind] = name
        if stages:
            if not stages.isdigit():
                raise ValueError(f"stages in {part!r} must be digits, e.g. {name}@34")
            fields[f"{kind}_stages"] = tuple(int(s) for s in stages)
    return Variant(text, **fields)


def _train_one(argv: list[str], log_path: str) -> None:
    """Worker: one ``attnzoo train`` run in this process, its output going to ``log_path``."""
    import contextlib

    from ..cli import main

    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = main(argv)
    if code:
        raise RuntimeError(f"exit code {code}")


def run_sweep(
    variants: Sequence[Variant],
    seeds: Sequence[int],
    out: Path,
    train_args: Sequence[str],
    jobs: int,
    progress: bool = True,
) -> list[Path]:
    """Train every (variant, seed) as an independent ``attnzoo train`` run in ``out/runs/<variant>-seed<k>``.

    Runs go to ``jobs`` worker processes (CPU threads split among them), which stay alive across
    runs so Python, torch and the dataset are loaded once per worker. A run whose
    ``summary.json`` exists is reused, and an unfinished one resumes from its checkpoint, so an
    interrupted sweep continues where it stopped. Returns the run folders.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending = []
    for variant in variants:
        for seed in seeds:
            run_dir = out / "runs" / f"{variant.label}-seed{seed}"
            argv = ["train", *variant.train_args(), "--seed", str(seed), "--out", str(run_dir), "--threads", str(threads),
                    "--no-progress", "--resume", *train_args]
            pending.append((run_dir, argv))
    done = [d for d, _ in pending if (d / "summary.json").is_file()]
    todo = [(d, a) for d, a in pending if d not in done]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), initial=len(done), desc="compare", unit="run", file=sys.stderr)
    if todo:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {}
            for run_dir, argv in todo:
                run_dir.mkdir(parents=True, exist_ok=True)
                futures[pool.submit(_train_one, argv, str(run_dir / "train.log"))] = run_dir
            for future in as_completed(futures):
                run_dir = futures[future]
                try:
                    future.result()
                except Exception as e:
                    tail = (run_dir / "train.log").read_text().strip().splitlines()[-5:]
                    raise RuntimeError(f"run {run_dir} failed ({e}); end of its train.log:\n" + "\n".join(tail)) from None
                done.append(run_dir)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(run_dir.name)
    if bar is not None:
        bar.close()
    return sorted(done)


def find_runs(roots: Iterable[Path]) -> list[Path]:
    """Every run folder (one holding ``summary.json``) under ``roots``."""
    runs = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise ValueError(f"--from: {root} does not exist")
        runs += [p.parent for p in root.rglob("summary.json")]
    return sorted(set(runs))


def welch_ci(a: Sequence[float], b: Sequence[float]) -> Optional[tuple[float, float]]:
    """95% confidence interval of mean(a) − mean(b) (Welch's t), None with fewer than 2 per group."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = _T975[min(int(df), len(_T975)) - 1] if df >= 1 else _T975[0]
    return diff - t * se, diff + t * se


def aggregate(run_dirs: Sequence[Path], reference: str = "plain") -> dict[str, Any]:
    """Leaderboard from run summaries, grouped by variant, ranked by mean final top-1."""
    summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
    if not summaries:
        raise ValueError("no runs to aggregate (no summary.json found)")
    groups: dict[str, list[dict]] = {}
    for s in summaries:
        groups.setdefault(s["variant"], []).append(s)
    ref = [s["last_top1"] for s in groups.get(reference, [])]
    rows = []
    for variant, runs in groups.items():
        top1 = [s["last_top1"] for s in runs]
        row = {
            "variant": variant,
            "runs": len(runs),
            "seeds": sorted(s["seed"] for s in runs),
            "top1_mean": statistics.fmean(top1),
            "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
            "top1_runs": top1,
            "best_top1_mean": statistics.fmean(s["best_top1"] for s in runs),
            "params": runs[0]["params"],
            "macs": runs[0]["macs"],
            "train_time_s_mean": statistics.fmean(s["wall_time_s"] for s in runs),
            "data_share_mean": statistics.fmean(s["data_share"] for s in runs if s.get("data_share") is not None),
            "config": runs[0]["config"],
        }
        if ref and variant != reference:
            row["diff_to_plain"] = row["top1_mean"] - statistics.fmean(ref)
            ci = welch_ci(top1, ref)
            row["diff_ci95"] = list(ci) if ci else None
        rows.append(row)
    rows.sort(key=lambda r: -r["top1_mean"])
    first = summaries[0]
    return {
        "reference": reference,
        "metric": "final-epoch test top-1 (mean ± sample std over seeds)",
        "dataset": first["config"]["dataset"],
        "model": first["config"]["model"],
        "epochs": first["config"]["epochs"],
        "rows": rows,
        "versions": first["versions"],
    }


def measure_latency(results: dict[str, Any], input_shape: Sequence[int], num_classes: int, threads: int = 1, rounds: int = 15) -> None:
    """Add eval-mode forward latency (interleaved medians) and its ratio to plain to each row."""
    from ..bench import forward_fn, time_interleaved
    from .config import TrainConfig
    from .engine import build_model

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(*input_shape)
        fns = {}
        for row in results["rows"]:
            fns[row["variant"]] = forward_fn(build_model(TrainConfig.from_dict(row["config"]), num_classes), x)
        timing = time_interleaved(fns, rounds=rounds, warmup=2)
    finally:
        torch.set_num_threads(previous)
    ref = timing.get(results["reference"], {}).get("median")
    for row in results["rows"]:
        t = timing[row["variant"]]
        row["latency_ms"] = t["median"] * 1e3
        row["latency_ratio"] = t["median"] / ref if ref else None
    results["latency_setup"] = {"input_shape": list(input_shape), "threads": threads, "rounds": rounds, "mode": "eval, inference_mode, fp32"}


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _diff_texts(row: dict[str, Any]) -> tuple[str, str]:
    """Δ to the reference and its CI, in points, or dashes when not available."""
    diff = f"{100 * row['diff_to_plain']:+.1f}" if "diff_to_plain" in row else "—"
    ci = row.get("diff_ci95")
    return diff, (f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "—")


def report_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# attnzoo compare: {results['model']} on {results['dataset']}, {results['epochs']} epochs",
        "",
        f"Metric: {results['metric']}. Δ: difference to `{results['reference']}` in points, with a 95% "
        "Welch-t confidence interval; an interval that contains 0 means no difference was shown.",
        "",
        "| variant | runs | top-1 % | Δ vs plain | 95% CI of Δ | params | MACs | latency ms | × plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        diff, ci = _diff_texts(r)
        latency = f"{r['latency_ms']:.2f} | {r['latency_ratio']:.2f}" if r.get("latency_ratio") else "— | —"
        lines.append(
            f"| {r['variant']} | {r['runs']} | {_pct(r['top1_mean'])} ± {_pct(r['top1_std'])} | {diff} | {ci} | "
            f"{r['params']:,} | {r['macs'] / 1e6:.2f} M | {latency} |"
        )
    if "latency_setup" in results:
        s = results["latency_setup"]
        lines += ["", f"Latency: median of {s['rounds']} interleaved rounds, input {'×'.join(map(str, s['input_shape']))}, "
                  f"{s['threads']} thread(s), {s['mode']}. MACs: convolutions and matrix products at batch 1."]
    share = [r["data_share_mean"] for r in results["rows"] if r.get("data_share_mean") is not None]
    if share:
        lines += ["", f"Data preparation took {100 * min(share):.1f}–{100 * max(share):.1f}% of a training step."]
    if any("localisation" in r for r in results["rows"]):
        lines += ["", "## Localisation", "", "Share of attention mass inside the target digit's box on 500 test images (seed-0 model; "
                  "full maps: mean over channels; self-attention: mean attention row; Grad-CAM at the last stage). "
                  "Uniform attention scores the box's area share.", "",
                  "| variant | layer | attention mass in box | Grad-CAM mass in box | uniform |", "|---|---|---|---|---|"]
        for r in results["rows"]:
            loc = r.get("localisation")
            if not loc:
                continue
            cam = f"{loc['gradcam']:.3f}" if "gradcam" in loc else "—"
            for layer, score in (loc["layers"] or {"— (no spatial attention)": None}).items():
                lines.append(f"| {r['variant']} | {layer} | {'—' if score is None else f'{score:.3f}'} | {cam} | {loc['uniform']:.3f} |")
    lines += ["", f"Versions: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["variant"] for r in rows]
    means = [100 * r["top1_mean"] for r in rows]
    stds = [100 * r["top1_std"] for r in rows]
    colors = ["0.5" if n == results["reference"] else "tab:blue" for n in names]
    ax1.barh(names[::-1], means[::-1], xerr=stds[::-1], color=colors[::-1], capsize=3)
    for i, r in enumerate(rows[::-1]):
        ax1.plot([100 * v for v in r["top1_runs"]], [i] * len(r["top1_runs"]), "k.", ms=4)
    ref = next((r for r in rows if r["variant"] == results["reference"]), None)
    if ref:
        ax1.axvline(100 * ref["top1_mean"], color="0.3", ls="--", lw=1, label="plain (mean)")
        ax1.legend(loc="lower right")
    ax1.set_xlabel("test top-1 (%)  — bar: mean ± std, dots: seeds")
    ax1.set_title(f"{results['model']} on {results['dataset']}, {results['epochs']} epochs")
    if all(r.get("latency_ratio") for r in rows):
        for r in rows:
            ax2.scatter(r["latency_ratio"], 100 * r["top1_mean"], s=30 + r["params"] / max(rr["params"] for rr in rows) * 200,
                        color="0.5" if r["variant"] == results["reference"] else "tab:blue", alpha=0.8)
            ax2.annotate(r["variant"], (r["latency_ratio"], 100 * r["top1_mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax2.set_xlabel("forward latency / plain model (same run)")
        ax2.set_ylabel("test top-1 (%)")
        ax2.set_title("accuracy vs cost (marker area ∝ parameters)")
        ax2.grid(alpha=0.3)
    else:
        ax2.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def print_leaderboard(results: dict[str, Any]) -> None:
    print(f"\n{results['model']} on {results['dataset']} ({results['metric']})\n")
    header = f"{'variant':<14} {'runs':>4} {'top-1 %':>14} {'Δ vs plain':>11} {'95% CI':>17} {'params':>10} {'MMACs':>8} {'× latency':>9}"
    print(header)
    print("-" * len(header))
    for r in results["rows"]:
        diff, ci_text = _diff_texts(r)
        lat = f"{r['latency_ratio']:.2f}" if r.get("latency_ratio") else "—"
        print(f"{r['variant']:<14} {r['runs']:>4} {_pct(r['top1_mean']):>7} ± {_pct(r['top1_std']):<4} {diff:>11} {ci_text:>17} "
              f"{r['params']:>10,} {r['macs'] / 1e6:>8.2f} {lat:>9}")


def write_outputs(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", report_markdown(results))
    plot(results, out / "leaderboard.png")

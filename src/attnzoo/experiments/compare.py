"""``attnzoo compare``: train plain and each variant over the same seeds, then judge the differences.

    specs ──plan──▶ TrainConfigs ──run_sweep──▶ run folders ──aggregate──▶ results ──▶ report.md,
                                                                                       results.json,
                                                                                       leaderboard.png, gates.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..models.spec import ModelSpec
from ..train.config import TrainConfig
from . import report
from .sweep import find_runs, plan, run_sweep, worker_layout


class SweepFailed(RuntimeError):
    """Some runs of a sweep raised; each was printed with its log's tail."""


def measure_latency(results: dict[str, Any], summaries: Sequence[dict[str, Any]], batch: int, threads: int = 1, rounds: int = 15) -> None:
    """Add eval-mode forward latency (interleaved medians) and its ratio to plain to each row."""
    from ..bench import forward_fn, time_interleaved

    first = {s["variant"]: s for s in reversed(summaries)}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fns = {}
        for row in results["rows"]:
            s = first[row["variant"]]
            x = torch.randn(batch, *s["input_shape"])
            fns[row["variant"]] = forward_fn(TrainConfig.from_dict(s["config"]).spec().build(s["num_classes"]), x)
        timing = time_interleaved(fns, rounds=rounds, warmup=2)
    finally:
        torch.set_num_threads(previous)
    ref = timing.get(results["reference"], {}).get("median")
    for row in results["rows"]:
        t = timing[row["variant"]]
        row["latency_ms"] = t["median"] * 1e3
        row["latency_ratio"] = t["median"] / ref if ref else None
    results["latency_setup"] = {"input_shape": [batch, *summaries[0]["input_shape"]], "threads": threads, "rounds": rounds,
                                "mode": "eval, inference_mode, fp32"}


def train_variants(specs: Sequence[ModelSpec], seeds: Sequence[int], base: TrainConfig, out: Path, jobs: Optional[int] = None,
                   progress: bool = True) -> list[Path]:
    """Train every (variant, seed) not yet trained under ``out/runs``; returns the run folders."""
    jobs, threads = worker_layout(len(specs) * len(seeds), jobs)
    # Longest runs first, so the workers finish together (parameter count as the cost proxy:
    # iAFF, HA soft attention and AFF are both the largest and the slowest here).
    from ..utils import count_params

    cost = {s.label: count_params(s.build(10)) for s in specs}
    specs = sorted(specs, key=lambda s: -cost[s.label])
    configs = plan(specs, seeds, base, out, threads=threads)
    if progress:
        print(f"compare: {len(configs)} runs ({len(specs)} variants × {len(seeds)} seeds), {jobs} at a time with "
              f"{threads} thread(s) each; logs in {out / 'runs'}", file=sys.stderr)
    done, failures = run_sweep(configs, jobs=jobs, progress=progress)
    if failures:
        raise SweepFailed(f"{len(failures)} of {len(configs)} runs failed (each printed above with its log); "
                          f"fix the cause and run the same command again to train only what is missing")
    return done


def compare(run_dirs: Sequence[Path], out: Path, latency_batch: Optional[int] = 64, localisation: bool = True,
            command: Optional[str] = None) -> dict[str, Any]:
    """Aggregate finished runs, add latency and localisation, write the report; returns the results."""
    summaries = report.load_summaries(run_dirs)
    results = report.aggregate(summaries)
    if latency_batch:
        measure_latency(results, summaries, latency_batch)
    if localisation:
        from ..viz.localisation import add_localisation

        add_localisation(results, [Path(s["_dir"]) for s in summaries if report.is_healthy(s)])
    report.write_outputs(results, run_dirs, out, command)
    return results


def from_dirs(dirs: Sequence[str]) -> list[Path]:
    runs = find_runs([Path(d) for d in dirs])
    if not runs:
        raise ValueError(f"--from: no finished run (summary.json) under {', '.join(dirs)}")
    return runs

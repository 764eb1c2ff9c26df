"""Train many independent runs — variants × seeds — in worker processes that call
:func:`attnzoo.train.train` directly.

Each run has its own folder ``out/runs/<label>-seed<k>`` with its ``config.json``. A folder whose
run finished (``summary.json``) with the same config is reused, an unfinished one resumes from its
checkpoint, and one whose config differs is refused — never reused silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..models.spec import ModelSpec
from ..train.config import TrainConfig
from ..train.engine import stored_config

def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_layout(runs: int, jobs: Optional[int] = None, cores: Optional[int] = None) -> tuple[int, int]:
    """(parallel runs, threads per run) that never oversubscribe the cores: small models train
    faster as several 1-thread runs than as one run on every core."""
    cores = cores or available_cores()
    jobs = max(1, min(jobs or cores, runs, cores))
    return jobs, max(1, cores // jobs)


def run_folder_name(label: str, seed: int) -> str:
    """A file-system-safe folder name for a run: ``cbam:variant=paper`` -> ``cbam_variant=paper-seed0``."""
    return re.sub(r"[^A-Za-z0-9_.=@+,-]", "_", label) + f"-seed{seed}"


def plan(specs: Sequence[ModelSpec], seeds: Sequence[int], base: TrainConfig, out: Path, threads: int = 1) -> list[TrainConfig]:
    """One config per (variant, seed): the base recipe with the variant's model and the seed."""
    configs = []
    for spec in specs:
        for seed in seeds:
            run_dir = Path(out) / "runs" / run_folder_name(spec.label, seed)
            configs.append(dataclasses.replace(base, model=spec).replace(seed=seed, out=str(run_dir), threads=threads, progress=False))
    return configs


def differences(stored: dict, requested: dict) -> list[str]:
    """``field: stored → requested`` for each field that changes what a run computes."""
    keys = sorted((set(stored) | set(requested)) - set(TrainConfig.execution_only_fields()))
    return [f"{k}: {stored.get(k)!r} -> {requested.get(k)!r}" for k in keys if stored.get(k) != requested.get(k)]


def run_state(cfg: TrainConfig) -> str:
    """``"done"`` (finished with this config), ``"resume"`` (started with it) or ``"new"``; a run
    folder holding another config raises ValueError naming the differences."""
    run_dir = Path(cfg.execution.out)
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            if any(run_dir.glob("*.safetensors")) or (run_dir / "summary.json").exists():
                raise ValueError(f"{run_dir} holds a run without config.json (written by an older attnzoo?); move it away or choose another --out")
        return "new"
    stored = stored_config(run_dir).to_dict()  # as its checkpoints' format meant it (defaults change)
    diff = differences(stored, cfg.to_dict())
    if diff:
        raise ValueError(f"{run_dir} holds a run with another config ({'; '.join(diff)}); choose another --out or delete that folder")
    return "done" if (run_dir / "summary.json").is_file() else "resume"


def _train_worker(config: dict, log_path: str) -> Optional[str]:
    """One run in this worker process; its output goes to ``log_path``. Returns None on success
    (a diverged run counts: its summary carries the flag), else the error in one line."""
    from ..train import TrainingDiverged, train

    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            train(TrainConfig.from_dict(config))
        except TrainingDiverged as e:
            print(f"diverged: {e}")
        except Exception as e:  # reported by the parent with the log's tail; the sweep goes on
            traceback.print_exc()
            return f"{type(e).__name__}: {e}".splitlines()[0]
    return None


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the sweep's process dies (kill -9 included), so no
    orphan trains on, then hangs, or races an immediate re-run (Linux's PR_SET_PDEATHSIG; elsewhere
    only the check that the parent is still there)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


@dataclass
class Failure:
    run_dir: Path
    error: str
    log_tail: list[str]

    def describe(self) -> str:
        tail = "\n".join(f"    {line}" for line in self.log_tail)
        return f"run {self.run_dir.name} failed: {self.error}\n  log: {self.run_dir / 'train.log'}\n{tail}"


def run_sweep(configs: Sequence[TrainConfig], jobs: int = 1, progress: bool = True) -> tuple[list[Path], list[Failure]]:
    """Train every config not yet done, ``jobs`` at a time; returns (finished run folders, failures).

    Every folder is checked before anything trains, so a mismatched folder stops the sweep at once.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    states = {cfg.execution.out: run_state(cfg) for cfg in configs}
    for cfg in configs:  # (each run writes its config.json as it starts: a rerun with another config is refused)
        Path(cfg.execution.out).mkdir(parents=True, exist_ok=True)
    done = [Path(c.execution.out) for c in configs if states[c.execution.out] == "done"]
    todo = [c.replace(resume=states[c.execution.out] == "resume") for c in configs if states[c.execution.out] != "done"]
    failures: list[Failure] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(configs), initial=len(done), desc="compare", unit="run", file=sys.stderr, dynamic_ncols=True)
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_train_worker, c.to_dict(), str(Path(c.execution.out) / "train.log")): Path(c.execution.out) for c in todo}
            for future in as_completed(futures):
                run_dir = futures[future]
                error = future.result()
                if error is None:
                    done.append(run_dir)
                else:
                    log = run_dir / "train.log"
                    tail = log.read_text(errors="replace").strip().splitlines()[-6:] if log.is_file() else []
                    failures.append(Failure(run_dir, error, tail))
                    print(failures[-1].describe(), file=sys.stderr)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(run_dir.name)
    if bar is not None:
        bar.close()
    return sorted(done), failures


def find_runs(roots: Sequence[Path]) -> list[Path]:
    """Every finished run folder (one holding ``summary.json``) under ``roots``."""
    runs = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise ValueError(f"--from: {root} does not exist")
        runs += [p.parent for p in root.rglob("summary.json")]
    return sorted(set(runs))

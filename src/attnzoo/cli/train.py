"""`attnzoo train`: one run, or one rank of a torchrun job."""

from __future__ import annotations

import argparse
import os
import sys

from .options import add_train_arguments, config_from_args


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..train import TrainingDiverged, train
    from ..train.engine import stored_config

    cfg = config_from_args(args)
    stored = stored_config(Path(cfg.execution.out)) if cfg.execution.resume else None
    if stored is not None:  # the run's own config; the command line adds only what it names
        given = config_from_args(args, explicit_only=True)
        cfg = stored.replace(**{**given, "resume": True})
    try:
        summary = train(cfg)
    except TrainingDiverged as e:
        print(f"attnzoo train: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    if int(os.environ.get("RANK", "0")) == 0 and summary.get("last_top1") is not None:
        flags = f"; FLAGGED: {'; '.join(summary['health_flags'])}" if summary.get("health_flags") else ""
        print(
            f"{summary['variant']}: best top-1 {summary['best_top1']:.4f} (epoch {summary['best_epoch']}), "
            f"last {summary['last_top1']:.4f}; {summary['params']:,} params, {summary['macs'] / 1e6:.2f} MMACs; "
            f"{summary['wall_time_s']:.1f} s; written to {cfg.execution.out}{flags}"
        )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model (single process, or one rank under torchrun)",
                       description="Train a model; metrics.jsonl, summary.json and atomic checkpoints go to --out.")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

"""`attnzoo eval`: top-1/top-5, per-class accuracy and the confusion matrix of a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys

from ..utils.io import ensure_writable_file
from .common import positive_int


def cmd_eval(args: argparse.Namespace) -> int:
    from ..train.evaluate import evaluate_checkpoint

    if args.out:
        ensure_writable_file(args.out)
    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data_root, batch_size=args.batch_size, device=args.device)
    if args.out:
        from ..train import atomic_write_json

        atomic_write_json(args.out, result)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"{result['checkpoint']} on {result['dataset']} ({result['count']} images)")
    print(f"top-1 {result['top1']:.4f}   top-5 {result['top5']:.4f}   loss {result['loss']:.4f}\n")
    print("class  " + " ".join(f"{c:>5}" for c in range(len(result["confusion"]))) + "   acc")
    for c, (row, acc) in enumerate(zip(result["confusion"], result["per_class_top1"])):
        print(f"{c:>5}  " + " ".join(f"{v:>5}" for v in row) + f"  {acc:.3f}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint: top-1/top-5, per-class accuracy, confusion matrix")
    p.add_argument("checkpoint", help="a .safetensors file written by attnzoo train, or its run folder")
    p.add_argument("--dataset", default=None, help="dataset (default: the one it was trained on)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--batch-size", type=positive_int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

"""`attnzoo viz`: figures of where attention looks."""

from __future__ import annotations

import argparse

from ..utils.io import ensure_writable


def cmd_viz(args: argparse.Namespace) -> int:
    from ..viz.run import visualise

    ensure_writable(args.out)
    result = visualise(args.out, image_path=args.image, sample=args.sample, checkpoint=args.checkpoint,
                       model_name=args.model, attn=args.attn, fusion=args.fusion, layers=args.layers)
    print(f"captured {len(result['layers'])} attention layers: " + ", ".join(f"{k} ({v})" for k, v in result["layers"].items()))
    for path in result["written"]:
        print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("viz", help="figures of where attention looks on an image (maps, channel weights, Grad-CAM)",
                       description="Capture every attention module's weights on one image and draw them as PNG figures.")
    p.add_argument("image", nargs="?", help="an image file (default: an embedded sample, see --sample)")
    p.add_argument("--sample", help="digits, digits:INDEX (embedded test set) or a scikit-image sample: chelsea, astronaut, coffee, horse...")
    p.add_argument("--checkpoint", help="a trained checkpoint (.safetensors or run folder); else an untrained --model")
    p.add_argument("--model", help="model name when no checkpoint is given (default resnet50)")
    p.add_argument("--attn", help="attention module for --model")
    p.add_argument("--fusion", help="fusion module for --model")
    p.add_argument("--layers", nargs="+", help="only layers whose name matches these globs or prefixes (e.g. layer3)")
    p.add_argument("--out", default="runs/viz", help="output folder (default runs/viz)")
    p.set_defaults(func=cmd_viz)

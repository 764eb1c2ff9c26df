"""`attnzoo export`: a run or a model for deployment, checked against eager."""

from __future__ import annotations

import argparse
import json

from ..utils.io import ensure_writable_file
from .common import positive_int


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..export import SUFFIXES, check_export, export_model, input_shape_for

    if args.checkpoint:
        from ..train.evaluate import load_trained_model

        model, cfg, meta = load_trained_model(args.checkpoint)
        name, shape = cfg.model.model, json.loads(meta["input_shape"])
    else:
        from ..models.spec import ModelSpec

        spec = ModelSpec(model=args.model, attn=args.attn, fusion=args.fusion).validate()
        model, name, shape = spec.build(args.num_classes), args.model, None
    out = Path(args.out or f"runs/export/model{SUFFIXES[args.format]}")
    ensure_writable_file(out)
    shape = input_shape_for(name, shape)
    export_model(model, shape, out, args.format)
    error = check_export(model, out, args.format, shape)
    print(f"wrote {out} ({args.format}, input (N, {', '.join(map(str, shape))}) with N dynamic); "
          f"checked at batch 1 and 3: largest relative difference to eager {error:.1e}")
    return 0


def add_parser(sub) -> None:
    from ..export import FORMATS

    p = sub.add_parser("export", help="export a trained run or a model for deployment (ONNX, torch.export, TorchScript)",
                       description="Write a model with a dynamic batch dimension, then load it back and check it against eager "
                       "at two batch sizes. ONNX goes through torch.onnx.export(dynamo=True) and is checked in onnxruntime "
                       "(pip install 'attnzoo[export]'). TorchScript is traced: torch.jit.script does not compile attnzoo's modules.")
    p.add_argument("checkpoint", nargs="?", help="a run folder or .safetensors written by attnzoo train (default: an untrained --model)")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--out", default=None, help="output file (default runs/export/model.onnx|.pt2|.pt)")
    p.add_argument("--model", default="resnet50", help="model without a checkpoint (default resnet50)")
    p.add_argument("--attn", default=None)
    p.add_argument("--fusion", default=None)
    p.add_argument("--num-classes", type=positive_int, default=1000)
    p.set_defaults(func=cmd_export)

"""The ``attnzoo`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

import torch

from .layers import create_attn, create_fusion, get_attn_class, get_fusion_class, list_attn, list_fusion
from .models import create_model, list_models
from .utils import count_macs, count_params


def _model_input_shape(name: str) -> tuple[int, int, int, int]:
    if name == "hacnn":
        return (1, 3, 160, 64)
    if name.startswith("cifar_"):
        return (1, 3, 32, 32)
    return (1, 3, 224, 224)


def _summary_line(doc: Optional[str]) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def inventory(channels: int, size: int, batch: int, models: bool = True) -> dict:
    """Parameters and MACs of every registered module (at ``batch×channels×size×size``) and model."""
    shape = (batch, channels, size, size)
    result: dict = {"input_shape": list(shape), "attention": [], "fusion": [], "models": []}
    torch.manual_seed(0)
    x = torch.randn(shape)
    for name in list_attn():
        m = create_attn(name, channels)
        result["attention"].append(
            {"name": name, "class": type(m).__name__, "params": count_params(m), "macs": count_macs(m, x),
             "summary": _summary_line(get_attn_class(name).__doc__)}
        )
    for name in list_fusion():
        m = create_fusion(name, channels)
        result["fusion"].append(
            {"name": name, "class": type(m).__name__, "params": count_params(m), "macs": count_macs(m, (x, x)),
             "summary": _summary_line(get_fusion_class(name).__doc__)}
        )
    if models:
        for name in list_models():
            m = create_model(name)
            in_shape = _model_input_shape(name)
            result["models"].append(
                {"name": name, "params": count_params(m), "input_shape": list(in_shape), "macs": count_macs(m, in_shape)}
            )
    return result


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if c.replace(",", "").replace(".", "").isdigit() else c.ljust(w) for c, w in zip(row, widths)))


def cmd_list(args: argparse.Namespace) -> int:
    info = inventory(args.channels, args.size, args.batch, models=not args.no_models)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    shape = "x".join(map(str, info["input_shape"]))
    print(f"Attention modules at input {shape} (MACs: convs and matmuls, pooling/elementwise not counted)\n")
    _print_table(
        ["name", "class", "params", "MACs", "what it does"],
        [[r["name"], r["class"], f"{r['params']:,}", f"{r['macs']:,}", r["summary"]] for r in info["attention"]],
    )
    print(f"\nFusion modules z = m(x, y) at input {shape}\n")
    _print_table(
        ["name", "class", "params", "MACs", "what it does"],
        [[r["name"], r["class"], f"{r['params']:,}", f"{r['macs']:,}", r["summary"]] for r in info["fusion"]],
    )
    if info["models"]:
        print("\nModels (1000 classes, plain: attn=None, fusion=None)\n")
        _print_table(
            ["name", "params", "input", "GMACs"],
            [[r["name"], f"{r['params']:,}", "x".join(map(str, r["input_shape"])), f"{r['macs'] / 1e9:.3f}"] for r in info["models"]],
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnzoo", description="Visual attention modules for CNNs: list, train, compare, benchmark.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list every module and model with its parameters and MACs")
    p.add_argument("--channels", type=int, default=256, help="channels C of the module input (default 256)")
    p.add_argument("--size", type=int, default=56, help="height = width of the module input (default 56)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the module input (default 1)")
    p.add_argument("--no-models", action="store_true", help="skip the (slower) model table")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)

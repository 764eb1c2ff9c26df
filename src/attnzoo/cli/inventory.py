"""`attnzoo list`: every module and model with its parameters and MACs."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Optional, Sequence

import torch

from ..data import DATASETS, get_dataset
from ..layers import create_module, get_module_class, list_attn, list_conv, list_fusion
from ..models import create_model, default_input_size, list_models
from ..utils import count_macs, count_params
from .common import positive_int


def _summary_line(doc: Optional[str]) -> str:
    return doc.strip().splitlines()[0] if doc else ""


def inventory(channels: int, size: int, batch: int, models: bool = True) -> dict:
    """Parameters and MACs of every registered module (at ``batch×channels×size×size``) and model."""
    shape = (batch, channels, size, size)
    result: dict = {"input_shape": list(shape), "attention": [], "conv": [], "fusion": [], "models": [], "datasets": []}
    torch.manual_seed(0)
    x = torch.randn(shape)
    for section, names, inputs in (("attention", list_attn(), x), ("conv", list_conv(), x), ("fusion", list_fusion(), (x, x))):
        for name in names:
            # BoTNet's attention is built for this input: position tables of its size, and its logits
            # allowed (its guard against large maps is for training, not for counting).
            takes = inspect.signature(get_module_class(name)).parameters
            sized = {"feat_size": size, "max_attn_elements": 2**40} if {"feat_size", "max_attn_elements"} <= set(takes) else {}
            m = create_module(name, channels, **sized)
            result[section].append(
                {"name": name, "class": type(m).__name__, "params": count_params(m), "macs": count_macs(m, inputs),
                 "summary": _summary_line(get_module_class(name).__doc__)}
            )
    for name in DATASETS:
        dataset = get_dataset(name)
        result["datasets"].append({"name": name, "input_size": list(dataset.input_size) if dataset.input_size else None,
                                   "options": dataset.options(), "has_boxes": dataset.has_boxes, "needs_root": dataset.needs_root})
    if models:
        for name in list_models():
            m = create_model(name)
            in_shape = (1, 3, *default_input_size(name))
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
    titles = {
        "attention": f"Attention modules at input {shape} (MACs: convs and matmuls, pooling/elementwise not counted)",
        "conv": f"3×3-conv replacements (attention inside the convolution; models take them as conv=NAME) at input {shape}",
        "fusion": f"Fusion modules z = m(x, y) at input {shape}",
    }
    for section, title in titles.items():
        print(f"{title}\n")
        _print_table(
            ["name", "class", "params", "MACs", "what it does"],
            [[r["name"], r["class"], f"{r['params']:,}", f"{r['macs']:,}", r["summary"]] for r in info[section]],
        )
        print()
    print("Datasets (--dataset NAME; options: --data-opt KEY=VALUE)\n")
    _print_table(
        ["name", "input", "options (defaults)", "target boxes", "--data-root"],
        [[r["name"], "x".join(map(str, r["input_size"])) if r["input_size"] else "image_size",
          ", ".join(f"{k}={json.dumps(v)}" for k, v in r["options"].items()) or "none", "yes" if r["has_boxes"] else "no",
          "needed" if r["needs_root"] else "optional"] for r in info["datasets"]],
    )
    print()
    if info["models"]:
        print("Models (1000 classes, plain: attn=None, fusion=None)\n")
        _print_table(
            ["name", "params", "input", "GMACs"],
            [[r["name"], f"{r['params']:,}", "x".join(map(str, r["input_shape"])), f"{r['macs'] / 1e9:.3f}"] for r in info["models"]],
        )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list every module and model with its parameters and MACs")
    p.add_argument("--channels", type=positive_int, default=256, help="channels C of the module input (default 256)")
    p.add_argument("--size", type=positive_int, default=56, help="height = width of the module input (default 56)")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size of the module input (default 1)")
    p.add_argument("--no-models", action="store_true", help="skip the (slower) model table")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_list)

"""`attnzoo preview-data`: a picture of the embedded dataset."""

from __future__ import annotations

import argparse

from ..utils.io import ensure_writable_file
from .common import positive_int


def cmd_preview_data(args: argparse.Namespace) -> int:
    from ..data.digits import save_preview

    ensure_writable_file(args.out)
    save_preview(args.out, args.count)
    print(f"wrote {args.out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("preview-data", help="a PNG grid of the embedded dataset's images, labels and target boxes")
    p.add_argument("--out", default="runs/digits.png")
    p.add_argument("--count", type=positive_int, default=24)
    p.set_defaults(func=cmd_preview_data)

"""The ``attnzoo`` command line: one module per command, each with ``add_parser(sub)``; the
training flags are generated from :class:`~attnzoo.train.TrainConfig` (:mod:`.options`)."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from . import bench, compare, evaluate, export, inventory, preview, train, viz
from ..experiments.compare import SweepFailed
from ..utils.io import first_line
from .common import Parser
from .options import explicit_dests

COMMANDS = (inventory, train, evaluate, compare, viz, bench, export, preview)


def build_parser() -> Parser:
    parser = Parser(prog="attnzoo", description="Visual attention modules for CNNs: list, train, compare, benchmark, export.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = [*(sys.argv[1:] if argv is None else argv)]
    args.explicit = explicit_dests(parser, args.argv)
    if args.command == "bench":
        bench.prepare(args, argv)
    if args.command == "compare":
        compare.apply_preset(args)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"attnzoo {args.command}: error: {e}\n")
    except SweepFailed as e:
        parser.exit(1, f"attnzoo {args.command}: error: {e}\n")
    except OSError as e:  # a full disk, a folder that went read-only: the file and the reason, no traceback
        where = f"{e.filename}: " if e.filename else ""
        parser.exit(1, f"attnzoo {args.command}: error: {where}{e.strerror or first_line(e)}\n")

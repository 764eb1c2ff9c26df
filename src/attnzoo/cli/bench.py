"""`attnzoo bench`: parameters, MACs, latency and memory, as ratios to a same-run reference."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..utils.io import ensure_writable
from .common import non_negative_int, positive_int


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..bench import run as bench
    ensure_writable(args.out)
    common = dict(dtype=args.dtype, threads=args.threads, rounds=args.rounds, warmup=args.warmup, backward=args.backward,
                  compile=args.compile, channels_last=args.channels_last, device=args.device, fused=args.fused)
    if args.optimizer_step:
        common["optimizer_step"] = True
    if args.backend != "eager":
        if args.target != "models":
            raise ValueError("--backend onnxruntime applies to `bench models`")
        common["backend"] = args.backend
    if args.target == "modules":
        result = bench.bench_modules(args.names, channels=args.channels, size=args.size, batch=args.batch, **common)
    else:
        result = bench.bench_models(args.model, args.names or bench.DEFAULT_MODEL_VARIANTS, batch=args.batch, size=args.size, **common)
    bench.print_table(result)
    stem = args.stem or (f"{args.target}-{args.device.replace(':', '')}-{args.dtype}{'-compiled' if args.compile else ''}{'-fused' if args.fused else ''}"
                         f"{'-onnxruntime' if args.backend != 'eager' else ''}")
    for path in bench.write(result, Path(args.out), stem):
        print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="parameters, MACs, latency (forward, forward+backward), memory; ratios to a same-run reference",
                       description="Benchmark modules (reference: one copy of the input) or models (reference: the plain backbone).")
    p.add_argument("target", choices=["modules", "models"])
    p.add_argument("names", nargs="*", help="modules: registered names (default all); models: variants like se, cbam, aff@34 (default plain se cbam aff iaff)")
    p.add_argument("--model", default="resnet50", help="backbone for `bench models` (default resnet50)")
    p.add_argument("--channels", type=positive_int, default=256, help="modules: C (default 256)")
    p.add_argument("--size", type=positive_int, default=None, help="H = W (default 56 for modules, 224 for models)")
    p.add_argument("--batch", type=positive_int, default=8, help="batch size (default 8)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="fp32, or autocast to bf16/fp16")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--rounds", type=positive_int, default=None, help="interleaved timing rounds (default 20 modules, 10 models)")
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--backward", "--train", dest="backward", action=argparse.BooleanOptionalAction, default=None,
                   help="also time training: modules forward+backward; models a whole training step (zero_grad, forward, "
                   "cross-entropy, backward) with the memory autograd saves (default: on for modules, off for models)")
    p.add_argument("--optimizer-step", action="store_true", help="models --train: include the SGD step")
    p.add_argument("--compile", action="store_true", help="torch.compile every candidate (default backend, inductor)")
    p.add_argument("--fused", action="store_true", help="convert every candidate with attnzoo.fused.convert (C++ CPU kernels for inference)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--backend", choices=["eager", "onnxruntime"], default="eager",
                   help="models: also time each variant exported to ONNX in onnxruntime, in the same interleaved rounds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/bench", help="folder for JSON, markdown and PNG (default runs/bench)")
    p.add_argument("--stem", default=None, help="file name stem (default TARGET-DEVICE-DTYPE)")
    p.set_defaults(func=cmd_bench)


# glibc returns freed blocks above these sizes to the OS, so every large allocation of a timed
# call page-faults afresh and timings swing by 5x with whatever ran before. Benchmarks run with
# the thresholds raised (freed memory stays mapped, as with a caching allocator).
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**36), "MALLOC_TOP_PAD_": str(2**30)}


def prepare(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> None:
    """Defaults that depend on the target, and the steady allocator for the command line."""
    _steady_allocator(argv)
    modules = args.target == "modules"
    args.size = args.size or (56 if modules else 224)
    args.rounds = args.rounds or (20 if modules else 10)
    args.backward = modules if args.backward is None else args.backward


def _steady_allocator(argv: Optional[Sequence[str]]) -> None:
    """Re-execute a command-line ``attnzoo bench`` with the malloc settings above (once)."""
    import os
    import platform

    if argv is not None or platform.system() != "Linux" or all(k in os.environ for k in _MALLOC_ENV):
        return
    os.execve(sys.executable, [sys.executable, "-m", "attnzoo", *sys.argv[1:]], {**os.environ, **_MALLOC_ENV})

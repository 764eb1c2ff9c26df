"""The GPU measurements of the op layer's kernels, in one process: correctness first, then speed.

    python scripts/gpu_bench.py --out docs/bench/gpu            # on a CUDA machine (scripts/gpu_bench.sh)
    python scripts/gpu_bench.py --smoke --device cpu --out /tmp/g # the same code on tiny shapes, anywhere

1. ``kernels``: every op's CUDA kernel (Triton) against the reference equation, values and
   gradients, fp32/bf16/fp16, NCHW and channels-last, odd sizes, 1×1, batch 1.
2. ``modules``: one module's forward + backward (default 128×256×56×56, bf16 autocast,
   channels-last) in copies of its input (a ``clone``: the memory floor), eager and compiled,
   with the reference path beside the kernels, and timm's modules where timm imports.
3. ``models``: ResNet-50 training steps (zero_grad, forward, cross-entropy, backward, SGD step)
   and eval forwards at 224², batch 128, bf16 + channels-last, as ratios to the plain ResNet-50 of
   the same run; peak memory of a step above the resident model; timm's models in the same rounds.

Every timing is a median over interleaved rounds. Writes ``OUT/{kernels,modules,models}.{json,md}``
and ``OUT/models.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import attnzoo  # noqa: E402
from attnzoo import ops  # noqa: E402
from attnzoo.bench.timing import time_interleaved  # noqa: E402
from attnzoo.ops.checks import against_reference  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- 2. modules in copies of their input ---------------------------------------------------------

def _timm_module(name: str, channels: int):
    try:
        from timm.layers import create_attn
    except ImportError:
        return None
    timm_name = {"se": "se", "eca": "eca", "cbam": "cbam", "ese": "ese"}.get(name)
    return create_attn(timm_name, channels) if timm_name else None


def _fwd_bwd(module, inputs, device, dtype) -> Callable[[], None]:
    def run():
        for t in inputs:
            t.grad = None
        with torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32"):
            y = module(*inputs)
        y.backward(torch.ones_like(y))
        sync(device)
    return run


def bench_modules(device, args) -> list[dict]:
    n, c, s = (args.module_batch, 32, 9) if args.smoke else (args.module_batch, 256, 56)
    x, y = (torch.randn(n, c, s, s, device=device).contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(2))
    candidates: dict[str, Callable[[], None]] = {"copy": lambda: (x.detach().clone(), sync(device))}
    for name in args.modules:
        module = attnzoo.layers.create_module(name, c).to(device).train()
        inputs = (x, y) if name in attnzoo.list_fusion() else (x,)  # a fusion module's copies are still of one input
        candidates[f"attnzoo {name}"] = _fwd_bwd(module, inputs, device, args.dtype)
        reference = _fwd_bwd(module, inputs, device, args.dtype)
        candidates[f"attnzoo {name} (reference)"] = lambda f=reference: _in_reference(f)
        if args.compile and name in args.compile_modules:
            candidates[f"attnzoo {name} (compiled)"] = _fwd_bwd(torch.compile(module), inputs, device, args.dtype)
        theirs = _timm_module(name, c)
        if theirs is not None:
            theirs = theirs.to(device).train()
            candidates[f"timm {name}"] = _fwd_bwd(theirs, inputs, device, args.dtype)
            if args.compile and name in args.compile_modules:
                candidates[f"timm {name} (compiled)"] = _fwd_bwd(torch.compile(theirs), inputs, device, args.dtype)
    times = time_interleaved(candidates, rounds=args.rounds, warmup=args.warmup)
    copy = times["copy"]["median"]
    return [{"candidate": k, "ms": v["median"] * 1e3, "copies": v["median"] / copy} for k, v in times.items()]


def _in_reference(fn):
    with ops.use("reference"):
        fn()


# --- 3. models ---------------------------------------------------------------------------------------

def _timm_resnet(attn):
    try:
        import timm
    except ImportError:
        return None
    if attn is None:
        return timm.create_model("resnet50")
    if attn not in ("se", "eca", "cbam"):
        return None
    return timm.create_model("resnet50", block_args={"attn_layer": attn})


def _train_step(model, x, target, device, dtype, optimizer):
    def run():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32"):
            loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        sync(device)
    return run


def _eval_step(model, x, device, dtype):
    def run():
        with torch.inference_mode(), torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32"):
            model(x)
        sync(device)
    return run


def _peak_above_model(step, device) -> float:
    if device.type != "cuda":
        return float("nan")
    step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    step()
    return (torch.cuda.max_memory_allocated(device) - start) / 2**20


def bench_models(device, args) -> list[dict]:
    size, batch = (32, args.batch) if args.smoke else (224, args.batch)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 1000, (batch,), device=device)
    train, evals, memory = {}, {}, {}
    for variant in ["plain", *args.models]:
        attn = None if variant == "plain" else variant
        role = "fusion" if variant in attnzoo.list_fusion() else "attn"  # aff: the blocks' addition
        builds = {f"attnzoo {variant}": lambda a=attn, r=role: attnzoo.create_model(args.model, **{r: a})}
        if args.model == "resnet50":
            builds[f"timm {variant}"] = lambda a=attn: _timm_resnet(a)
        for key, build in builds.items():
            model = build()
            if model is None:
                continue
            model = model.to(device).to(memory_format=torch.channels_last).train()
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            train[key] = _train_step(model, x, target, device, args.dtype, optimizer)
            memory[key] = _peak_above_model(train[key], device)
            evals[key] = _eval_step(model, x, device, args.dtype)
            if args.compile and variant in args.compile_models and key.startswith("attnzoo"):
                compiled = torch.compile(model)
                train[f"{key} (compiled)"] = _train_step(compiled, x, target, device, args.dtype, optimizer)
                memory[f"{key} (compiled)"] = _peak_above_model(train[f"{key} (compiled)"], device)
    t_train = time_interleaved(train, rounds=args.rounds, warmup=args.warmup)
    t_eval = time_interleaved(evals, rounds=args.rounds, warmup=args.warmup)
    rows = []
    for key in train:
        family = key.split(" ")[0]
        plain = f"{family} plain"
        row = {"candidate": key, "train_ms": t_train[key]["median"] * 1e3,
               "train_x_plain": t_train[key]["median"] / t_train["attnzoo plain"]["median"],
               "images_per_s": batch / t_train[key]["median"], "step_memory_mb": memory[key],
               "step_memory_x_plain": memory[key] / memory[plain] if plain in memory and memory[plain] == memory[plain] else None}
        row["eval_x_plain"] = t_eval[key]["median"] / t_eval["attnzoo plain"]["median"] if key in t_eval else None
        rows.append(row)
    return rows


# --- output ------------------------------------------------------------------------------------------

def write(out: Path, name: str, rows: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    if not rows:
        return
    keys = list(rows[0])
    lines = [f"{name}: {meta['setting'].get(name, '')} — {meta['machine']}, torch {meta['torch']}", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def plot_models(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    labels = [r["candidate"] for r in rows]
    ax.barh(labels, [r["train_x_plain"] for r in rows], color=["#4c72b0" if l.startswith("attnzoo") else "#999999" for l in labels])
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xlabel("training step time × attnzoo plain ResNet-50 (same run)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "models.png", dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "gpu"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=list(DTYPES))
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--models", nargs="+", default=["se", "eca", "cbam", "ha_soft", "aff"])
    parser.add_argument("--compile-models", nargs="+", default=["plain", "se", "cbam"])
    parser.add_argument("--compile-modules", nargs="+", default=["se", "cbam"])
    parser.add_argument("--modules", nargs="+", default=["se", "ese", "eca", "cbam", "cbam_channel", "cbam_spatial", "ha_soft", "mscam", "aff"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--module-batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and 2 rounds: checks the script, measures nothing")
    parser.add_argument("--parts", nargs="+", default=["kernels", "modules", "models"])
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.warmup, args.batch, args.module_batch = 2, 1, 4, 4
    size, module_shape = (32, "4×32×9×9") if args.smoke else (224, f"{args.module_batch}×256×56×56")
    device = torch.device(args.device)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    meta = {"command": "python scripts/gpu_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]), "machine": machine,
            "torch": torch.__version__, "triton": _triton_version(), "smoke": args.smoke,
            "setting": {"kernels": "Triton kernel vs reference equation, values and gradients (max relative difference)",
                        "modules": f"one module's forward + backward at {module_shape}, {args.dtype} autocast, channels-last, "
                                   "in copies of its input",
                        "models": f"{args.model} training step (with SGD step) and eval, batch {args.batch}, {size}², {args.dtype}, "
                                  "channels-last, × attnzoo plain; step memory above the resident model"}}
    out, status = Path(args.out), 0
    kernels = lambda device, args: against_reference(device, smoke=args.smoke)  # noqa: E731
    for part, fn in (("kernels", kernels), ("modules", bench_modules), ("models", bench_models)):
        if part not in args.parts:
            continue
        start = time.time()
        try:
            rows = fn(device, args)
        except Exception:  # one part failing must not lose the others' results
            traceback.print_exc()
            write(out, part, [], {**meta, "error": traceback.format_exc()})
            status = 1
            continue
        write(out, part, rows, meta)
        if part == "models":
            plot_models(out, rows)
        if part == "kernels" and not all(r["ok"] for r in rows):
            status = 1
        print(f"{part}: {len(rows)} rows in {time.time() - start:.0f} s", file=sys.stderr)
    return status


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "not installed"
    return triton.__version__


if __name__ == "__main__":
    sys.exit(main())

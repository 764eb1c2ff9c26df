"""``attnzoo bench modules`` and ``attnzoo bench models``.

Every latency is a median over interleaved rounds (with min and max) and is also given as a
ratio to a reference measured in the same run: for a module, one copy of its input tensor
(``x.clone()``: one read and one write of the tensor, the memory-traffic floor of anything that
returns a new tensor of that shape); for a model, the same backbone without attention.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ..layers import create_module, list_attn, list_conv, list_fusion, module_kind

from ..utils import count_macs, count_params
from ..utils.device import select_device
from .memory import cuda_peak_bytes, saved_activation_bytes
from .timing import time_interleaved, time_paired

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Passes over memory the module needs in principle, in units of one copy (read x + write y), when
# each of its steps streams the whole tensor: pooling reads x once (mean and max fused), applying a
# gate reads x and writes y. A kernel that took a cache-sized group of images through all its
# steps would read x from memory once and re-read the group from cache: in principle a copy's 1.0
# (on the machine of docs/benchmarks.md, whose L3 reads only ~1.4x faster than memory, it did not pay).
MEMORY_FLOOR = {
    "copy": (1.0, "read x, write y"),
    "se": (1.5, "pool: read x; scale: read x, write y"),
    "cbam_channel": (1.5, "avg+max pool: read x; scale: read x, write y"),
    "cbam_spatial": (1.5, "channel mean+max: read x; scale: read x, write y"),
    "cbam": (2.0, "pool x; pool x⊙Mc on the fly: read x; write x⊙Mc⊙Ms: read x, write y"),
    "ha_soft": (1.5, "pools: read x; A = σ(ReLU(s⊗(W c)+b)) on the fly: read x, write y"),
    "ha_spatial": (1.5, "channel mean: read x; scale: read x, write y"),
    "ha_channel": (1.5, "pool: read x; scale: read x, write y"),
    "eca": (1.5, "pool: read x; scale: read x, write y"),
    "ese": (1.5, "pool: read x; scale: read x, write y"),
    "ge": (1.5, "global gather: read x; scale: read x, write y"),
    "simam": (1.5, "per-channel mean and variance in one read of x; scale: read x, write y"),
    "mscam": (2.0, "pool + per-pixel bottleneck in one read of x; write y (plus the C/r hidden map)"),
    "add": (1.5, "read x and y, write z"),
    "aff": (2.5, "read x, y for M and for z (x+y pooled in the same pass), write z"),
    "iaff": (3.5, "as AFF, plus a second attention pass over xi"),
}


def _maybe_fused(module: torch.nn.Module, fused: bool) -> torch.nn.Module:
    """The module with :func:`attnzoo.fused.convert` applied when ``fused`` (an error saying why if
    the kernels cannot be built)."""
    if not fused:
        return module
    from .. import fused as fused_kernels

    try:
        return fused_kernels.convert(module, inplace=True)
    except RuntimeError as e:
        raise ValueError(f"--fused: {e}") from None


def machine_info(threads: int, fused: bool = False) -> dict[str, Any]:
    info = {
        "fused_kernels": fused,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _autocast(device: torch.device, dtype: str):
    import contextlib

    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def _forward(model, inputs, device, dtype) -> Callable[[], object]:
    sync = _sync(device)

    def run():
        with torch.inference_mode(), _autocast(device, dtype):
            out = model(*inputs)
        sync()
        return out

    return run


def _forward_backward(model, inputs, device, dtype) -> Callable[[], object]:
    sync = _sync(device)
    leaves = [t.detach().clone().requires_grad_() for t in inputs]

    def run():
        with _autocast(device, dtype):
            out = model(*leaves)
        out = out[0] if isinstance(out, (tuple, list)) else out
        out.float().sum().backward()
        for p in list(getattr(model, "parameters", lambda: [])()) + leaves:
            p.grad = None
        sync()

    return run


def _train_step(model: torch.nn.Module, x: torch.Tensor, device: torch.device, dtype: str, optimizer_step: bool) -> Callable[[], object]:
    """One training step as a user runs it: zero_grad, forward (train mode), cross-entropy loss,
    backward, and the SGD step if ``optimizer_step``."""
    sync = _sync(device)
    target = torch.randint(0, 10, (x.shape[0],), device=x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9) if optimizer_step else None

    def run():
        model.zero_grad(set_to_none=True)
        with _autocast(device, dtype):
            out = model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        torch.nn.functional.cross_entropy(out.float(), target % out.shape[1]).backward()
        if optimizer is not None:
            optimizer.step()
        sync()

    return run


def _prepare(threads: Optional[int], device: str, channels_last: bool) -> tuple[torch.device, torch.memory_format]:
    """Thread count set, (device, memory format) of the inputs."""
    if threads:
        torch.set_num_threads(threads)
    return select_device(device), (torch.channels_last if channels_last else torch.contiguous_format)


class _Copy(torch.nn.Module):
    """The reference: one copy of the input."""

    def forward(self, x, y=None):
        return x.clone()


def bench_modules(
    names: Optional[Sequence[str]] = None,
    channels: int = 256,
    size: int = 56,
    batch: int = 8,
    dtype: str = "fp32",
    threads: Optional[int] = None,
    rounds: int = 20,
    warmup: int = 3,
    backward: bool = True,
    compile: bool = False,
    fused: bool = False,
    channels_last: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Benchmark attention/fusion modules at input ``batch×channels×size×size`` (eval mode)."""
    dev, fmt = _prepare(threads, device, channels_last)
    names = list(names or list_attn() + list_fusion() + list_conv())
    x = torch.randn(batch, channels, size, size, device=dev).contiguous(memory_format=fmt)
    y = torch.randn_like(x)
    modules: dict[str, torch.nn.Module] = {"copy": _Copy()}
    skipped: dict[str, str] = {}
    for name in names:
        module = _maybe_fused(create_module(name, channels).to(dev).eval(), fused)
        try:  # a module that refuses this shape (BoTNet beyond its feat_size, a too-large attention matrix)
            with torch.no_grad():
                module(*((x, y) if module_kind(name) == "fusion" else (x,)))
        except ValueError as e:
            skipped[name] = str(e)
            continue
        modules[name] = module
    inputs = {name: (x, y) if name != "copy" and module_kind(name) == "fusion" else (x,) for name in modules}
    run = {name: (torch.compile(m) if compile and name != "copy" else m) for name, m in modules.items()}
    # Each module is timed next to its own copy of the input, every round: see time_paired.
    fwd = _time_against("copy", {n: _forward(run[n], inputs[n], dev, dtype) for n in run}, rounds, warmup)
    bwd = {}
    if backward:
        for m in modules.values():
            m.train()
        bwd = _time_against("copy", {n: _forward_backward(run[n], inputs[n], dev, dtype) for n in run}, max(5, rounds // 2), warmup)
        for m in modules.values():
            m.eval()
    rows = [_module_row(name, m, inputs[name], fwd[name], bwd.get(name), batch, run[name], dev, dtype) for name, m in modules.items()]
    return {
        "kind": "modules",
        "setup": {"input_shape": [batch, channels, size, size], "dtype": dtype, "mode": "eval (forward); train (forward+backward)",
                  "rounds": rounds, "warmup": warmup, "compile": compile, "channels_last": channels_last, "device": str(dev),
                  "reference": "copy = x.clone(), timed next to each module call in every round (before it in even rounds, after it in odd ones); "
                               "ratio = median over rounds of module time / that copy's time",
                  "control_ratio": fwd.get("__control__", {}).get("ratio")},
        "machine": machine_info(torch.get_num_threads(), fused),
        "rows": rows,
        "skipped": skipped,
    }


def _module_row(name: str, m: torch.nn.Module, inputs: tuple, fwd: dict, bwd: Optional[dict], batch: int, run: Any, dev: torch.device,
                dtype: str) -> dict[str, Any]:
    """One module's row: parameters, MACs, timings and ratios, memory saved for backward."""
    row = {
        "name": name,
        "params": count_params(m),
        "macs": count_macs(m, [t.cpu() for t in inputs]) if name != "copy" else 0,
        "forward_ms": _ms_dict(fwd),
        "forward_ratio": fwd["ratio"],
        "throughput_img_s": batch / fwd["median"],
        "floor_ratio": MEMORY_FLOOR.get(name, (None, ""))[0],
        "floor_passes": MEMORY_FLOOR.get(name, (None, ""))[1],
    }
    if bwd is not None:
        row["train_ms"] = _ms_dict(bwd)
        row["train_ratio"] = bwd["ratio"]
        m.train()
        row["saved_for_backward_mb"] = saved_activation_bytes(lambda: m(*[t.detach().requires_grad_() for t in inputs])) / 2**20
        m.eval()
    if dev.type == "cuda":
        row["cuda_peak_forward_mb"] = cuda_peak_bytes(_forward(run, inputs, dev, dtype), dev) / 2**20
    return row


DEFAULT_MODEL_VARIANTS = ("plain", "se", "cbam", "aff", "iaff")


def bench_models(
    model: str = "resnet50",
    variants: Sequence[str] = DEFAULT_MODEL_VARIANTS,
    batch: int = 8,
    size: int = 224,
    dtype: str = "fp32",
    threads: Optional[int] = None,
    rounds: int = 10,
    warmup: int = 2,
    backward: bool = False,
    compile: bool = False,
    fused: bool = False,
    channels_last: bool = False,
    device: str = "cpu",
    backend: str = "eager",
    optimizer_step: bool = False,
) -> dict[str, Any]:
    """Benchmark ``model`` with each attention/fusion variant against the plain model.

    ``backend="onnxruntime"`` also exports every variant to ONNX and times it in onnxruntime (rows
    ``NAME [onnxruntime]``), in the same interleaved rounds, against the same eager reference.
    """
    from ..models.spec import parse_variant

    dev, fmt = _prepare(threads, device, channels_last)
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=fmt)
    models = {}
    for label in variants:
        v = parse_variant(label, model)
        torch.manual_seed(0)
        models[label] = _maybe_fused(v.build(1000).to(dev).to(memory_format=fmt).eval(), fused)
    run = {n: (torch.compile(m) if compile else m) for n, m in models.items()}
    ref = "plain" if "plain" in models else next(iter(models))
    candidates = {n: _forward(run[n], (x,), dev, dtype) for n in run}
    if backend == "onnxruntime":
        candidates.update(_onnxruntime_runs(models, x))
    elif backend != "eager":
        raise ValueError(f"backend must be 'eager' or 'onnxruntime', got {backend!r}")
    # As for modules: the plain model runs next to every variant, each round (see time_paired).
    fwd = _time_against(ref, candidates, rounds, warmup)
    bwd = {}
    if backward:
        for m in models.values():
            m.train()
        bwd = _time_against(ref, {n: _train_step(run[n], x, dev, dtype, optimizer_step) for n in run}, max(3, rounds // 2), 1)
    rows = _model_rows(models, fwd, bwd, batch, size, dev, x if backward else None)
    return {
        "kind": "models",
        "setup": {"model": model, "input_shape": [batch, 3, size, size], "dtype": dtype,
                  "mode": "eval (forward)" + (f", training step (zero_grad, forward, cross-entropy, backward{', SGD step' if optimizer_step else ''})"
                                              if backward else ""),
                  "rounds": rounds, "warmup": warmup, "compile": compile, "channels_last": channels_last, "device": str(dev), "reference": ref,
                  "pairing": f"{ref} timed next to each variant call in every round (before it in even rounds, after it in odd ones); "
                             f"ratio = median over rounds of variant time / that {ref} time",
                  "control_ratio": fwd.get("__control__", {}).get("ratio")},
        "machine": machine_info(torch.get_num_threads(), fused),
        "rows": rows,
    }


def _model_rows(models: dict[str, torch.nn.Module], fwd: dict, bwd: dict, batch: int, size: int, dev: torch.device,
                x: Optional[torch.Tensor] = None) -> list[dict[str, Any]]:
    """Each model's row (and its onnxruntime twin's, when timed): parameters, MACs, timings, ratios,
    and with ``x`` the memory autograd keeps for backward in one training forward."""
    rows = []
    for name, m in models.items():
        row = {
            "name": name,
            "params": count_params(m),
            "macs": count_macs(m.cpu() if dev.type != "cpu" else m, (1, 3, size, size)),
            "forward_ms": _ms_dict(fwd[name]),
            "forward_ratio": fwd[name]["ratio"],
            "throughput_img_s": batch / fwd[name]["median"],
        }
        m.to(dev)
        if bwd:
            row["train_ms"] = _ms_dict(bwd[name])
            row["train_ratio"] = bwd[name]["ratio"]
            row["saved_for_backward_mb"] = saved_activation_bytes(lambda m=m: m.train()(x)) / 2**20
        rows.append(row)
        ort = f"{name} [onnxruntime]"
        if ort in fwd:
            rows.append({**{k: row[k] for k in ("params", "macs")}, "name": ort, "forward_ms": _ms_dict(fwd[ort]),
                         "forward_ratio": fwd[ort]["ratio"], "throughput_img_s": batch / fwd[ort]["median"]})
    return rows


def _onnxruntime_runs(models: dict[str, torch.nn.Module], x: torch.Tensor) -> dict[str, Any]:
    """``NAME [onnxruntime]`` -> a call of the exported model on ``x`` (as many threads as torch)."""
    import tempfile

    from ..export import _require, export_model

    _require("onnxruntime", "export")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in models.items():
            path = export_model(m, tuple(x.shape[1:]), f"{tmp}/{len(runs)}.onnx", "onnx")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: x.cpu().numpy()}
            runs[f"{name} [onnxruntime]"] = lambda session=session, feed=feed: session.run(None, feed)
    return runs


def _time_against(ref: str, fns: dict[str, Any], rounds: int, warmup: int) -> dict[str, dict[str, float]]:
    """:func:`time_paired` of every other candidate against ``fns[ref]``; ``ref`` gets ratio 1."""
    others = {n: f for n, f in fns.items() if n != ref}
    if not others:
        return {ref: {**time_interleaved(fns, rounds=rounds, warmup=warmup)[ref], "ratio": 1.0}}
    result = time_paired(fns[ref], others, rounds, warmup)
    result[ref] = {**result.pop("__reference__"), "ratio": 1.0}
    return result


def _ms_dict(t: dict) -> dict:
    """Seconds -> milliseconds for the timing fields."""
    return {k: v * 1e3 if k in ("median", "min", "max", "reference_median") else v for k, v in t.items()}


def _ms(t: dict) -> str:
    return f"{t['median']:.2f} ({t['min']:.2f}–{t['max']:.2f})"


def to_markdown(result: dict[str, Any]) -> str:
    s, m = result["setup"], result["machine"]
    ref = "copy of the input" if result["kind"] == "modules" else f"plain {s['model']}"
    lines = [
        f"Input {'×'.join(map(str, s['input_shape']))}, {s['dtype']}, {s['device']}, {m['threads']} thread(s), "
        f"compile={s['compile']}, fused kernels={m.get('fused_kernels', False)}, channels_last={s['channels_last']}; medians (min–max) of {s['rounds']} interleaved rounds. "
        f"Ratios are to the {ref} in the same run. Machine: {m.get('cpu_model') or m['processor']}{', ' + m['gpu'] if 'gpu' in m else ''}; torch {m['torch']}.",
        "",
    ]
    has_train = "train_ms" in result["rows"][0]
    head = ["name", "params", "MMACs", "forward ms", "× ref"]
    if result["kind"] == "modules":
        head += ["floor ×"]
    head += ["img/s"]
    if has_train:
        head += ["fwd+bwd ms" if result["kind"] == "modules" else "train step ms", "× ref", "saved for bwd MB"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        digits = 2 if result["kind"] == "modules" else 3  # whole models differ by a few per cent
        cells = [r["name"], f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}", _ms(r["forward_ms"]), f"{r['forward_ratio']:.{digits}f}"]
        if result["kind"] == "modules":
            cells.append(f"{r['floor_ratio']:.1f}" if r.get("floor_ratio") else "—")
        cells.append(f"{r['throughput_img_s']:.0f}")
        if has_train and "train_ms" in r:
            cells += [_ms(r["train_ms"]), f"{r['train_ratio']:.{digits}f}", f"{r['saved_for_backward_mb']:.1f}"]
        elif has_train:
            cells += ["—", "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    for name, reason in result.get("skipped", {}).items():
        lines += ["", f"Skipped {name} at this shape: {reason}"]
    if result["kind"] == "modules":
        lines += ["", "floor ×: passes over memory the module needs in principle, in copies of the input, when each step "
                  "streams the whole tensor (one that kept a group of images in cache across its steps could reach 1.0): "
                  + "; ".join(f"{k} {v[0]} ({v[1]})" for k, v in MEMORY_FLOOR.items() if any(r["name"] == k for r in result["rows"]))]
    if s.get("control_ratio") is not None:
        lines += ["", f"Control: the {ref} paired with itself (an A/A pair, timed like every row) gave ×{s['control_ratio']:.3f}; "
                  "ratios closer to 1 than its distance from 1 are within this run's resolution."]
    if has_train and result["kind"] == "models":
        lines += ["", f"Training step: {s['mode'].split(', ', 1)[1]}; batch of random labels; saved for bwd: distinct storages "
                  "autograd keeps for backward in one forward."]
    lines += ["", "MACs: convolutions and matrix products (FlopCounterMode / 2); pooling and elementwise ops are not counted."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["name"] not in ("copy",)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(max(r["params"], 1), r["forward_ratio"], s=40, color="0.4" if r["name"] == "plain" else "tab:blue")
        ax.annotate(r["name"], (max(r["params"], 1), r["forward_ratio"]), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log)")
    ref = "one copy of the input" if result["kind"] == "modules" else "plain model"
    ax.set_ylabel(f"forward latency / {ref}")
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    s = result["setup"]
    ax.set_title(f"Cost of attention: {'×'.join(map(str, s['input_shape']))} {s['dtype']} {s['device']}, {result['machine']['threads']} threads", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def print_table(result: dict[str, Any]) -> None:
    print(to_markdown(result))


def write(result: dict[str, Any], out: Path, stem: str) -> list[Path]:
    from ..utils.io import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{stem}.json", result)
    atomic_write_text(out / f"{stem}.md", to_markdown(result))
    plot(result, out / f"{stem}.png")
    return [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png"]

"""Where the time of a training step goes: per-op self CPU time of attention variants minus plain.

One ResNet training step (zero_grad, forward, cross-entropy, backward) per variant under
torch.profiler, after warm-up; the table lists, per aten op, the time each variant spends beyond the
plain model (ops the variant adds or runs on more data), so the cost of an attention block's
forward and backward can be read op by op. Timings on a shared CPU are noisy: read the largest
rows, not the decimals.

    python scripts/profile_train_step.py --variants se eca cbam --threads 2 > docs/bench/train-profile.md

With ``--block C H W`` it profiles one attention module alone instead (forward + backward on an
input of batch × C × H × W that requires grad), per aten op, and states each op's time in copies
of the input (``x.clone()`` timed in the same process): the units of the elementwise floor.

    python scripts/profile_train_step.py --block 256 32 32 --variants cbam se --threads 2
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from attnzoo.layers import create_attn
from attnzoo.models.spec import parse_variant


def step_profile(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> dict[str, float]:
    """Mean self CPU ms per op over ``steps`` profiled training steps."""
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        times[event.key] += event.self_cpu_time_total / 1e3 / steps
    return dict(times)


def block_profile(name: str, x: torch.Tensor, steps: int) -> dict[str, float]:
    """Mean self CPU ms per op of one module's forward + backward on ``x``."""
    module = create_attn(name, x.shape[1]).train()
    x = x.detach().requires_grad_(True)
    grad = torch.randn_like(x)

    def step() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).backward(grad)

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}


def copy_ms(x: torch.Tensor, repeats: int = 20) -> float:
    import statistics
    import time

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        x.clone()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def print_block_profiles(args: argparse.Namespace) -> None:
    x = torch.randn(args.batch, *args.block)
    copy = copy_ms(x)
    print(f"# One attention block's forward + backward: input {args.batch}×{'×'.join(map(str, args.block))}, fp32, "
          f"{args.threads} threads, torch {torch.__version__}\n")
    print(f"Self CPU time per forward + backward (mean of {args.steps} profiled steps after 2 warm-up steps), by aten op, "
          f"and in copies of the input (`x.clone()`: {copy:.2f} ms here); profiler overhead included.\n")
    for name in args.variants:
        times = block_profile(name, x, args.steps)
        total = sum(times.values())
        print(f"## {name}: {total:.1f} ms = {total / copy:.1f} copies\n")
        print("| op | ms | copies |")
        print("|---|---|---|")
        for op, t in sorted(times.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"| `{op}` | {t:.2f} | {t / copy:.1f} |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--variants", nargs="+", default=["se", "eca", "cbam"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--block", type=int, nargs=3, metavar=("C", "H", "W"), help="profile one attention module on batch×C×H×W")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.block:
        return print_block_profiles(args)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 1000, (args.batch,))
    profiles = {v: step_profile(parse_variant(v, args.model).build(1000).train(), x, y, args.steps) for v in ["plain", *args.variants]}
    total = {v: sum(p.values()) for v, p in profiles.items()}
    print(f"# Training step profile: {args.model}, batch {args.batch} at {args.size}², fp32, {args.threads} threads, "
          f"torch {torch.__version__}\n")
    print("Self CPU time per step (mean of", args.steps, "profiled steps after 2 warm-up steps), by aten op; "
          "profiler overhead included, so totals run above unprofiled timings.\n")
    print("| variant | total ms | × plain |")
    print("|---|---|---|")
    for v, t in total.items():
        print(f"| {v} | {t:.0f} | {t / total['plain']:.2f} |")
    for v in args.variants:
        delta = {op: profiles[v].get(op, 0.0) - profiles["plain"].get(op, 0.0) for op in set(profiles[v]) | set(profiles["plain"])}
        print(f"\n## {v}: ops by time beyond plain (step: +{total[v] - total['plain']:.0f} ms)\n")
        print("| op | plain ms | " + v + " ms | Δ ms |")
        print("|---|---|---|---|")
        for op, d in sorted(delta.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"| `{op}` | {profiles['plain'].get(op, 0.0):.1f} | {profiles[v].get(op, 0.0):.1f} | {d:+.1f} |")


if __name__ == "__main__":
    main()

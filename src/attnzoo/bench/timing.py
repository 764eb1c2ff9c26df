"""Interleaved timing: warm-up, then rounds that run every candidate once, medians of the rounds.

Interleaving spreads the machine's drifts (other processes, frequency changes) over all
candidates alike, so their ratios measured in one run are trustworthy even on a noisy machine.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def time_interleaved(candidates: dict[str, Callable[[], object]], rounds: int = 20, warmup: int = 3, inner: int = 1) -> dict[str, dict[str, float]]:
    """Seconds per call of each candidate: median, min, max over ``rounds`` interleaved rounds.

    Each round calls every candidate ``inner`` times (in a rotated order, so no candidate is
    always first) and records the mean time per call.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = candidates[name]
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner)
    return {
        name: {"median": statistics.median(s), "min": min(s), "max": max(s), "rounds": len(s)}
        for name, s in samples.items()
    }


def forward_fn(model: torch.nn.Module, *inputs: torch.Tensor) -> Callable[[], object]:
    """An eval-mode, no-grad forward call."""
    model.eval()

    def run():
        with torch.inference_mode():
            return model(*inputs)

    return run


def time_paired(reference: Callable[[], object], candidates: dict[str, Callable[[], object]], rounds: int = 20, warmup: int = 3) -> dict[str, dict[str, float]]:
    """Like :func:`time_interleaved`, but every candidate call is paired with a reference call next
    to it — the reference first in even rounds, second in odd ones — and each candidate's ``ratio``
    is the median over rounds of (its time / its pair's reference time).

    Neighbouring calls share the machine's state (caches, page mappings, clock, other tenants'
    load), so a ratio taken within each pair cancels drifts that a ratio of two medians keeps;
    alternating the order cancels what going first or second does to a call (a cold cache, say).
    ``"__control__"`` is an A/A pair, the reference against itself: its ratio shows the bias and
    noise of the method in this run, the resolution of every other ratio.
    """
    names = list(candidates) + ["__control__"]
    fns = {**candidates, "__control__": reference}
    for _ in range(warmup):
        for name in names:
            reference()
            fns[name]()
    own: dict[str, list[float]] = {name: [] for name in names}
    refs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            first, second = (reference, fns[name]) if r % 2 == 0 else (fns[name], reference)
            start = time.perf_counter()
            first()
            mid = time.perf_counter()
            second()
            end = time.perf_counter()
            ref_time, own_time = (mid - start, end - mid) if r % 2 == 0 else (end - mid, mid - start)
            refs[name].append(ref_time)
            own[name].append(own_time)
    result = {}
    for name in names:
        med, ref = statistics.median(own[name]), statistics.median(refs[name])
        ratio = statistics.median(o / r for o, r in zip(own[name], refs[name]))
        result[name] = {"median": med, "min": min(own[name]), "max": max(own[name]), "rounds": rounds,
                        "reference_median": ref, "ratio": ratio}
    all_refs = [t for name in names for t in refs[name]]
    result["__reference__"] = {"median": statistics.median(all_refs), "min": min(all_refs), "max": max(all_refs), "rounds": len(all_refs)}
    return result

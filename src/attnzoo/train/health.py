"""Health of a training run: gate statistics per layer, and the flags that mark a run whose
score should not be averaged with the others.

A run is flagged when its final accuracy is below twice chance, when its loss went non-finite,
or when a layer's sigmoid gate is saturated over the last evaluation (mean below 0.05: the
block's branch is switched off; above 0.95: the gate passes everything and does nothing).
A collapse shows first in the gate statistics, which every run logs per epoch.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

SATURATION_LOW, SATURATION_HIGH = 0.05, 0.95


def _elementwise_gate(module: nn.Module) -> bool:
    """Gates whose every output is an independent value in [0, 1] (sigmoids). Softmax gates sum to
    1 over positions or branches, so their mean says nothing about saturation; tanh gives θ."""
    return isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)) or type(module).__name__ == "HardSigmoid"


class GateStats:
    """Running mean and std of every sigmoid ``gate`` output in ``model`` while active.

    Entering adds forward hooks, leaving removes them; sums carry over, so one object can be
    entered once per batch. ``summary()`` gives the totals:

    >>> with GateStats(model) as gates:
    ...     model(x)
    >>> gates.summary()  # {"layer1.0.attn.gate": {"mean": 0.48, "std": 0.11}, ...}
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.sums: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> "GateStats":
        for name, module in self.model.named_modules():
            if name.split(".")[-1] == "gate" and _elementwise_gate(module):
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            var, mean = torch.var_mean(output.detach().float(), correction=0)  # one pass, no float64 copy
            n = output.numel()
            acc = torch.tensor([mean.item() * n, (var.item() + mean.item() ** 2) * n, float(n)], dtype=torch.float64)
            self.sums[name] = self.sums[name] + acc if name in self.sums else acc

        return record

    def summary(self) -> dict[str, dict[str, float]]:
        result = {}
        for name, (total, squares, count) in self.sums.items():
            mean = (total / count).item()
            var = max((squares / count).item() - mean * mean, 0.0)
            result[name] = {"mean": mean, "std": var**0.5}
        return result


def health_flags(last_top1: Optional[float], num_classes: int, gates: dict[str, dict[str, float]], diverged: bool = False) -> list[str]:
    """Reasons to distrust a run's score; an empty list is a healthy run."""
    flags = []
    if diverged:
        flags.append("non-finite loss")
    chance = 1.0 / num_classes
    if last_top1 is not None and last_top1 < 2 * chance:
        flags.append(f"top-1 {last_top1:.3f} below 2x chance ({2 * chance:.3f})")
    for layer, s in sorted(gates.items()):
        if not SATURATION_LOW <= s["mean"] <= SATURATION_HIGH:
            flags.append(f"gate {layer} saturated (mean {s['mean']:.3f})")
    return flags

"""Statistics for comparing variants trained over the same seeds.

Each variant's run for seed ``k`` shares its data order and augmentation with the plain run for
seed ``k`` (both are functions of the seed alone), so the per-seed differences are paired: the
primary test is the paired t-test on ``d_k = variant_k − plain_k``. Welch's interval on the two
groups (which ignores the pairing) is reported beside it. Holm's step-down correction keeps the
family-wise error rate at 5% across all variants compared with plain.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t  # scipy comes with the train extra (scikit-learn needs it)

    return float(t.ppf(p, df))


def t_two_sided_p(t_value: float, df: float) -> float:
    from scipy.stats import t

    return float(2 * t.sf(abs(t_value), df))


@dataclass(frozen=True)
class Interval:
    """A difference (mean, 95% interval, two-sided p-value) and the test that gave it."""

    diff: float
    low: float
    high: float
    p: float
    df: float
    n: int
    test: str

    def to_dict(self) -> dict:
        return {"diff": self.diff, "ci95": [self.low, self.high], "p": self.p, "df": self.df, "n": self.n, "test": self.test}


def welch(a: Sequence[float], b: Sequence[float]) -> Optional[Interval]:
    """mean(a) − mean(b) with Welch's t interval; None with fewer than 2 values per group."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(diff, diff, diff, 0.0 if diff else 1.0, math.inf, len(a) + len(b), "welch")
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(0.975, df) * se
    return Interval(diff, diff - half, diff + half, t_two_sided_p(diff / se, df), df, len(a) + len(b), "welch")


def paired(a: dict[int, float], b: dict[int, float]) -> Optional[Interval]:
    """Mean of per-seed differences ``a[s] − b[s]`` over the seeds both have, with the paired-t
    interval; None with fewer than 2 common seeds."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    d = [a[s] - b[s] for s in seeds]
    mean, df = statistics.fmean(d), len(d) - 1
    se = statistics.stdev(d) / math.sqrt(len(d))
    if se == 0:
        return Interval(mean, mean, mean, 0.0 if mean else 1.0, df, len(d), "paired")
    half = t_quantile(0.975, df) * se
    return Interval(mean, mean - half, mean + half, t_two_sided_p(mean / se, df), df, len(d), "paired")


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values: ``p_(i) · (m − i + 1)``, made monotone, capped at 1 (i from 1)."""
    order = sorted(p_values, key=lambda k: p_values[k])
    m, running, adjusted = len(order), 0.0, {}
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[key]))
        adjusted[key] = running
    return adjusted


def seeds_to_resolve(diff: float, sd: float, power_z: float = 0.8416, alpha_z: float = 1.96) -> Optional[int]:
    """Seeds a paired comparison needs to show ``diff`` at 5% (two-sided) with 80% power, given the
    sd of per-seed differences (normal approximation: n = ((z_α/2 + z_β) · sd / diff)²)."""
    if diff == 0 or not math.isfinite(sd):
        return None
    return max(2, math.ceil(((alpha_z + power_z) * sd / abs(diff)) ** 2))

import math
import statistics

import pytest

from attnzoo.experiments import stats


def test_welch_matches_hand_computation():
    # Equal variances and sizes: Welch df = (2/3)² / (2 · (1/3)² / 2) = 4 exactly, t_{0.975, 4} = 2.7764 (tables).
    r = stats.welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    se = math.sqrt(1 / 3 + 1 / 3)
    assert r.df == pytest.approx(4.0)
    assert r.diff == pytest.approx(-1.0)
    assert (r.low, r.high) == pytest.approx((-1 - 2.7764 * se, -1 + 2.7764 * se), rel=1e-4)
    # t = -1 / 0.8165 = -1.2247 on 4 df: two-sided p = 0.2879
    assert r.p == pytest.approx(0.2879, abs=5e-4)
    assert stats.welch([0.5], [0.1, 0.2]) is None


def test_paired_matches_hand_computation():
    variant = {0: 0.90, 1: 0.85, 2: 0.88, 3: 0.70}
    plain = {0: 0.88, 1: 0.84, 2: 0.85, 4: 0.99}  # seed 3 and 4 have no partner
    r = stats.paired(variant, plain)
    d = [0.02, 0.01, 0.03]
    se = statistics.stdev(d) / math.sqrt(3)  # 0.005774
    assert r.n == 3 and r.df == 2 and r.diff == pytest.approx(0.02)
    assert (r.low, r.high) == pytest.approx((0.02 - 4.3027 * se, 0.02 + 4.3027 * se), rel=1e-4)
    # t = 0.02 / se = 3.4641 on 2 df: two-sided p = 0.07418 (R: 2*pt(-3.4641, 2))
    assert r.p == pytest.approx(0.07418, rel=1e-3)
    assert stats.paired({0: 0.5}, {0: 0.4}) is None


def test_paired_is_tighter_than_welch_when_seeds_share_noise():
    plain = {s: 0.80 + 0.05 * (s % 3) for s in range(6)}  # large seed-to-seed spread
    variant = {s: v + 0.01 for s, v in plain.items()}  # +1 point on every seed
    assert stats.paired(variant, plain).p < 1e-6
    assert stats.welch(list(variant.values()), list(plain.values())).p > 0.5


def test_holm_step_down():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    adj = stats.holm(p)
    # sorted: a 0.01*4 = 0.04, c 0.03*3 = 0.09, b 0.04*2 = 0.08 -> monotone 0.09, d 0.5*1 -> 0.5
    assert adj == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert stats.holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
    assert stats.holm({}) == {}


def test_seeds_to_resolve():
    # ((1.96 + 0.8416) * 1 / 0.5)^2 = 31.4 -> 32
    assert stats.seeds_to_resolve(0.5, 1.0) == 32
    assert stats.seeds_to_resolve(0.0, 1.0) is None

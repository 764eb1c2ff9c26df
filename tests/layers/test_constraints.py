"""Option values are checked against rules declared once (layers/constraints.py, ``option_rules``):
every option of every registered module has one, every value a rule refuses is a one-line
ValueError naming the module and the option, and values a rule accepts build a working module or
are refused by the module's own cross-option check — never a crash from inside."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnzoo.layers import create_module
from attnzoo.layers.constraints import ACTIVATION, option_rules
from attnzoo.layers.registry import get_module_class, list_modules, module_kind
from attnzoo.utils.constraints import Choice, Flag, Integer, Number, Predicate

ALL = list_modules()
C = 16


def options_of(name: str) -> list[inspect.Parameter]:
    cls = get_module_class(name)
    return [p for p in inspect.signature(cls.__init__).parameters.values() if p.name not in ("self", "channels")]


def run(module, name: str) -> torch.Tensor:
    x = torch.randn(2, C, 7, 6)
    return module(x, torch.randn_like(x)) if module_kind(name) == "fusion" else module(x)


@pytest.mark.parametrize("name", ALL)
def test_every_option_declares_a_rule(name):
    rules = option_rules(get_module_class(name))
    assert [p.name for p in options_of(name) if p.name not in rules] == []


@pytest.mark.parametrize("name", ALL)
def test_every_default_is_accepted_by_its_rule(name):
    rules = option_rules(get_module_class(name))
    for p in options_of(name):
        assert p.default is None or rules[p.name].accepts(p.default), (name, p.name, p.default)


CASES = [(name, p.name, value) for name in ALL for p in options_of(name)
         for value in option_rules(get_module_class(name))[p.name].counterexamples()
         if not (value is None and p.default is None)]


@pytest.mark.parametrize("name, option, value", CASES, ids=[f"{n}-{o}={v!r}" for n, o, v in CASES])
def test_refused_values_are_one_line_errors_naming_the_option(name, option, value):
    cls = get_module_class(name)
    with pytest.raises(ValueError) as info:
        create_module(name, C, **{option: value})
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}: {option}={value!r}: expected "), message
    assert "\n" not in message


# What issue 25 found crashing or training silently at b83c25c (each passed validation, then failed later).
@pytest.mark.parametrize("name, options, expected", [
    ("triplet", {"kernel_size": 4}, "an odd integer ≥ 1"), ("triplet", {"kernel_size": 0}, "an odd integer ≥ 1"),
    ("bat", {"reduction": 0}, "a number ≥ 1"), ("eca", {"gamma": 0}, "a number > 0"), ("bam", {"dilation": 0}, "an integer ≥ 1"),
    ("sk", {"paths": 0}, "an integer ≥ 1"), ("sk", {"out_channels": -8}, "an integer ≥ 1"),
    ("se", {"reduction": 1e-9}, "a number ≥ 1"), ("ela", {"groups": 0}, "an integer ≥ 1"), ("splat", {"radix": 0}, "an integer ≥ 1"),
    ("scoord", {"reduction": -1}, "a number ≥ 1"),
])
def test_the_values_that_crashed_later(name, options, expected):
    with pytest.raises(ValueError, match=f": expected {expected}$"):
        create_module(name, C, **options)


def test_an_unknown_option_is_a_value_error_naming_the_module():
    with pytest.raises(ValueError, match=r"^SqueezeExcite: got an unexpected keyword argument 'out_channels'$"):
        create_module("se", C, out_channels=8)


def test_the_class_itself_checks_not_only_the_registry():
    from attnzoo.layers.cbam import CBAM

    with pytest.raises(ValueError, match=r"^CBAM: kernel_size=4: expected an odd integer ≥ 1$"):
        CBAM(C, kernel_size=4)


def strategy(rule):
    """Values ``rule`` accepts, kept small (modules are built at C = 16)."""
    if isinstance(rule, Integer):
        low = rule.minimum if rule.minimum is not None else -4
        values = st.integers(low, min(low + 8, rule.maximum if rule.maximum is not None else low + 8))
        return values.filter(lambda v: v % 2 == 1) if rule.odd else values
    if isinstance(rule, Number):
        low = rule.minimum if rule.minimum is not None else -4.0
        high = rule.maximum if rule.maximum is not None else low + 8
        return st.floats(low, high, exclude_min=not rule.closed_min, exclude_max=not rule.closed_max)
    if isinstance(rule, Choice):
        return st.sampled_from(rule.values)
    if isinstance(rule, Flag):
        return st.booleans()
    if rule is ACTIVATION:
        return st.sampled_from(["relu", "sigmoid", "hard_sigmoid", "silu"])
    raise AssertionError(f"no strategy for {rule}")


@st.composite
def module_and_options(draw):
    name = draw(st.sampled_from(ALL))
    rules = option_rules(get_module_class(name))
    chosen = draw(st.lists(st.sampled_from([p.name for p in options_of(name)]), unique=True, max_size=3)) if options_of(name) else []
    return name, {k: draw(strategy(rules[k])) for k in chosen}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(module_and_options())
def test_accepted_values_build_a_working_module_or_a_one_line_refusal(case):
    name, options = case
    try:
        module = create_module(name, C, **options).eval()
        with torch.no_grad():
            y = run(module, name)
    except ValueError as e:  # a cross-option rule (heads vs width, feat_size vs input, ...): one line
        assert "\n" not in str(e)
        return
    assert torch.isfinite(y).all()


def test_rule_words_and_edges():
    assert Integer(minimum=1, odd=True).expected == "an odd integer ≥ 1"
    assert Number(minimum=0, maximum=1, closed_max=False).expected == "a number in [0, 1)"
    assert Number(minimum=0, closed_min=False).expected == "a number > 0"
    assert not Number().accepts(math.nan) and not Number().accepts(math.inf) and not Number().accepts(True)
    assert Number(minimum=1).accepts(1) and not Number(minimum=1).accepts(0.999)
    assert not Integer(minimum=1).accepts(2.0) and not Integer(minimum=1).accepts(True)
    assert not Choice(("a", "b")).accepts("c") and Choice((1, 2)).accepts(2) and not Choice((1, 2)).accepts(True)
    assert Predicate("even", lambda v: v % 2 == 0).check("k", 4) == 4
    with pytest.raises(ValueError, match=r"^M: k=3: expected even$"):
        Predicate("even", lambda v: v % 2 == 0).check("k", 3, "M")

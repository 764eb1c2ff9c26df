"""Declared constraints on option values: each rule says in words what a value must be, and tests it.

Module options declare theirs in :mod:`attnzoo.layers.constraints` (by parameter name, and per class
in ``option_rules``), training fields in :mod:`attnzoo.train.config` (``option(..., rule=...)``);
every value is checked against its rule before anything is built or trained, and a failure is one
line naming the option, the value and what was expected. Rules also list values they refuse
(:meth:`Rule.counterexamples`), which the tests feed to every declared option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional


class Rule:
    """What an option's value must be (``expected``, in words) and the test (``accepts``)."""

    expected: str

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def check(self, name: str, value: Any, owner: str = "") -> Any:
        """``value`` if this rule accepts it, else a ValueError naming ``owner``, ``name`` and the rule."""
        if not self.accepts(value):
            raise ValueError(f"{owner + ': ' if owner else ''}{name}={value!r}: expected {self.expected}")
        return value

    def counterexamples(self) -> list[Any]:
        """Values this rule refuses (tests feed them to every option that declares it)."""
        return ["text", None]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Integer(Rule):
    """An int (not a bool, not a float) with ``minimum`` ≤ value (≤ ``maximum``), odd if ``odd``."""

    minimum: Optional[int] = None
    maximum: Optional[int] = None
    odd: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        kind = "an odd integer" if self.odd else "an integer"
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} in {self.minimum}..{self.maximum}"
        return f"{kind} ≥ {self.minimum}" if self.minimum is not None else kind

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)
                and (not self.odd or value % 2 == 1))

    def counterexamples(self) -> list[Any]:
        low = 0 if self.minimum is None else self.minimum
        examples = [low + 0.5, True, *super().counterexamples()]
        if self.minimum is not None:
            examples.append(self.minimum - 1)
        if self.maximum is not None:
            examples.append(self.maximum + 1)
        if self.odd:
            examples.append(low + 1 if low % 2 else low)
        return examples


@dataclass(frozen=True)
class Number(Rule):
    """A finite int or float (not a bool) above ``minimum`` (or at it, if ``closed_min``), below
    ``maximum`` (or at it, if ``closed_max``)."""

    minimum: Optional[float] = None
    maximum: Optional[float] = None
    closed_min: bool = True
    closed_max: bool = True

    @property
    def expected(self) -> str:  # type: ignore[override]
        low = None if self.minimum is None else ("[" if self.closed_min else "(") + f"{self.minimum:g}"
        high = None if self.maximum is None else f"{self.maximum:g}" + ("]" if self.closed_max else ")")
        if low and high:
            return f"a number in {low}, {high}"
        if low:
            return f"a number {'≥' if self.closed_min else '>'} {self.minimum:g}"
        if high:
            return f"a number {'≤' if self.closed_max else '<'} {self.maximum:g}"
        return "a finite number"

    def accepts(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        above = self.minimum is None or (value >= self.minimum if self.closed_min else value > self.minimum)
        below = self.maximum is None or (value <= self.maximum if self.closed_max else value < self.maximum)
        return above and below

    def counterexamples(self) -> list[Any]:
        examples = [math.inf, math.nan, True, *super().counterexamples()]
        if self.minimum is not None:
            examples.append(self.minimum if not self.closed_min else self.minimum - 1e-3)
        if self.maximum is not None:
            examples.append(self.maximum if not self.closed_max else self.maximum + 1e-3)
        return examples


@dataclass(frozen=True)
class Choice(Rule):
    """One of ``values``."""

    values: tuple[Any, ...]

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(str(v) for v in self.values)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, type(self.values[0])) and not isinstance(value, bool) and value in self.values

    def counterexamples(self) -> list[Any]:
        return ["no-such-choice", 3, None]


@dataclass(frozen=True)
class Flag(Rule):
    """``True`` or ``False``."""

    expected = "true or false"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def counterexamples(self) -> list[Any]:
        return ["yes", 1, None]


@dataclass(frozen=True)
class Predicate(Rule):
    """A rule given by a test and its words (for what the kinds above cannot say)."""

    expected: str  # type: ignore[misc]
    test: Callable[[Any], bool]
    bad_values: tuple[Any, ...] = (None,)

    def accepts(self, value: Any) -> bool:
        return self.test(value)

    def counterexamples(self) -> list[Any]:
        return list(self.bad_values)

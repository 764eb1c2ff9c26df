"""What every command shares: one-line usage errors and argument types."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Optional

from ..utils.constraints import Integer, Rule


def checked(kind: type, rule: Optional[Rule]) -> Callable[[str], Any]:
    """An argparse type: the text as ``kind``, then checked against ``rule`` (errors name the value
    and what was expected; argparse adds the flag)."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule.expected if rule else 'a ' + kind.__name__}, got {text!r}") from None
        if rule is not None and not rule.accepts(value):
            raise argparse.ArgumentTypeError(f"expected {rule.expected}, got {text!r}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


positive_int = checked(int, Integer(minimum=1))
non_negative_int = checked(int, Integer(minimum=0))


class Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the input (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

"""``option()``: a dataclass field that also describes its command-line flag (help written once)."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Optional


def option(default: Any = None, help: str = "", group: str = "", *, factory: Any = None, flag: Optional[str] = None, compare: bool = True,
           positive: bool = False, choices: Optional[tuple] = None, metavar: Optional[str] = None, kind: Optional[str] = None) -> Any:
    """A config field with what its command-line flag needs; ``attnzoo.cli.options`` generates the
    ``train`` and ``compare`` flags from these. ``compare=False``: the field is set per run or per
    variant, not shared by a comparison. ``kind``: ``"options"`` (repeatable KEY=VALUE) or ``"stages"``."""
    metadata = {"help": help, "group": group, "flag": flag, "compare": compare, "positive": positive, "choices": choices,
                "metavar": metavar, "kind": kind}
    return field(default_factory=factory, metadata=metadata) if factory else field(default=default, metadata=metadata)

"""``option()``: a dataclass field that also describes its command-line flag (help written once)."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Optional

from .constraints import Rule


def option(default: Any = None, help: str = "", group: str = "", *, factory: Any = None, flag: Optional[str] = None, compare: bool = True,
           rule: Optional[Rule] = None, choices: Optional[tuple] = None, metavar: Optional[str] = None, kind: Optional[str] = None,
           execution_only: bool = False) -> Any:
    """A config field with what its command-line flag needs; ``attnzoo.cli.options`` generates the
    ``train`` and ``compare`` flags from these. ``compare=False``: the field is set per run or per
    variant, not shared by a comparison. ``execution_only``: how a run executes, not what it computes
    (``--resume`` and a re-run of ``compare`` accept another value). ``rule``: what a value must be (checked on the command line
    and by ``TrainConfig.validate``; ``None`` passes where it is the default). ``kind``: ``"options"``
    (repeatable KEY=VALUE) or ``"stages"``."""
    metadata = {"help": help, "group": group, "flag": flag, "compare": compare, "rule": rule, "choices": choices,
                "metavar": metavar, "kind": kind,
                "execution_only": execution_only}
    return field(default_factory=factory, metadata=metadata) if factory else field(default=default, metadata=metadata)

"""Options written once: ``option()``, a dataclass field that also describes its command-line flag,
and the parsing and checking of ``KEY=VALUE`` options (``--attn-opt``, variant labels)."""

from __future__ import annotations

import inspect
import json
from dataclasses import field
from typing import Any, Mapping, Optional

from torch import nn

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


def parse_value(text: str) -> Any:
    """An option value from text: JSON where it parses (``8``, ``true``, ``[1, 2]``), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: list[str], where: str) -> dict[str, Any]:
    """``["reduction=8", "variant=official"]`` -> ``{"reduction": 8, "variant": "official"}``."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{where}: expected KEY=VALUE, got {pair!r}")
        options[key.strip()] = parse_value(value.strip())
    return options


def check_options(cls_or_fn: Any, options: Mapping[str, Any], what: str, skip: tuple[str, ...] = ()) -> None:
    """Refuse options that ``cls_or_fn`` does not take (naming the valid ones) and values whose
    type cannot be what the parameter's default is (``reduction="abc"``, ``zero_init_residual="maybe"``).

    ``skip`` lists parameters set by the caller, not the user (e.g. ``channels``). A model factory
    that passes ``**kwargs`` on is checked against the class its return annotation names.
    """
    target = cls_or_fn.__init__ if inspect.isclass(cls_or_fn) else cls_or_fn
    params = dict(inspect.signature(target).parameters)
    if not inspect.isclass(cls_or_fn) and any(p.kind is p.VAR_KEYWORD for p in params.values()):
        returned = inspect.signature(cls_or_fn, eval_str=True).return_annotation
        if inspect.isclass(returned) and issubclass(returned, nn.Module):
            params = {**dict(inspect.signature(returned.__init__).parameters), **params}
    valid = [n for n, p in params.items() if n not in ("self", *skip) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"{what}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; valid options: {', '.join(valid) or 'none'}")
    for key, value in options.items():
        default = params[key].default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        expected = bool if isinstance(default, bool) else (int, float) if isinstance(default, (int, float)) else type(default)
        if isinstance(value, bool) and expected == (int, float):
            expected_ok = False
        else:
            expected_ok = isinstance(value, expected) or (isinstance(default, str) and isinstance(value, str))
        if not expected_ok and not isinstance(default, (tuple, list)):
            kind = "true or false" if expected is bool else "a number" if expected == (int, float) else type(default).__name__
            raise ValueError(f"{what}: option {key}={value!r} must be {kind} (default {default!r})")

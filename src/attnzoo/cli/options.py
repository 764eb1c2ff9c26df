"""The training flags, generated from :class:`~attnzoo.train.TrainConfig`'s fields: each field's
help, group, default and type are written once, in ``train/config.py``."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Sequence

from ..utils.options import parse_options
from .common import checked


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _help(f: dataclasses.Field, default: Any) -> str:
    text = f.metadata["help"]
    # (`is`/isinstance, not `in (None, False, True)`: 0, 0.0, 1 and 1.0 compare equal to False/True)
    shown = default is not None and not isinstance(default, (bool, dict)) and "default" not in text
    return f"{text} (default {default})" if shown else text


def add_train_arguments(p: argparse.ArgumentParser, for_compare: bool = False) -> None:
    """One flag per TrainConfig field, in the fields' groups; ``for_compare`` leaves out the fields
    a comparison sets per run or per variant."""
    from ..train import TrainConfig

    defaults = TrainConfig()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for part, f in TrainConfig.fields():
        meta, hint = f.metadata, typing.get_type_hints(type(getattr(defaults, part)))[f.name]
        if for_compare and not meta["compare"]:
            continue
        g = groups.setdefault(meta["group"], p.add_argument_group(meta["group"]))
        default = getattr(getattr(defaults, part), f.name)
        if meta["kind"] == "options":
            g.add_argument(_flag(f), dest=f.name, action="append", metavar="KEY=VALUE", help=meta["help"])
        elif meta["kind"] == "stages":
            g.add_argument(_flag(f), dest=f.name, type=int, nargs="+", help=meta["help"])
        elif hint is bool:
            g.add_argument(_flag(f), dest=f.name, action="store_false" if default else "store_true", help=meta["help"])
        else:
            kind = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Union else hint
            g.add_argument(_flag(f), dest=f.name, default=default, type=checked(kind, meta["rule"]),
                           choices=meta["choices"], metavar=meta["metavar"], help=_help(f, default))


def config_from_args(args: argparse.Namespace, explicit_only: bool = False):
    """The TrainConfig the flags describe; with ``explicit_only``, a dict of just the fields whose
    flags were given on the command line (for --resume, which keeps the rest of the run's config)."""
    from ..train import TrainConfig

    values = vars(args)
    if explicit_only:
        values = {k: v for k, v in values.items() if k in args.explicit}
    fields = {}
    for _, f in TrainConfig.fields():
        if f.name not in values:
            continue
        value = values[f.name]
        fields[f.name] = parse_options(value or [], _flag(f)) if f.metadata["kind"] == "options" else value
    if explicit_only:
        return fields
    cfg = TrainConfig.from_dict(fields)
    cfg.spec().validate()  # unknown modules and options: a one-line error before any work
    return cfg


def explicit_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the flags given in ``argv`` (not those left at their defaults)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[argv[0]] if argv and argv[0] in sub.choices else None
    if command is None:
        return set()
    given = set()
    for action in command._actions:
        if any(arg == opt or arg.startswith(opt + "=") for arg in argv[1:] for opt in action.option_strings):
            given.add(action.dest)
    return given

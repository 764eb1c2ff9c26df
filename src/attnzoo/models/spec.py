"""``ModelSpec``: one value that says which model to build — backbone, attention, fusion, conv
replacement and their options — used by the command line, ``compare`` variants, checkpoints
and reports alike.

A spec has a canonical text form, its :attr:`~ModelSpec.label`::

    plain                      the backbone alone
    se                         attention in every block
    self_attn@3                attention in stage 3 only
    cbam:variant=paper         with options (KEY=VALUE, comma-separated, values as JSON or text)
    cbam@34:kernel_size=3+aff  attention and fusion together, joined with '+'

:func:`parse_variant` reads that form back, so ``parse_variant(spec.label) == spec``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Optional

from torch import nn

from ..layers.constraints import check_module_options
from ..layers.registry import get_attn_class, get_conv_class, get_fusion_class, list_attn, list_conv, list_fusion
from ..utils.options import check_options, option, parse_options
from .registry import create_model, get_model_factory

# The registry each part of a spec draws from, in the order a label lists them.
_PARTS = ("attn", "fusion", "conv")
# Constructor parameters a spec sets itself: never user model options.
_SET_BY_SPEC = ("block", "layers", "num_classes", "attn", "fusion", "attn_options", "fusion_options", "attn_stages",
                "fusion_stages", "conv", "conv_options")
_CLASS_OF = {"attn": get_attn_class, "fusion": get_fusion_class, "conv": get_conv_class}


def construct(cls_or_fn: Any, what: str, *args: Any, **options: Any) -> nn.Module:
    """Build a module, turning a wrongly typed option (``reduction="abc"``) into a ValueError
    that names the module and its options instead of a TypeError from deep inside."""
    try:
        return cls_or_fn(*args, **options)
    except TypeError as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise ValueError(f"{what}: cannot build with options ({shown}): {e}") from None


@dataclass
class ModelSpec:
    """Which model to build: a registered backbone plus attention, fusion and conv replacement.

    ``build(num_classes)`` makes it; ``label`` is its canonical text (see the module docstring).
    """

    # Each field also describes its command-line flag (attnzoo.cli.options); compare=False: set per variant.
    model: str = option("cifar_resnet8", "model name; see `attnzoo list`", "model")
    attn: Optional[str] = option(None, "attention module in every block", "model", compare=False)
    attn_options: dict[str, Any] = option(help="attention option, repeatable (e.g. reduction=8)", group="model", factory=dict,
                                          flag="--attn-opt", compare=False, kind="options")
    attn_stages: Optional[tuple[int, ...]] = option(None, "stages (1-based) that get attention (default all)", "model", compare=False, kind="stages")
    fusion: Optional[str] = option(None, "fusion module replacing each residual addition", "model", compare=False)
    fusion_options: dict[str, Any] = option(help="fusion option, repeatable (e.g. scale=2)", group="model", factory=dict,
                                            flag="--fusion-opt", compare=False, kind="options")
    fusion_stages: Optional[tuple[int, ...]] = option(None, "stages (1-based) that get fusion (default all)", "model", compare=False, kind="stages")
    conv: Optional[str] = option(None, "3×3-conv replacement in the bottlenecks: sk, splat, lambda (every stage), bottleneck, halo (last stage)",
                                 "model", compare=False)
    conv_options: dict[str, Any] = option(help="conv replacement option, repeatable (e.g. radix=4)", group="model", factory=dict,
                                          flag="--conv-opt", compare=False, kind="options")
    model_options: dict[str, Any] = option(help="model option, repeatable (e.g. zero_init_residual=true)", group="model", factory=dict,
                                           flag="--model-opt", kind="options")

    def __post_init__(self) -> None:
        # Stages arrive as lists from JSON; keep one form so equal specs compare equal.
        for name in ("attn_stages", "fusion_stages"):
            stages = getattr(self, name)
            if stages is not None:
                setattr(self, name, tuple(sorted(set(int(s) for s in stages))))

    def validate(self) -> "ModelSpec":
        """Check names, option keys and option values before anything is built or trained; returns self."""
        factory = get_model_factory(self.model)
        for part in _PARTS:
            name, options = getattr(self, part), getattr(self, f"{part}_options")
            if name is None:
                if options:
                    raise ValueError(f"{part} options {options} given without --{part}")
                continue
            check_options(_CLASS_OF[part](name), options, f"{part} {name!r}", skip=("channels",))
            check_module_options(_CLASS_OF[part](name), options)
        check_options(factory, self.model_options, f"model {self.model!r}", skip=_SET_BY_SPEC)
        return self

    def build(self, num_classes: int = 1000) -> nn.Module:
        self.validate()
        kwargs: dict[str, Any] = dict(self.model_options)
        for part in _PARTS:
            if getattr(self, part) is not None:
                kwargs[part] = getattr(self, part)
                if getattr(self, f"{part}_options"):
                    kwargs[f"{part}_options"] = dict(getattr(self, f"{part}_options"))
        for name in ("attn_stages", "fusion_stages"):
            if getattr(self, name) is not None:
                kwargs[name] = list(getattr(self, name))
        attn, fusion = kwargs.pop("attn", None), kwargs.pop("fusion", None)
        return construct(create_model, f"model {self.label!r}", self.model, attn=attn, fusion=fusion, num_classes=num_classes, **kwargs)

    @property
    def label(self) -> str:
        """Canonical text of the attention/fusion/conv choice (not the backbone): ``plain``,
        ``se``, ``self_attn@3``, ``cbam:kernel_size=3,variant=paper``, ``cbam+iaff``..."""
        parts = []
        for part in _PARTS:
            name = getattr(self, part)
            if name is None:
                continue
            stages = getattr(self, f"{part}_stages", None)
            text = name + (f"@{''.join(map(str, stages))}" if stages else "")
            options = getattr(self, f"{part}_options")
            if options:
                text += ":" + ",".join(f"{k}={_option_text(v)}" for k, v in sorted(options.items()))
            parts.append(text)
        return "+".join(parts) or "plain"


def _option_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_variant(text: str, model: str = "cifar_resnet8", model_options: Optional[dict[str, Any]] = None) -> ModelSpec:
    """A :class:`ModelSpec` on ``model`` from its label: ``plain``, ``se``, ``self_attn@3``,
    ``cbam:variant=paper``, ``cbam@34:kernel_size=3,reduction=8+aff``."""
    spec = ModelSpec(model=model, model_options=dict(model_options or {}))
    if text.strip() == "plain":
        return spec
    kinds = {"attn": list_attn(), "fusion": list_fusion(), "conv": list_conv()}
    fields: dict[str, Any] = {}
    for part in text.split("+"):
        head, _, option_text = part.partition(":")
        name, at, stages = head.strip().partition("@")
        kind = next((k for k, names in kinds.items() if name in names), None)
        if kind is None:
            raise ValueError(
                f"variant {text!r}: unknown module {name!r}; use 'plain', an attention module ({', '.join(list_attn())}), "
                f"a fusion module ({', '.join(list_fusion())}) or a conv replacement ({', '.join(list_conv())}), "
                f"as NAME[@STAGES][:KEY=VALUE,...] joined with '+' (e.g. self_attn@3, cbam:variant=paper)"
            )
        if kind in fields:
            raise ValueError(f"variant {text!r} names two {kind} modules ({fields[kind]} and {name})")
        fields[kind] = name
        if at:
            if kind == "conv":
                raise ValueError(f"variant {text!r}: {name} replaces the 3×3 conv of every bottleneck; it takes no @stages")
            if not stages.isdigit():
                raise ValueError(f"variant {text!r}: stages after '@' must be digits, e.g. {name}@34")
            fields[f"{kind}_stages"] = tuple(int(s) for s in stages)
        if option_text:
            fields[f"{kind}_options"] = parse_options(option_text.split(","), f"variant {text!r}")
    return dataclasses.replace(spec, **fields).validate()

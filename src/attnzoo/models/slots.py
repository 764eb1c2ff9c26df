"""Where attention goes in a backbone: the placement rule every model family shares.

A module class says where its paper puts it (``placement``: ``"block"``, ``"stage"``, ``"head"``; a
conv replacement's ``default_stages``); a backbone says which stages it has; ``attn_stages`` /
``fusion_stages`` / ``conv_stages`` choose others. :func:`attention_modules` finds every attention,
fusion and conv-replacement module of a model by type, whatever the backbone calls it; a backbone's
:class:`Layout` names its stem, stages and feature layer and gives its input size, so freezing,
Grad-CAM and localisation ask the model instead of guessing by its names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Union

from torch import nn

from ..layers._base import AttentionModule
from ..layers.registry import get_attn_class, get_fusion_class

@dataclass(frozen=True)
class Layout:
    """What a backbone's parts are called (as timm's ``default_cfg`` / ``feature_info`` say for its
    models): ``stem`` (module names before the first stage), ``stages`` (each stage's module names,
    in order), ``feature_layer`` (the last feature map: Grad-CAM's default), ``head`` (the layers
    whose size is the number of classes: re-initialised for another) and ``input_size`` (H, W)."""

    stem: tuple[str, ...]
    stages: tuple[tuple[str, ...], ...]
    feature_layer: str
    head: tuple[str, ...]
    input_size: tuple[int, int] = (224, 224)

    def frozen_prefixes(self, stages: int) -> tuple[str, ...]:
        """The module names that freezing the stem and the first ``stages`` stages covers."""
        if not 0 <= stages <= len(self.stages):
            raise ValueError(f"freeze_stages must be in 0..{len(self.stages)} for this backbone ({len(self.stages)} stages), got {stages}")
        return (*self.stem, *(name for stage in self.stages[:stages] for name in stage)) if stages else ()


def layout_of(model: nn.Module) -> Layout:
    """``model.layout``; a ValueError naming the class for a model that declares none."""
    layout = getattr(model, "layout", None)
    if not isinstance(layout, Layout):
        raise ValueError(f"{type(model).__name__} declares no layout (attnzoo.models.slots.Layout: stem, stages, feature layer, input size)")
    return layout


def grouped_by_stride(first: int, strides: Iterable[int], prefix: str = "features") -> tuple[tuple[str, ...], ...]:
    """Stages of a flat ``features`` sequence whose blocks start at index ``first``: a new stage at
    every block of stride > 1 (where the map's resolution changes, as timm's ``feature_info`` cuts)."""
    stages: list[list[str]] = []
    for i, stride in enumerate(strides, start=first):
        if stride > 1 or not stages:
            stages.append([])
        stages[-1].append(f"{prefix}.{i}")
    return tuple(tuple(s) for s in stages)


LayerSpec = Union[str, Callable[[int], nn.Module], None]
LayerFactory = Optional[Callable[[int], nn.Module]]


def layer_factory(spec: LayerSpec, options: Optional[dict], kind: str) -> LayerFactory:
    """``channels -> module`` for a registered name (attention or fusion, by ``kind``) or a callable,
    with ``options`` bound; None for None. ``factory.placement`` says where its paper puts it:
    ``"block"`` (every block), ``"stage"`` (between stages: BAM) or ``"head"`` (once, after the last
    stage: DANet, CCNet)."""
    if spec is None:
        if options:
            raise ValueError(f"{kind}_options given without {kind}")
        return None
    if isinstance(spec, str):
        cls = get_attn_class(spec) if kind == "attn" else get_fusion_class(spec)
    elif callable(spec):
        cls = spec
    else:
        raise ValueError(f"{kind} must be a registered name, a callable or None, got {spec!r}")
    factory = functools.partial(cls, **dict(options or {}))
    # "block": in every block; "stage": between stages (BAM); "head": after the last stage (DANet, CCNet).
    factory.placement = getattr(cls, "placement", "block")
    return factory


def check_stages(stages: Optional[Iterable[int]], num_stages: int, kind: str) -> set[int]:
    """The 1-based stages in ``stages`` (all of them for None), each checked to be in 1..num_stages."""
    if stages is None:
        return set(range(1, num_stages + 1))
    chosen = set(stages)
    bad = sorted(s for s in chosen if not (isinstance(s, int) and 1 <= s <= num_stages))
    if bad:
        raise ValueError(f"{kind}_stages must be stage numbers in 1..{num_stages}, got {bad}")
    return chosen


def stages_for(factory: Any, stages: Optional[Iterable[int]], num_stages: int, kind: str) -> set[int]:
    """The 1-based stages that get ``factory``: ``stages`` if given, else where its paper puts it —
    every stage, after every stage but the last (BAM, ``placement="stage"``), or the last stage only
    (heads such as DANet, ``placement="head"``; BoTNet / HaloNet convs, ``default_stages="last"``)."""
    if stages is None and factory is not None:
        where = getattr(factory, "placement", None) or getattr(factory, "default_stages", None)
        if where == "stage":
            return set(range(1, num_stages))
        if where in ("head", "last"):
            return {num_stages}
    return check_stages(stages, num_stages, kind)


def block_factory(spec: LayerSpec, options: Optional[dict], model: str) -> LayerFactory:
    """A factory for modules placed inside blocks, for backbones that have no stage or head slot
    (MobileNetV3, EfficientNet, ConvNeXt): a stage or head module is an error naming where it goes."""
    factory = layer_factory(spec, options, "attn")
    if factory is not None and factory.placement != "block":
        raise ValueError(f"{model}: attention {spec!r} is placed per {factory.placement}, not in blocks; {model} takes block "
                         "modules (se, cbam, eca, coord, ...)")
    return factory


def refuse_retrofit(model: str, retrofit: bool) -> None:
    """Backbones whose attention slots hold a native module (MobileNetV3's, EfficientNet's SE) or
    none (ConvNeXt) swap attention in; retrofitting it behind residual mixes is for the ResNets."""
    if retrofit:
        raise ValueError(f"{model}: retrofitting attention into a pretrained checkpoint is for ResNets; load {model}'s weights "
                         "with attn=None (the published network)")


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every attnzoo attention, fusion or conv-replacement module in ``model``,
    outermost only (CBAM, not also its halves), found by type."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if isinstance(module, AttentionModule) and not any(name.startswith(outer + ".") for outer, _ in found):
            found.append((name, module))
    return found


def freeze_stages(model: nn.Module, stages: int) -> list[str]:
    """Freeze the stem and the first ``stages`` stages of ``model`` (by its :class:`Layout`), except
    the attention and fusion modules in them and their residual mixes (conv replacements are the
    backbone's own convolutions and freeze with it); returns the names of the frozen parameters."""
    from ..layers._base import ConvReplacement
    from ..layers.residual_mix import ResidualMix

    frozen = tuple(f"{prefix}." for prefix in layout_of(model).frozen_prefixes(stages))
    new = tuple(f"{name}." for name, m in model.named_modules()
                if isinstance(m, ResidualMix) or (isinstance(m, AttentionModule) and not isinstance(m, ConvReplacement)))
    names = []
    for name, p in model.named_parameters():
        if name.startswith(frozen) and not name.startswith(new):
            p.requires_grad_(False)
            names.append(name)
    return names

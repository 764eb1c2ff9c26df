"""Attention added to a pretrained network without changing a single prediction.

A sigmoid gate cannot be exactly 1, and a fresh module is not the identity, so every inserted
module ``m`` is wrapped in a learnable residual mix that starts at zero:

    attention:  y = x + γ · (m(x) − x)                 γ = 0: y = x exactly
    fusion:     z = (x + r) + γ · (f(x, r) − (x + r))  γ = 0: the plain residual sum

Exact in floating point (``x + 0 · d == x`` for finite ``d``), and it trains: ``∂L/∂γ =
⟨∂L/∂y, m(x) − x⟩`` is non-zero from the first step, and once γ moves the module's own parameters
receive gradients scaled by γ.

Modules that are already the identity at initialisation (``identity_at_init``: SAGAN
self-attention with γ = 0, the non-local block with its output BN at 0, global context with its
last layer at 0) are inserted as they are: behind a mix at 0 their own zero would never receive a
gradient (``m(x) − x = 0``), and neither would γ.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Optional

from torch import nn

from ..layers.residual_mix import ResidualMix, wrap
from .resnet import ResNet
from .slots import layer_factory, stages_for

__all__ = ["ResidualMix", "retrofit", "wrap"]


def retrofit(model: nn.Module, attn: Any = None, attn_options: Optional[dict] = None, attn_stages: Optional[Iterable[int]] = None,
             fusion: Any = None, fusion_options: Optional[dict] = None, fusion_stages: Optional[Iterable[int]] = None,
             inplace: bool = False) -> nn.Module:
    """A copy of a (pretrained, plain) attnzoo ResNet with attention and/or fusion inserted where
    ``create_model`` puts them (the placement rule of :mod:`.slots`: in blocks, between stages, or
    once after the last stage), each wrapped in a :class:`ResidualMix` at γ = 0: the outputs do not
    change. ``inplace=True`` edits and returns ``model`` itself.

    The layout is what ``create_model(..., retrofit=True)`` builds (the same state-dict keys), so a
    fine-tuned model's checkpoint rebuilds from its config.
    """
    if not isinstance(model, ResNet):
        raise ValueError(f"retrofit works on attnzoo ResNets, got {type(model).__name__}")
    model = model if inplace else copy.deepcopy(model)
    for kind, spec, options, stages in (("attn", attn, attn_options, attn_stages), ("fusion", fusion, fusion_options, fusion_stages)):
        factory = wrap(layer_factory(spec, options, kind))
        if factory is None:
            continue
        chosen = stages_for(factory, stages, model.num_stages, kind)
        if kind == "attn" and factory.placement in ("stage", "head"):  # once per chosen stage, on its output
            for i in sorted(chosen):
                model.stage_attn[f"layer{i}"] = factory(model.stages()[i - 1][-1].bn_out_channels)
            continue
        for i, stage in enumerate(model.stages(), start=1):
            if i not in chosen:
                continue
            for block in stage:
                if getattr(block, kind) is not None:
                    raise ValueError(f"layer{i} already has {kind} ({type(getattr(block, kind)).__name__}); retrofit adds to plain blocks")
                setattr(block, kind, factory(block.bn_out_channels))
    device = next(model.parameters()).device
    return model.to(device)

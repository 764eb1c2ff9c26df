"""timm's key layouts of MobileNetV3, EfficientNet and ConvNeXt, renamed to attnzoo's (torchvision's).

The three families hold the same tensors in both libraries (torchvision's and timm's parameter
counts agree: 5,483,032 / 2,542,856 / 5,288,548 / 28,589,128), under other names and a different
nesting: timm's ``blocks.i.j`` (stage i, block j) of named layers (``conv_pw``, ``bn1``, ``conv_dw``,
``se.conv_reduce``...) against torchvision's numbered ``features.k.block.n``. Which number a layer
gets depends on the block's kind (depthwise-separable or inverted residual) and on whether it has
an SE, which the checkpoint's own keys say. Shapes that differ only in a unit dimension (timm's
``conv_head`` 1×1 conv against MobileNetV3's first Linear, ConvNeXt's ``gamma`` (C,) against
``layer_scale`` (C, 1, 1)) are reshaped by :func:`attnzoo.models.weights.to_attnzoo`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

State = dict[str, torch.Tensor]
_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")
_SE = {"conv_reduce": "fc1", "conv_expand": "fc2"}  # timm's SqueezeExcite -> attnzoo's


def _block_layers(names: set[str]) -> dict[str, int]:
    """Torchvision's index of each named layer of one timm block (whose parameter names, less the
    block prefix, are ``names``): expand, depthwise, SE, project, in that order, where present."""
    has = {layer for layer in ("conv_pw", "conv_dw", "se", "conv_pwl", "conv") if any(n.startswith(layer + ".") for n in names)}
    if "conv" in has:  # ConvBnAct (MobileNetV3's last 1×1 conv): conv, bn1
        return {"conv": 0, "bn1": 1}
    if "conv_pwl" in has:  # inverted residual: conv_pw/bn1, conv_dw/bn2, se, conv_pwl/bn3
        order = ["pw", "dw", "se", "pwl"] if "se" in has else ["pw", "dw", "pwl"]
        layers = {"conv_pw": "pw", "bn1": "pw", "conv_dw": "dw", "bn2": "dw", "se": "se", "conv_pwl": "pwl", "bn3": "pwl"}
    else:  # depthwise-separable: conv_dw/bn1, se, conv_pw/bn2
        order = ["dw", "se", "pw"] if "se" in has else ["dw", "pw"]
        layers = {"conv_dw": "dw", "bn1": "dw", "se": "se", "conv_pw": "pw", "bn2": "pw"}
    return {name: order.index(part) for name, part in layers.items() if part in order}


def _rename_block_layer(rest: str, index: dict[str, int]) -> str:
    """``conv_dw.weight`` -> ``block.0.0.weight``; ``bn1.bias`` -> ``block.0.1.bias``; SE's
    ``se.conv_reduce.weight`` -> ``block.2.fc1.weight``; a ConvBnAct's ``conv.weight`` -> ``0.weight``."""
    layer, _, tail = rest.partition(".")
    if layer == "se":
        part, _, tail = tail.partition(".")
        return f"block.{index['se']}.{_SE[part]}.{tail}"
    if "conv" in index:
        return f"{index[layer]}.{tail}"
    return f"block.{index[layer]}.{0 if layer.startswith('conv') else 1}.{tail}"


def _blocks(state: State, features: Callable[[int, int, list[tuple[int, int]]], str]) -> State:
    """Every ``blocks.i.j.*`` key renamed to ``features(i, j, all_blocks).<torchvision layer>``."""
    groups: dict[tuple[int, int], set[str]] = {}
    for key in state:
        m = _BLOCK.match(key)
        if m:
            groups.setdefault((int(m[1]), int(m[2])), set()).add(m[3])
    order = sorted(groups)
    renamed = {}
    for key, value in state.items():
        m = _BLOCK.match(key)
        if m:
            i, j = int(m[1]), int(m[2])
            key = f"{features(i, j, order)}.{_rename_block_layer(m[3], _block_layers(groups[(i, j)]))}"
        renamed[key] = value
    return renamed


def _top(state: State, renames: dict[str, str]) -> State:
    out = {}
    for key, value in state.items():
        head, _, tail = key.partition(".")
        out[f"{renames[head]}.{tail}" if head in renames else key] = value
    return out


def mobilenetv3(state: State) -> State:
    """timm ``mobilenetv3_large_100`` / ``mobilenetv3_small_100`` keys -> attnzoo's ``MobileNetV3``."""
    # Blocks are numbered flat after the stem (features.0): timm's (stage, block) pairs in order.
    state = _blocks(state, lambda i, j, order: f"features.{1 + order.index((i, j))}")
    return _top(state, {"conv_stem": "features.0.0", "bn1": "features.0.1", "conv_head": "classifier.0", "classifier": "classifier.3"})


def efficientnet(state: State) -> State:
    """timm ``efficientnet_b0`` keys -> attnzoo's ``EfficientNet`` (torchvision's stage nesting)."""
    last = 1 + max(int(_BLOCK.match(k)[1]) for k in state if _BLOCK.match(k))
    state = _blocks(state, lambda i, j, order: f"features.{i + 1}.{j}")
    return _top(state, {"conv_stem": "features.0.0", "bn1": "features.0.1", "conv_head": f"features.{last + 1}.0",
                        "bn2": f"features.{last + 1}.1", "classifier": "classifier.1"})


_CONVNEXT = [
    (r"^head\.norm\.", "classifier.0."), (r"^head\.fc\.", "classifier.2."),
    (r"^stem\.", "features.0."),
    (r"^stages\.(\d+)\.downsample\.", lambda m: f"features.{2 * int(m[1])}."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}."),
    (r"\.gamma$", ".layer_scale"), (r"\.conv_dw\.", ".block.0."), (r"\.norm\.", ".block.2."),
    (r"\.mlp\.fc1\.", ".block.3."), (r"\.mlp\.fc2\.", ".block.5."),
]


def convnext(state: State) -> State:
    """timm ``convnext_tiny`` keys -> attnzoo's ``ConvNeXt`` (features: stem, stage, downsample, stage...)."""
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _CONVNEXT:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


@dataclass(frozen=True)
class ModelKeys:
    """A model family's own key conversion, and the model options under which attnzoo's model
    computes what the source's does."""

    convert: Callable[[State], State]
    model_options: dict[str, Any] = field(default_factory=dict)


# The model classes whose timm layout is not the ResNets' (timm's ResNet keys are attnzoo's).
# timm's MobileNetV3 normalises with BatchNorm's default ε = 1e-5, torchvision's with 1e-3.
BY_MODEL: dict[str, ModelKeys] = {"MobileNetV3": ModelKeys(mobilenetv3, {"norm_eps": 1e-5}), "EfficientNet": ModelKeys(efficientnet),
                                  "ConvNeXt": ModelKeys(convnext)}

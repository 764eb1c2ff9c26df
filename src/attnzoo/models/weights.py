"""Published weights into attnzoo models: the key layouts of torchvision, timm and the CBAM
authors' code, mapped onto attnzoo's, strictly.

Where a source computes its modules differently from attnzoo's defaults, :data:`SOURCES` names
the module options that make attnzoo compute what the source computes (timm's CBAM: bias-free MLP,
spatial maps ordered [mean; max], conv + BN; the authors' CBAM: no lower bound on the hidden
width), and :func:`attnzoo.create_model` applies them when it is given ``weights=`` and ``source=``.

Nothing is downloaded: pass the file you have. ``.safetensors`` files are read without executing
anything; ``.pth``/``.pt``/``.bin`` files with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..utils.io import first_line
from . import timm_keys


@dataclass(frozen=True)
class Source:
    """A checkpoint layout: how its keys become attnzoo's, and the module options that match it."""

    name: str
    description: str
    renames: tuple[tuple[str, str], ...] = ()  # (regex, replacement) applied to every key in order
    module_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # attention name -> options
    marker: Optional[str] = None  # a regex some key of this layout matches (for source="auto")
    model_options: dict[str, Any] = field(default_factory=dict)  # model options that match the source's computation
    by_model: dict[str, timm_keys.ModelKeys] = field(default_factory=dict)  # model class -> its own key conversion and options


SOURCES: dict[str, Source] = {
    "attnzoo": Source("attnzoo", "attnzoo's own layout (a state dict of an attnzoo model)"),
    "torchvision": Source(
        "torchvision", "torchvision.models ResNet-18/34/50/101/152, ResNeXt-50 (same keys as attnzoo's plain ResNets)"),
    "timm": Source(
        "timm",
        "timm resnet*, seresnet*, ecaresnet*, skresnext50_32x4d, resnest50d (same keys as attnzoo's), ResNets with "
        "timm's CBAM (attention under `.se.`), mobilenetv3_large_100/small_100, efficientnet_b0, convnext_tiny",
        renames=(
            (r"\.se\.channel\.fc1\.", ".attn.channel.mlp.0."),
            (r"\.se\.channel\.fc2\.", ".attn.channel.mlp.2."),
            (r"\.se\.spatial\.conv\.conv\.", ".attn.spatial.conv."),
            (r"\.se\.spatial\.conv\.bn\.", ".attn.spatial.norm."),
            # global context (attn_layer="gc"): its attention logits and its scale MLP
            (r"\.se\.conv_attn\.", ".attn.attn_logits."),
            (r"\.se\.mlp_scale\.(fc1|norm|fc2)\.", r".attn.\1."),
            # non-local (attn_layer="nl"): theta, phi, g, the output conv and its BN
            (r"\.se\.t\.", ".attn.theta."), (r"\.se\.p\.", ".attn.phi."),
            (r"\.se\.z\.", ".attn.out_conv."), (r"\.se\.norm\.", ".attn.out_norm."),
            (r"\.se\.", ".attn."),  # SE (fc1, fc2), ECA (conv) and non-local's g keep their names
            # skresnext50_32x4d: SelectiveKernelBottleneck's ConvNormAct convs and SelectiveKernel
            (r"\.conv1\.conv\.", ".conv1."), (r"\.conv1\.bn\.", ".bn1."),
            (r"\.conv3\.conv\.", ".conv3."), (r"\.conv3\.bn\.", ".bn3."),
            (r"\.conv2\.paths\.(\d+)\.conv\.", r".conv2.paths.\1.0."), (r"\.conv2\.paths\.(\d+)\.bn\.", r".conv2.paths.\1.1."),
            (r"\.conv2\.attn\.fc_reduce\.", ".conv2.fc.0."), (r"\.conv2\.attn\.bn\.", ".conv2.fc.1."),
            (r"\.conv2\.attn\.fc_select\.", ".conv2.fc_select."),
        ),
        module_options={"se": {"round_to": 8}, "eca": {"min_kernel_size": 3},
                        "cbam": {"bias": False, "min_hidden": 1, "variant": "timm"},
                        "gc": {"fuse": "scale", "reduction": 8, "min_hidden": 1, "ln_eps": 1e-6, "round_to": 1},
                        "nonlocal": {"scale_logits": True, "reduction": 8, "subsample": False, "round_to": 8},
                        "coord": {"bias": False, "reduction": 24, "round_to": 8}},
        marker=r"\.se\.|\.conv2\.attn\.fc_reduce\.|^conv_stem\.|^stages\.\d+\.blocks\.",
        by_model=timm_keys.BY_MODEL,
    ),
    "cbam-authors": Source(
        "cbam-authors",
        "the CBAM authors' ResidualNet (Jongchan/attention-module), saved from DataParallel (`module.` prefix)",
        renames=(
            (r"\.cbam\.ChannelGate\.mlp\.1\.", ".attn.channel.mlp.0."),
            (r"\.cbam\.ChannelGate\.mlp\.3\.", ".attn.channel.mlp.2."),
            (r"\.cbam\.SpatialGate\.spatial\.conv\.", ".attn.spatial.conv."),
            (r"\.cbam\.SpatialGate\.spatial\.bn\.", ".attn.spatial.norm."),
        ),
        module_options={"cbam": {"min_hidden": 1, "variant": "official", "norm_momentum": 0.01}},
        marker=r"\.cbam\.ChannelGate\.",
    ),
    "torchreid": Source(
        "torchreid",
        "torchreid's HACNN (KaiyangZhou/deep-person-reid): ConvBlock.{conv,bn}, HarmAttn.{soft_attn,hard_attn}",
        renames=(
            (r"\.soft_attn\.spatial_attn\.", ".soft.spatial."),
            (r"\.soft_attn\.channel_attn\.", ".soft.channel."),
            (r"\.soft_attn\.conv\.", ".soft.mix."),
            (r"\.hard_attn\.", ".hard."),
            (r"(^|\.)conv\.(weight|bias)$", r"\g<1>0.\2"),  # ConvBlock(conv, bn) -> attnzoo's ConvBlock(0, 1, 2)
            (r"(^|\.)bn\.(weight|bias|running_mean|running_var|num_batches_tracked)$", r"\g<1>1.\2"),
        ),
        marker=r"\.soft_attn\.",
        model_options={"region_sampling": "torchreid"},
    ),
}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from ``{"state_dict": ...}`` / ``{"model": ...}``
    and stripped of a DataParallel ``module.`` prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:  # empty, truncated, or not safetensors at all
            raise ValueError(f"{path}: not a readable safetensors file ({first_line(e)})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # an unpickling refusal or a damaged file: name it, in one line
            raise ValueError(f"{path}: cannot load as weights with weights_only=True ({first_line(e)})") from None
    for wrapper in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def detect_source(keys: list[str]) -> Source:
    for source in SOURCES.values():
        if source.marker and any(re.search(source.marker, k) for k in keys):
            return source
    return SOURCES["torchvision"]


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown weights source {name!r}; valid sources: auto, {', '.join(SOURCES)}") from None


def to_attnzoo(state: dict[str, torch.Tensor], source: Source, model: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` with its keys renamed to attnzoo's and Linear weights reshaped where attnzoo holds
    the same numbers as a 1×1 convolution."""
    targets = model.state_dict()
    family = source.by_model.get(type(model).__name__)
    convert = family.convert if family is not None else None
    if convert is not None:
        state = convert(state)
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in () if convert is not None else source.renames:
            key = re.sub(pattern, replacement, key)
        want = targets.get(key)
        if want is not None and want.shape != value.shape and want.numel() == value.numel() and want.dim() != value.dim():
            value = value.reshape(want.shape)  # nn.Linear (out, in) -> 1×1 conv (out, in, 1, 1); LayerNorm2d (C,) -> (C, 1, 1)
        renamed[key] = value
    return renamed


@dataclass
class LoadReport:
    source: str
    loaded: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]
    reinitialised: list[str]
    new: list[str] = field(default_factory=list)  # retrofitted modules: not in a plain checkpoint

    def __str__(self) -> str:
        return "; ".join([f"{self.loaded} tensors loaded (layout: {self.source})", *self.problems()])

    def problems(self) -> list[str]:
        parts = []
        for name, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("wrongly shaped", self.mismatched),
                           ("re-initialised head", self.reinitialised), ("new (retrofitted at γ = 0)", self.new)):
            if keys:
                parts.append(f"{len(keys)} {name}: {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}")
        return parts


def head_keys(model: nn.Module) -> set[str]:
    """The classifier's tensors, as the model's layout names them (a ResNet's ``fc``, HA-CNN's two
    classifiers, MobileNetV3's last linear layer...); none for a model without a layout."""
    from .slots import layout_of

    try:
        head = tuple(f"{name}." for name in layout_of(model).head)
    except ValueError:
        return set()
    return {k for k in model.state_dict() if k.startswith(head)}


def load_weights(model: nn.Module, path: str | Path, source: str = "auto", strict: bool = True, head: str = "keep") -> LoadReport:
    """Load a checkpoint in ``source``'s layout into ``model``; returns what was loaded and skipped.

    Strict by default: any missing, unexpected or wrongly shaped key is one ValueError listing the
    first few of each with the counts. ``head="reinit"`` keeps the model's freshly initialised
    classifier where the checkpoint's has another number of classes (reported, never silent);
    ``strict=False`` loads what fits and reports the rest.
    """
    raw = read_state_dict(path)
    return _load(model, raw, detect_source(list(raw)) if source == "auto" else get_source(source), path, strict, head)


def _load(model: nn.Module, raw: dict[str, torch.Tensor], src: Source, path: str | Path, strict: bool, head: str) -> LoadReport:
    if head not in ("keep", "reinit"):
        raise ValueError(f"head must be 'keep' or 'reinit', got {head!r}")
    state = to_attnzoo(raw, src, model)
    targets = model.state_dict()
    mismatched = sorted(k for k in state if k in targets and state[k].shape != targets[k].shape)
    reinitialised = sorted(k for k in mismatched if k in head_keys(model)) if head == "reinit" else []
    for key in reinitialised:
        del state[key]
    report = LoadReport(src.name, 0, sorted(set(targets) - set(state) - set(reinitialised)), sorted(set(state) - set(targets)),
                        [f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(targets[k].shape)})" for k in mismatched if k in state],
                        reinitialised)
    if strict and (report.missing or report.unexpected or report.mismatched):
        hint = " (a head of another size: pass head='reinit')" if any(k.split(" ")[0] in head_keys(model) for k in report.mismatched) else ""
        raise ValueError(f"{path} ({src.name} layout) does not fit the model: {'; '.join(report.problems())}{hint}; strict=False loads what fits")
    fitting = {k: v for k, v in state.items() if k in targets and v.shape == targets[k].shape}
    model.load_state_dict(fitting, strict=False)
    report.loaded = len(fitting)
    return report


def create_pretrained(build, attn: Any, weights: str | Path, source: str = "auto", head: str = "keep", strict: bool = True,
                      attn_options: Optional[dict[str, Any]] = None, retrofit: Optional[bool] = None,
                      adds_modules: bool = False) -> nn.Module:
    """``build(attn_options, model_options)`` with the source's options under the user's, then the
    checkpoint (read once) loaded into it. ``retrofit=None``: retrofit when the model adds modules
    (``adds_modules``) and the checkpoint holds none (``build`` then gets ``retrofit=True``)."""
    raw = read_state_dict(weights)
    src = detect_source(list(raw)) if source == "auto" else get_source(source)
    if retrofit is None:
        retrofit = adds_modules and not any(is_new_module_key(k) for k in to_attnzoo(raw, src, nn.Module()))
    if retrofit:
        model = build(attn_options or {}, {**src.model_options, "retrofit": True})
        model.weights_report = _load_backbone(model, raw, src, weights, head)
        return model
    options = {**(src.module_options.get(attn, {}) if isinstance(attn, str) else {}), **(attn_options or {})}
    model = build(options, src.model_options)
    family = src.by_model.get(type(model).__name__)
    if family is not None and family.model_options:  # e.g. timm's MobileNetV3: BatchNorm ε 1e-5
        model = build(options, {**src.model_options, **family.model_options})
    model.weights_report = _load(model, raw, src, weights, strict, head)  # what was loaded and skipped
    return model


NEW_MODULE_PARTS = ("attn", "fusion", "stage_attn")


def is_new_module_key(key: str) -> bool:
    """A key of a module that retrofit adds (absent from a plain checkpoint)."""
    return any(part in NEW_MODULE_PARTS for part in key.split("."))


def load_backbone(model: nn.Module, path: str | Path, source: str = "auto", head: str = "reinit") -> LoadReport:
    """Load a plain network's weights into a (retrofitted) model: every key but the new attention
    and fusion modules' must be there and fit; the head may be re-initialised."""
    raw = read_state_dict(path)
    return _load_backbone(model, raw, detect_source(list(raw)) if source == "auto" else get_source(source), path, head)


def _load_backbone(model: nn.Module, raw: dict[str, torch.Tensor], src: Source, path: str | Path, head: str) -> LoadReport:
    report = _load(model, raw, src, path, strict=False, head=head)
    report.new = [k for k in report.missing if is_new_module_key(k)]
    report.missing = [k for k in report.missing if not is_new_module_key(k)]
    if report.missing or report.unexpected or report.mismatched:
        raise ValueError(f"{path} is not a plain backbone for this model: {'; '.join(report.problems())}")
    return report

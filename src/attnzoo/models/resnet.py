"""ResNets (ImageNet and CIFAR layouts) with optional attention and fusion in every block.

Attention sits on the residual branch after its last BN, before the addition (SE and CBAM
papers); fusion replaces the addition ``out + identity`` (AFF-ResNet). A plain model has
``attn = fusion = None`` in each block and runs exactly torchvision's computation.
(Blocks end in ``merge`` so that a conversion step can swap the end for a one-pass kernel.)
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..layers._base import FusionModule
from ..layers.registry import get_conv_class
from ..layers.residual_mix import wrap
from .registry import register_model
from .slots import LayerFactory, LayerSpec, Layout, check_stages, layer_factory, stages_for

ConvFactory = Optional[Callable[..., nn.Module]]  # (width, stride=...) -> module


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs; ``relu(fuse(attn(bn2(conv2(relu(bn1(conv1(x)))))), shortcut(x)))``."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        attn_layer: LayerFactory = None,
        fusion_layer: LayerFactory = None,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        groups: int = 1,
        base_width: int = 64,
        conv_layer: ConvFactory = None,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64 or conv_layer is not None:
            raise ValueError("BasicBlock supports only groups=1, width_per_group=64 and the standard 3×3 conv")
        out_planes = planes * self.expansion
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, out_planes)
        self.bn2 = norm_layer(out_planes)
        self.bn_out_channels = out_planes
        self.attn = attn_layer(out_planes) if attn_layer is not None else None
        self.fusion = fusion_layer(out_planes) if fusion_layer is not None else None
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.merge(out, identity)

    def merge(self, out: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return _merge(self, out, identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (stride here, as torchvision's ResNet v1.5), 1×1 expand ×4; attention after bn3."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        attn_layer: LayerFactory = None,
        fusion_layer: LayerFactory = None,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        groups: int = 1,
        base_width: int = 64,
        conv_layer: ConvFactory = None,
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        width = int(planes * base_width / 64) * groups  # ResNeXt's bottleneck width
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        if conv_layer is None:
            self.conv2: nn.Module = conv3x3(width, width, stride, groups)
            self.bn2: nn.Module = norm_layer(width)
            self.act2: nn.Module = nn.ReLU(inplace=True)
        else:  # SK / split attention bring their own BN and ReLU; attention layers (BoTNet, ...) keep the block's
            self.conv2 = conv_layer(width, stride=stride)
            own_norm = getattr(self.conv2, "includes_norm", True)
            self.bn2 = nn.Identity() if own_norm else norm_layer(width)
            self.act2 = nn.Identity() if own_norm else nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, out_planes)
        self.bn3 = norm_layer(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.bn_out_channels = out_planes
        self.attn = attn_layer(out_planes) if attn_layer is not None else None
        self.fusion = fusion_layer(out_planes) if fusion_layer is not None else None
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.merge(out, identity)

    def merge(self, out: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return _merge(self, out, identity)


def _merge(block: Union[BasicBlock, Bottleneck], out: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """A block's end: ``relu(fuse(attn(out), identity))``, the fusion being ``+`` unless the block has one.

    With the stock ReLU and an attention module that can end a block (one with a
    ``forward_residual``: the gating modules, HA soft attention), none, or a fusion module without
    attention, the gate, the addition (or fusion) and the ReLU are one op (:mod:`attnzoo.ops`): one
    pass over memory where the device has a kernel for it.
    """
    if type(block.relu) is nn.ReLU and not ops.observed(block.relu):
        if block.fusion is None and block.attn is None:
            return ops.gate(out, identity=identity, relu=True)
        if block.fusion is None and callable(getattr(block.attn, "forward_residual", None)):
            return block.attn.forward_residual(out, identity)
        if block.attn is None and isinstance(block.fusion, FusionModule):
            return block.fusion.forward_residual(out, identity)
    if block.attn is not None:
        out = block.attn(out)
    out = out + identity if block.fusion is None else block.fusion(out, identity)
    return block.relu(out)


class PadShortcut(nn.Module):
    """CIFAR ResNet shortcut "option A": stride-2 subsampling and zero channels, no parameters."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra_channels // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra_channels - half))


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "group": lambda channels: nn.GroupNorm(min(8, channels), channels),
}


def _conv_factory(conv: Optional[str], options: Optional[dict]) -> ConvFactory:
    """``(width, stride=...) -> module`` for a registered 3×3-conv replacement, or None; its
    ``default_stages`` is the class's (``"all"``, or ``"last"`` for BoTNet / HaloNet)."""
    if conv is None:
        if options:
            raise ValueError("conv_options given without conv")
        return None
    cls = get_conv_class(conv)
    factory = functools.partial(cls, **dict(options or {}))
    factory.default_stages = getattr(cls, "default_stages", "all")
    factory.zero_init_residual = getattr(cls, "zero_init_residual", False)
    return factory


class ResNet(nn.Module):
    """ResNet with optional attention / fusion modules in the blocks of chosen stages.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage.
        widths: ``planes`` per stage (block output is ``planes * block.expansion``).
        stem: ``"imagenet"`` (7×7/2 conv + 3×3/2 max-pool) or ``"cifar"`` (3×3 conv, stride 1).
        shortcut: ``"B"`` (1×1 conv + BN projection when shape changes, torchvision) or
            ``"A"`` (parameter-free subsample + zero-pad, He et al. 2016 for CIFAR).
        attn, fusion: registered name, callable ``channels -> nn.Module``, or None.
        attn_options, fusion_options: keyword options for each attention / fusion module.
        attn_stages, fusion_stages: 1-based stages whose blocks get them (default: all).
        zero_init_residual: start each block's last BN weight at 0 (always with a ``conv`` whose
            class asks for it: the lambda layer, whose output is quadratic in its input wherever
            its BatchNorms use running statistics, as in eval mode at init).
        norm: ``"batch"`` (BatchNorm, default) or ``"group"`` (GroupNorm, 8 groups): batch-size
            independent, e.g. for tiny per-device batches.
        groups, width_per_group: ResNeXt cardinality and width (Bottleneck only).
        conv: a registered 3×3-conv replacement (``"sk"``, ``"splat"``, ``"bottleneck"``, ...; see
            ``list_conv()``) for the bottlenecks of ``conv_stages``, with ``conv_options``.
        conv_stages: 1-based stages whose bottlenecks get ``conv`` (default: the module's own choice,
            every stage, or the last for ``bottleneck`` and ``halo`` as in BoTNet / HaloNet).
        stem: also ``"deep"``: three 3×3 convs (``stem_width``, ``stem_width``, ``2·stem_width``).
        avg_down: shortcut downsampling by average pooling before the 1×1 conv (ResNet-D).
        retrofit: wrap every attention and fusion module in a residual mix ``x + γ·(m(x) − x)``
            with γ = 0, so the model computes its plain twin's function at the start (the layout
            :func:`attnzoo.retrofit` gives a pretrained plain model).
    """

    def __init__(
        self,
        block: type[Union[BasicBlock, Bottleneck]],
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        shortcut: str = "B",
        attn: LayerSpec = None,
        fusion: LayerSpec = None,
        attn_options: Optional[dict[str, Any]] = None,
        fusion_options: Optional[dict[str, Any]] = None,
        attn_stages: Optional[Iterable[int]] = None,
        fusion_stages: Optional[Iterable[int]] = None,
        zero_init_residual: bool = False,
        norm: str = "batch",
        groups: int = 1,
        width_per_group: int = 64,
        conv: Optional[str] = None,
        conv_options: Optional[dict[str, Any]] = None,
        conv_stages: Optional[Iterable[int]] = None,
        stem_width: int = 32,
        avg_down: bool = False,
        retrofit: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {tuple(layers)} and widths {tuple(widths)} must have the same length")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {sorted(_NORMS)}, got {norm!r}")
        self.num_classes, self.shortcut, self.avg_down, self.norm_layer = num_classes, shortcut, avg_down, _NORMS[norm]
        self.block_options = {"groups": groups, "base_width": width_per_group}
        conv_layer = _conv_factory(conv, conv_options)
        conv_at = stages_for(conv_layer, conv_stages, len(layers), "conv")
        self._make_stem(stem, in_chans, widths[0], stem_width)
        attn_layer = layer_factory(attn, attn_options, "attn")
        fusion_layer = layer_factory(fusion, fusion_options, "fusion")
        if retrofit:  # every module behind a learnable residual mix at 0 (see models/retrofit.py)
            attn_layer, fusion_layer = wrap(attn_layer), wrap(fusion_layer)
        stage_attn = attn_layer is not None and attn_layer.placement in ("stage", "head")
        attn_at = stages_for(attn_layer, attn_stages, len(layers), "attn")
        fusion_at = check_stages(fusion_stages, len(layers), "fusion")
        for i, (planes, blocks) in enumerate(zip(widths, layers), start=1):
            block_attn = attn_layer if i in attn_at and not stage_attn else None
            stage = self._make_stage(block, planes, blocks, 1 if i == 1 else 2, block_attn, fusion_layer if i in fusion_at else None,
                                     conv_layer if i in conv_at else None)
            self.add_module(f"layer{i}", stage)
        # Stage-level attention (BAM, heads) refines a stage's output before the next stage / the pool.
        self.stage_attn = nn.ModuleDict(
            {f"layer{i}": attn_layer(widths[i - 1] * block.expansion) for i in sorted(attn_at)} if stage_attn else {}
        )
        self.num_stages = len(layers)
        self.layout = Layout(stem=("conv1", "bn1"), stages=tuple((f"layer{i}",) for i in range(1, len(layers) + 1)),
                             feature_layer=f"layer{len(layers)}", head=("fc",), input_size=(32, 32) if stem == "cifar" else (224, 224))
        self.num_features = widths[-1] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights(zero_init_residual or bool(conv_layer is not None and conv_layer.zero_init_residual))

    def _make_stem(self, stem: str, in_chans: int, width: int, stem_width: int) -> None:
        """``conv1`` (+ ``bn1``, ``relu``, ``maxpool``): 7×7/2 + max-pool (imagenet), three 3×3
        (deep), or one 3×3 at stride 1 (cifar). Sets ``inplanes``, the stem's output width."""
        self.inplanes = width
        if stem == "imagenet":
            self.conv1: nn.Module = nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "deep":
            self.inplanes = 2 * stem_width
            self.conv1 = nn.Sequential(
                conv3x3(in_chans, stem_width, 2), self.norm_layer(stem_width), nn.ReLU(inplace=True),
                conv3x3(stem_width, stem_width), self.norm_layer(stem_width), nn.ReLU(inplace=True),
                conv3x3(stem_width, self.inplanes),
            )
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "cifar":
            self.conv1 = conv3x3(in_chans, width)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"stem must be 'imagenet', 'cifar' or 'deep', got {stem!r}")
        self.bn1 = self.norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)

    def _make_stage(self, block, planes, blocks, stride, attn_layer, fusion_layer, conv_layer) -> nn.Sequential:
        out_planes = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            if self.shortcut == "A":
                downsample = PadShortcut(out_planes - self.inplanes)
            elif self.avg_down:
                pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
                downsample = nn.Sequential(pool, conv1x1(self.inplanes, out_planes), self.norm_layer(out_planes))
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride), self.norm_layer(out_planes))
        opts = {**self.block_options, "conv_layer": conv_layer}
        layers = [block(self.inplanes, planes, stride, downsample, attn_layer, fusion_layer, self.norm_layer, **opts)]
        self.inplanes = out_planes
        layers += [block(out_planes, planes, 1, None, attn_layer, fusion_layer, self.norm_layer, **opts) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for name, m in self.named_modules():
            # Attention and fusion modules own their initialisation (γ = 0, zero-init BN, ...).
            if {"attn", "fusion", "stage_attn"} & set(name.split(".")):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i}") for i in range(1, self.num_stages + 1)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
            if f"layer{i}" in self.stage_attn:
                x = self.stage_attn[f"layer{i}"](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        return self.fc(torch.flatten(x.mean((2, 3)), 1))


def _imagenet_resnet(block, layers, **kwargs) -> ResNet:
    kwargs.setdefault("stem", "imagenet")
    return ResNet(block, layers, widths=(64, 128, 256, 512), **kwargs)


def _cifar_resnet(depth: int, **kwargs) -> ResNet:
    n = (depth - 2) // 6
    kwargs.setdefault("shortcut", "A")
    return ResNet(BasicBlock, (n, n, n), widths=(16, 32, 64), stem="cifar", **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (He et al., CVPR 2016), torchvision layout: 11,689,512 parameters at 1000 classes."""
    return _imagenet_resnet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    """ResNet-34: 21,797,672 parameters at 1000 classes."""
    return _imagenet_resnet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (v1.5: stride in the 3×3 conv): 25,557,032 parameters at 1000 classes."""
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    """ResNet-101: 44,549,160 parameters at 1000 classes."""
    return _imagenet_resnet(Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    """ResNet-152: 60,192,808 parameters at 1000 classes."""
    return _imagenet_resnet(Bottleneck, (3, 8, 36, 3), **kwargs)


@register_model
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 32×4d (Xie et al., CVPR 2017): 25,028,904 parameters at 1000 classes."""
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4, **kwargs)


@register_model
def sknet50(**kwargs) -> ResNet:
    """SKNet-50: ResNeXt-50 32×4d with SK[M=2, G=32, r=16, L=32] units (Li et al., CVPR 2019):
    27,479,784 parameters at 1000 classes, the paper's 27.5M."""
    kwargs.setdefault("conv", "sk")
    return resnext50_32x4d(**kwargs)


@register_model
def resnest50(**kwargs) -> ResNet:
    """ResNeSt-50 (1s2x64d; Zhang et al. 2020): split attention with radix 2, deep stem of width
    32, average-pool downsampling in the shortcut and in the block (avd): 27,483,240 parameters,
    the paper's 27.5M."""
    kwargs.setdefault("conv", "splat")
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), stem="deep", avg_down=True, **kwargs)


@register_model
def botnet50(**kwargs) -> ResNet:
    """BoT50 (Srinivas et al., CVPR 2021): ResNet-50 whose last-stage 3×3 convs are multi-head
    self-attention (4 heads, relative positions for a 14×14 map, the c5 input at 224²):
    20,859,176 parameters at 1000 classes, the paper's 20.8M to 0.3%."""
    kwargs.setdefault("conv", "bottleneck")
    kwargs.setdefault("conv_options", {"feat_size": 14})
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def lambda_resnet50(**kwargs) -> ResNet:
    """LambdaResNet-50 (Bello, ICLR 2021): ResNet-50 with every 3×3 conv a lambda layer (k = 16,
    h = 4, u = 1, lambda convolution of scope 23): see the count in the test suite against the
    paper's 15.0M."""
    kwargs.setdefault("conv", "lambda")
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def cifar_resnet8(**kwargs) -> ResNet:
    """CIFAR ResNet-8 (depth 6n + 2 with n = 1): one block per stage, for fast CPU experiments."""
    return _cifar_resnet(8, **kwargs)


@register_model
def cifar_resnet20(**kwargs) -> ResNet:
    """CIFAR ResNet-20 (He et al. 2016, Sec. 4.2): 3 stages of 16/32/64 channels, shortcut A."""
    return _cifar_resnet(20, **kwargs)


@register_model
def cifar_resnet32(**kwargs) -> ResNet:
    """CIFAR ResNet-32."""
    return _cifar_resnet(32, **kwargs)


@register_model
def cifar_resnet56(**kwargs) -> ResNet:
    """CIFAR ResNet-56."""
    return _cifar_resnet(56, **kwargs)


@register_model
def cifar_resnet110(**kwargs) -> ResNet:
    """CIFAR ResNet-110."""
    return _cifar_resnet(110, **kwargs)

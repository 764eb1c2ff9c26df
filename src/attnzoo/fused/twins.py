"""Fused twins: subclasses whose ``forward`` (modules) or ``merge`` (ResNet blocks) runs the C++
kernels where they compute exactly what the parent computes, and the parent's code elsewhere.

:func:`convert` swaps each eligible module's class for its twin in place of the module — same
parameters, buffers and state-dict keys — and :func:`revert` swaps it back.
"""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Optional

import torch
from torch import nn

from ..layers import (
    CBAM,
    ECA,
    CBAMChannel,
    CBAMSpatial,
    EffectiveSqueezeExcite,
    HAChannelAttention,
    HASoftAttention,
    HASpatialAttention,
    SqueezeExcite,
)
from .. import ops
from ..layers._base import GateModule
from ..layers.hacnn import ConvBlock
from ..models.resnet import BasicBlock, Bottleneck
from .build import require

Gates = tuple[Optional[torch.Tensor], Optional[torch.Tensor]]  # (channel (N, C), spatial (N, H·W)); None = 1


def eligible(x: torch.Tensor, *replaced: nn.Module) -> bool:
    """Whether ``x`` may take a kernel: fp32 contiguous CPU data, no autograd, not while
    ``torch.compile`` traces, and no forward hook on a module whose forward the kernel skips."""
    return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()
            and not torch.compiler.is_compiling() and not ops.observed(*replaced))


def folded(block: ConvBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv weight and bias of an eval-mode ConvBlock with its BatchNorm folded in:
    ``BN(conv(x)) = conv'(x)``, ``w' = w·γ/σ``, ``b' = (b − μ)·γ/σ + β``, ``σ = √(var + ε)``."""
    conv, norm, _ = block
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    # contiguous: the kernels read row-major weights, and a channels_last model holds them otherwise
    return (conv.weight * scale.view(-1, 1, 1, 1)).contiguous(), (bias - norm.running_mean) * scale + norm.bias


def folded_conv(spatial: CBAMSpatial) -> Optional[tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """CBAM's spatial conv weight and bias with the official variant's BatchNorm folded in (eval
    mode); None while that BatchNorm is training (it then normalises with the batch's statistics)."""
    if isinstance(spatial.norm, nn.Identity):
        return spatial.conv.weight, spatial.conv.bias
    if spatial.norm.training:
        return None
    bn = spatial.norm
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if spatial.conv.bias is not None:
        bias = bias + spatial.conv.bias * scale
    return spatial.conv.weight * scale, bias


def rank1(m: HASoftAttention, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HA soft attention's mix in eval mode: ``BN(conv(s ⊗ c)) = s ⊗ u + v`` with u (N, C) and v (C)."""
    weight, bias = folded(m.mix)
    return torch.nn.functional.linear(c.flatten(1), weight.flatten(1)), bias


def _pooled_gates(k: ModuleType, x, identity, relu, channel: Optional[CBAMChannel | SqueezeExcite], spatial: Optional[CBAMSpatial]):
    """SE, CBAM or a CBAM half in one ``pooled_gates`` call: pooling, MLP, spatial conv and the
    apply pass; None where the kernel does not compute the module (other activations, max-only
    pooling, a training BatchNorm)."""
    mlp, two_pools = (None, None, None, None), False
    if channel is not None:
        fc1, act, fc2 = (channel.fc1, channel.act, channel.fc2) if isinstance(channel, SqueezeExcite) else tuple(channel.mlp)
        pools = getattr(channel, "pools", "avg")
        if type(act) is not nn.ReLU or type(channel.gate) is not nn.Sigmoid or pools == "max":
            return None
        mlp, two_pools = (fc1.weight.flatten(1), fc1.bias, fc2.weight.flatten(1), fc2.bias), pools == "avg+max"
    conv: Optional[tuple] = (None, None)
    if spatial is not None:
        conv = folded_conv(spatial) if type(spatial.gate) is nn.Sigmoid else None
        if conv is None:
            return None
    # The kernel reads row-major weights; a channels_last model holds conv weights otherwise.
    mlp, conv = (tuple(t if t is None else t.contiguous() for t in group) for group in (mlp, conv))
    max_first = spatial is not None and spatial.variant == "official"
    return k.pooled_gates(x, identity, relu, *mlp, two_pools, *conv, max_first)


def _ha_soft(k: ModuleType, m: HASoftAttention, x, identity, relu):
    """HA soft attention: both means in one pass, the spatial map in one small kernel (BNs folded),
    then ``y = x ⊙ σ(ReLU(s ⊗ u + v))`` in one pass: ``A`` is never stored."""
    blocks = (m.mix, m.spatial.conv1, m.spatial.conv2)
    if type(m.gate) is not nn.Sigmoid or any(b[1].training or type(b[2]) is not nn.ReLU for b in blocks):
        return None
    n, c, h, w = x.shape
    mean_map, pooled = k.means(x)
    s = k.ha_spatial_map(mean_map.view(n, h, w), *folded(m.spatial.conv1), *folded(m.spatial.conv2))
    channel = m.channel
    u, v = rank1(m, channel.conv2(channel.conv1(pooled.view(n, c, 1, 1))))
    return k.rank1_sigmoid_scale(x, s, u, v, identity, relu)


def fused_end(k: ModuleType, m: nn.Module, x: torch.Tensor, identity: Optional[torch.Tensor] = None, relu: bool = False):
    """``m(x)`` — or a residual block's end ``relu(m(x) + identity)`` — through the kernels, or None."""
    base = base_class(type(m))
    if base in (SqueezeExcite, CBAM, CBAMChannel, CBAMSpatial):
        channel = m.channel if base is CBAM else m if base in (SqueezeExcite, CBAMChannel) else None
        spatial = m.spatial if base is CBAM else m if base is CBAMSpatial else None
        y = _pooled_gates(k, x, identity, relu, channel, spatial)
        if y is not None:
            return y
    if base is HASoftAttention:
        return _ha_soft(k, m, x, identity, relu)
    if isinstance(m, GateModule):  # the gates in PyTorch, their application in one kernel pass
        channel, spatial = m.gates(x)
        return k.scale(x, channel, None if spatial is None else spatial.flatten(1), identity, relu)
    return None


def _module_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    base = base_class(type(self))
    if eligible(x, *list(self.modules())[1:]):
        self.check_input(x)
        y = fused_end(require(), self, x)
        if y is not None:
            return y
    return base.forward(self, x)


def _block_merge(self: nn.Module, out: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """``relu(attn(out) + identity)`` in one pass over memory where the kernels apply."""
    base = base_class(type(self))
    attn = self.attn
    replaced = [self.relu, *(attn.modules() if attn is not None else ())]
    if self.fusion is None and eligible(out, *replaced) and identity.shape == out.shape and identity.is_contiguous():
        k = require()
        if attn is None:
            return k.scale(out, None, None, identity, True)
        attn.check_input(out)
        y = fused_end(k, attn, out, identity, True)
        if y is not None:
            return y
    return base.merge(self, out, identity)


_BASES = (SqueezeExcite, EffectiveSqueezeExcite, ECA, CBAMChannel, CBAMSpatial, CBAM, HAChannelAttention, HASpatialAttention, HASoftAttention)
TWINS: dict[type, type] = {cls: type(f"Fused{cls.__name__}", (cls,), {"forward": _module_forward, "__module__": __name__}) for cls in _BASES}
TWINS.update({cls: type(f"Fused{cls.__name__}", (cls,), {"merge": _block_merge, "__module__": __name__}) for cls in (BasicBlock, Bottleneck)})
_BASE_OF = {twin: base for base, twin in TWINS.items()}


def base_class(cls: type) -> type:
    return _BASE_OF.get(cls, cls)


def convert(model: nn.Module, inplace: bool = False) -> nn.Module:
    """``model`` with every eligible module and ResNet block swapped for its fused twin.

    Raises RuntimeError, saying why, where the kernels cannot be built. The twins have the same
    parameters and state-dict keys; they run the kernels for inference (no autograd) on fp32 CPU
    data and the PyTorch code otherwise, so a converted model still trains and exports.
    """
    require()
    model = model if inplace else copy.deepcopy(model)
    for module in model.modules():
        twin = TWINS.get(type(module))
        if twin is not None:
            module.__class__ = twin
    return model


def revert(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Undo :func:`convert`: every fused twin back to its plain class."""
    model = model if inplace else copy.deepcopy(model)
    for module in model.modules():
        module.__class__ = base_class(type(module))
    return model


def converted(model: nn.Module) -> list[str]:
    """Names of the modules of ``model`` that are fused twins."""
    return [name for name, m in model.named_modules() if type(m) in _BASE_OF]

"""Capture the attention weights of every attention/fusion module in any model, by forward hooks.

Every module in :mod:`attnzoo.layers` sends its weights through a submodule named ``gate``
(a sigmoid, softmax or tanh). :func:`capture_attention` hooks those gates — nothing in the
model is edited, and once the ``with`` block ends the hooks are gone, so there is no cost when
not capturing. What a gate's output means depends on its owner:

=================================  =========  ===============================================
owner                              kind       tensor
=================================  =========  ===============================================
CBAMSpatial, HASpatialAttention,   spatial    (N, H, W) map, the module's gate output
the spatial halves of LightCBAM
and PolarizedSelfAttention
SqueezeExcite, CBAMChannel,        channel    (N, C) per-channel weights
HAChannelAttention, ECA (and
CircularECA), ECAM, the channel
halves of LightCBAM and PSA
MSCAM (alone or in AFF / iAFF)     full       (N, C, H, W) weights M; its global branch's
                                              sigmoid is also kept as ``channel``
HASoftAttention, StripAttention,   full       (N, C, H, W) gate
SimpleCoordAttention
SelfAttention2d, NonLocal2d,       rows       (N, H·W, L) attention rows (query × key)
DANetPositionAttention
HardRegionAttention                regions    (N, K, 2, 3) affine θ of the K regions
=================================  =========  ===============================================

``full`` maps also provide a ``spatial`` view (their mean over channels) and ``rows`` one too
(the mean attention row: where positions look on average), so every module with a spatial
component can be drawn and scored the same way.
"""

from __future__ import annotations

import contextlib
import fnmatch
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from ..layers import MSCAM


def _kind_of(module: nn.Module) -> Optional[str]:
    """What a module's gate is, as its class says (``viz_kind``): spatial, channel, full, rows or regions."""
    return getattr(module, "viz_kind", None)


@dataclass
class AttentionRecord:
    """The weights one module produced in the last forward pass."""

    name: str  # the owner's name in the model, e.g. "layer3.0.attn.spatial"
    module: str  # the owner's class
    kind: str  # spatial | channel | full | rows | regions
    tensor: torch.Tensor
    input_size: tuple[int, int] = (0, 0)  # (H, W) of the owner's input
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def spatial(self) -> Optional[torch.Tensor]:
        """(N, h, w) spatial view: the map itself, a full map's mean over channels, or for
        self-attention the mean attention row (where the image's positions look, on average)."""
        if self.kind == "spatial":
            return self.tensor
        if self.kind == "full":
            return self.tensor.mean(1)
        if self.kind == "rows":
            kh, kw = _key_grid(*self.input_size, self.tensor.shape[-1])
            return self.tensor.mean(1).reshape(-1, kh, kw)
        return None

    @property
    def channel(self) -> Optional[torch.Tensor]:
        """(N, C) channel weights, where the module has them."""
        if self.kind == "channel":
            return self.tensor
        return self.extra.get("channel")

    def rows_for(self, query_yx: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Self-attention rows of the given query pixels, as key maps ``(N, Q, h, w)``."""
        if self.kind != "rows":
            raise ValueError(f"{self.name} ({self.module}) has no attention rows")
        h, w = self.input_size
        keys = self.tensor.shape[-1]
        kh, kw = _key_grid(h, w, keys)
        idx = torch.tensor([y * w + x for y, x in query_yx])
        return self.tensor[:, idx].reshape(self.tensor.shape[0], len(query_yx), kh, kw)


def _key_grid(h: int, w: int, keys: int) -> tuple[int, int]:
    """Key map size: the input size, or the ceil-mode subsampled size that has ``keys`` positions."""
    for stride in range(1, max(h, w) + 1):
        kh, kw = -(-h // stride), -(-w // stride)
        if kh * kw == keys:
            return kh, kw
    raise ValueError(f"cannot arrange {keys} keys on a grid for a {h}x{w} input")


def attention_modules(model: nn.Module, layers: Optional[Sequence[str]] = None) -> Iterator[tuple[str, nn.Module, str]]:
    """(name, module, kind) of every module with a capturable gate, optionally filtered by
    glob patterns on the name (e.g. ``["layer3.*"]``). Nested owners are reported once: CBAM
    appears as its channel and spatial halves, AFF as its MS-CAM(s)."""
    for name, module in model.named_modules():
        kind = _kind_of(module)
        if kind is None:
            continue
        if layers and not any(fnmatch.fnmatch(name, pattern) or name.startswith(pattern) for pattern in layers):
            continue
        yield name, module, kind


@contextlib.contextmanager
def capture_attention(model: nn.Module, layers: Optional[Sequence[str]] = None, detach: bool = True) -> Iterator[dict[str, AttentionRecord]]:
    """Context manager: records of every attention module's weights from forwards inside it.

    >>> with capture_attention(model) as maps:
    ...     model(x)
    >>> maps["layer3.0.attn.spatial"].spatial.shape   # (N, H, W)
    """
    records: dict[str, AttentionRecord] = {}
    handles = []

    def keep(t: torch.Tensor) -> torch.Tensor:
        return t.detach() if detach else t

    def record(name: str, module: nn.Module, kind: str) -> AttentionRecord:
        if name not in records:
            records[name] = AttentionRecord(name, type(module).__name__, kind, torch.empty(0))
        return records[name]

    for name, module, kind in attention_modules(model, layers):
        def on_gate(_gate, _args, out, name=name, module=module, kind=kind):
            rec = record(name, module, kind)
            if kind == "spatial":
                rec.tensor = keep(out[:, 0])
            elif kind == "channel":
                rec.tensor = keep(out.flatten(1))
            else:
                rec.tensor = keep(out)
            if kind in ("spatial", "full"):
                rec.input_size = tuple(out.shape[-2:])

        # Hard attention's gate gives raw translations; its output θ is what describes the regions.
        handles.append((module if kind == "regions" else module.gate).register_forward_hook(on_gate))
        if kind == "rows":
            # Query positions are the input's pixels: keep its size to lay rows out as maps.
            def on_input(mod, args, name=name, kind=kind):
                record(name, mod, kind).input_size = tuple(args[0].shape[-2:])

            handles.append(module.register_forward_pre_hook(on_input))
        if isinstance(module, MSCAM) and "pooled" in module.branches:
            def on_global(_b, _args, out, name=name, module=module, kind=kind):
                record(name, module, kind).extra["channel"] = keep(torch.sigmoid(out.flatten(1)))

            handles.append(module.branches["pooled"].register_forward_hook(on_global))
    try:
        yield records
    finally:
        for h in handles:
            h.remove()

"""Name -> class registries for attention, fusion and conv modules (the one Registry class of utils).

Every module is built the same way, ``cls(channels, **options)``, so a model can take
an attention block by name (``attn="cbam"``) and pass options through unchanged. Registering a
class makes its constructor check its options against their declared rules (``constraints.py``).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

from ..utils.registry import Registry
from .constraints import checked_init

T = TypeVar("T", bound=type[nn.Module])

ATTENTION: Registry[type[nn.Module]] = Registry("attention module")
FUSION: Registry[type[nn.Module]] = Registry("fusion module")
CONV: Registry[type[nn.Module]] = Registry("conv module")
KINDS = ("attention", "fusion", "conv")
_BY_KIND = dict(zip(KINDS, (ATTENTION, FUSION, CONV)))


def _register(table: Registry[type[nn.Module]], name: str) -> Callable[[T], T]:
    def decorator(cls: T) -> T:
        if "_options_checked" not in cls.__dict__:  # a class registered under two names is wrapped once
            checked_init(cls)
            cls._options_checked = True
        return table.register(name, cls)

    return decorator


def register_attn(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as ``create_attn(name, channels, ...)``."""
    return _register(ATTENTION, name)


def register_fusion(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as ``create_fusion(name, channels, ...)``."""
    return _register(FUSION, name)


def register_conv(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as a 3×3-conv replacement, ``create_conv(name, channels, ...)``."""
    return _register(CONV, name)


def list_attn() -> list[str]:
    """Sorted names of the registered attention modules."""
    return ATTENTION.names()


def list_fusion() -> list[str]:
    """Sorted names of the registered fusion modules."""
    return FUSION.names()


def list_conv() -> list[str]:
    """Sorted names of the registered 3×3-conv replacements (attention inside the convolution)."""
    return CONV.names()


def get_attn_class(name: str) -> type[nn.Module]:
    return ATTENTION.get(name)


def get_fusion_class(name: str) -> type[nn.Module]:
    return FUSION.get(name)


def get_conv_class(name: str) -> type[nn.Module]:
    return CONV.get(name)


def create_attn(name: str, channels: int, **options) -> nn.Module:
    """Build attention module ``name`` for ``channels`` input channels: ``y = m(x)``."""
    return get_attn_class(name)(channels, **options)


def create_fusion(name: str, channels: int, **options) -> nn.Module:
    """Build fusion module ``name`` for ``channels`` channels: ``z = m(x, y)``."""
    return get_fusion_class(name)(channels, **options)


def create_conv(name: str, channels: int, **options) -> nn.Module:
    """Build conv replacement ``name``: ``channels`` in, ``out_channels`` (default ``channels``) out."""
    return get_conv_class(name)(channels, **options)


def list_modules() -> list[str]:
    """Sorted names of every registered attention, fusion and conv module."""
    return sorted({*ATTENTION, *FUSION, *CONV})


def module_kind(name: str) -> str:
    """Which registry holds ``name``: ``"attention"``, ``"fusion"`` or ``"conv"``."""
    for kind, table in _BY_KIND.items():
        if name in table:
            return kind
    raise ValueError(f"unknown module {name!r}; valid names: {', '.join(list_modules())}")


def get_module_class(name: str) -> type[nn.Module]:
    """The class of a registered attention, fusion or conv module."""
    return _BY_KIND[module_kind(name)].get(name)


def create_module(name: str, channels: int, **options) -> nn.Module:
    """Build any registered module by name, whichever registry holds it."""
    return get_module_class(name)(channels, **options)

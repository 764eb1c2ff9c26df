"""Name -> class registries for attention and fusion modules.

Every module is built the same way, ``cls(channels, **options)``, so a model can take
an attention block by name (``attn="cbam"``) and pass options through unchanged. Registering a
class makes its constructor check its options against their declared rules (``constraints.py``).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

from .constraints import checked_init

T = TypeVar("T", bound=type[nn.Module])

_ATTN: dict[str, type[nn.Module]] = {}
_FUSION: dict[str, type[nn.Module]] = {}
_CONV: dict[str, type[nn.Module]] = {}


def _register(table: dict[str, type[nn.Module]], kind: str, name: str) -> Callable[[T], T]:
    def decorator(cls: T) -> T:
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered to {table[name].__name__}")
        if "_options_checked" not in cls.__dict__:  # a class registered under two names is wrapped once
            checked_init(cls)
            cls._options_checked = True
        table[name] = cls
        return cls

    return decorator


def register_attn(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as ``create_attn(name, channels, ...)``."""
    return _register(_ATTN, "attention", name)


def register_fusion(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as ``create_fusion(name, channels, ...)``."""
    return _register(_FUSION, "fusion", name)


def register_conv(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as a 3×3-conv replacement, ``create_conv(name, channels, ...)``."""
    return _register(_CONV, "conv", name)


def _lookup(table: dict[str, type[nn.Module]], kind: str, name: str) -> type[nn.Module]:
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown {kind} module {name!r}; valid names: {', '.join(sorted(table))}"
        ) from None


def list_attn() -> list[str]:
    """Sorted names of the registered attention modules."""
    return sorted(_ATTN)


def list_fusion() -> list[str]:
    """Sorted names of the registered fusion modules."""
    return sorted(_FUSION)


def list_conv() -> list[str]:
    """Sorted names of the registered 3×3-conv replacements (attention inside the convolution)."""
    return sorted(_CONV)


def get_conv_class(name: str) -> type[nn.Module]:
    return _lookup(_CONV, "conv", name)


def create_conv(name: str, channels: int, **options) -> nn.Module:
    """Build conv replacement ``name``: ``channels`` in, ``out_channels`` (default ``channels``) out."""
    return get_conv_class(name)(channels, **options)


def get_attn_class(name: str) -> type[nn.Module]:
    return _lookup(_ATTN, "attention", name)


def get_fusion_class(name: str) -> type[nn.Module]:
    return _lookup(_FUSION, "fusion", name)


def create_attn(name: str, channels: int, **options) -> nn.Module:
    """Build attention module ``name`` for ``channels`` input channels: ``y = m(x)``."""
    return get_attn_class(name)(channels, **options)


def create_fusion(name: str, channels: int, **options) -> nn.Module:
    """Build fusion module ``name`` for ``channels`` channels: ``z = m(x, y)``."""
    return get_fusion_class(name)(channels, **options)


KINDS = ("attention", "fusion", "conv")


def module_kind(name: str) -> str:
    """Which registry holds ``name``: ``"attention"``, ``"fusion"`` or ``"conv"``."""
    for kind, table in zip(KINDS, (_ATTN, _FUSION, _CONV)):
        if name in table:
            return kind
    raise ValueError(f"unknown module {name!r}; valid names: {', '.join(sorted({**_ATTN, **_FUSION, **_CONV}))}")


def get_module_class(name: str) -> type[nn.Module]:
    """The class of a registered attention, fusion or conv module."""
    return {"attention": _ATTN, "fusion": _FUSION, "conv": _CONV}[module_kind(name)][name]


def create_module(name: str, channels: int, **options) -> nn.Module:
    """Build any registered module by name, whichever registry holds it."""
    return get_module_class(name)(channels, **options)

"""Name -> model factory registry."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..utils.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Function decorator: make the factory ``fn`` available as ``create_model(fn.__name__)``."""
    return MODELS.register(fn.__name__, fn)


def list_models() -> list[str]:
    """Sorted names of the registered models."""
    return MODELS.names()


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The registered factory of model ``name``; ValueError listing the valid names otherwise."""
    return MODELS.get(name)


def create_model(name: str, attn=None, fusion=None, num_classes: int = 1000, weights=None, source: str = "auto", head: str = "keep",
                 **options) -> nn.Module:
    """Build model ``name`` with attention ``attn`` and fusion ``fusion`` in its blocks.

    ``attn`` / ``fusion`` are registered names (see ``list_attn()``, ``list_fusion()``), a
    callable ``channels -> nn.Module``, or ``None``. Their options go in ``attn_options`` /
    ``fusion_options`` dicts, the stages that get them in ``attn_stages`` / ``fusion_stages``;
    the rest of ``options`` reach the model constructor.

    ``weights``: a checkpoint to load (``.safetensors``, or ``.pth``/``.pt`` read with
    ``weights_only=True``) in the key layout of ``source`` — ``"auto"`` (detected), ``"torchvision"``,
    ``"timm"``, ``"cbam-authors"``, ``"attnzoo"`` (see :mod:`attnzoo.models.weights`); the source's
    module options are applied under any ``attn_options`` given. Strict: a mismatch is one
    ValueError; ``head="reinit"`` keeps a fresh classifier where the checkpoint has another
    number of classes. What was loaded is in ``model.weights_report``. A plain checkpoint with
    ``attn``/``fusion`` given is *retrofitted*: the new modules sit behind residual mixes at zero
    (:func:`attnzoo.retrofit`), so the model first computes exactly what the checkpoint computes.
    """
    if weights is not None:
        from .weights import create_pretrained

        def build(attn_options, model_options):
            kwargs = {**model_options, **options, **({"attn_options": attn_options} if attn_options else {})}
            return get_model_factory(name)(attn=attn, fusion=fusion, num_classes=num_classes, **kwargs)

        retrofit = options.pop("retrofit", None)  # None: decided by the checkpoint (plain + modules asked for)
        return create_pretrained(build, attn, weights, source, head, attn_options=options.pop("attn_options", None),
                                 retrofit=retrofit, adds_modules=attn is not None or fusion is not None)
    return get_model_factory(name)(attn=attn, fusion=fusion, num_classes=num_classes, **options)


def default_input_size(name: str) -> tuple[int, int]:
    """The (H, W) model ``name`` is built for, from its layout (built on the meta device: no memory,
    no init): 160×64 person crops (HA-CNN), 32×32 (CIFAR ResNets), 224×224 (ImageNet backbones)."""
    from .slots import layout_of

    with torch.device("meta"):
        return layout_of(create_model(name)).input_size

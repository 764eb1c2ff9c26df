"""Attention and fusion modules, and the registries that name them."""

from .cbam import CBAM, CBAMChannel, CBAMSpatial
from .hacnn import (
    HAChannelAttention,
    HardRegionAttention,
    HarmoniousAttention,
    HASoftAttention,
    HASpatialAttention,
    crop_regions,
)
from .mscam import AFF, IAFF, MSCAM, AddFusion
from .registry import (
    create_attn,
    create_fusion,
    get_attn_class,
    get_fusion_class,
    list_attn,
    list_fusion,
    register_attn,
    register_fusion,
)
from .se import SqueezeExcite
from .self_attn import NonLocal2d, SelfAttention2d

__all__ = [
    "AFF",
    "CBAM",
    "IAFF",
    "MSCAM",
    "AddFusion",
    "CBAMChannel",
    "CBAMSpatial",
    "HAChannelAttention",
    "HASoftAttention",
    "HASpatialAttention",
    "HardRegionAttention",
    "HarmoniousAttention",
    "NonLocal2d",
    "SelfAttention2d",
    "SqueezeExcite",
    "create_attn",
    "create_fusion",
    "crop_regions",
    "get_attn_class",
    "get_fusion_class",
    "list_attn",
    "list_fusion",
    "register_attn",
    "register_fusion",
]

"""Attention and fusion modules, and the registries that name them."""

from .bam import BAM
from .cbam import CBAM, CBAMChannel, CBAMSpatial, LightCBAM
from .coord import CoordAttention, EfficientLocalAttention, SimpleCoordAttention, StripAttention
from .eca import ECA, ECAM, CircularECA
from .gc import GlobalContext, GlobalContextScale
from .ge import GatherExcite
from .hacnn import (
    HAChannelAttention,
    HardRegionAttention,
    HarmoniousAttention,
    HASoftAttention,
    HASpatialAttention,
    crop_regions,
)
from .aff import AFF, IAFF, AddFusion
from .mscam import MSCAM
from .registry import (
    create_attn,
    create_conv,
    create_fusion,
    create_module,
    get_attn_class,
    get_conv_class,
    get_fusion_class,
    get_module_class,
    list_attn,
    list_conv,
    list_fusion,
    module_kind,
    register_attn,
    register_conv,
    register_fusion,
)
from .se import EffectiveSqueezeExcite, SqueezeExcite
from .sk import SelectiveKernelConv, SplitAttentionConv
from .sge import SpatialGroupEnhance
from .simam import SimAM
from .non_local import NonLocal2d
from .self_attn import SelfAttention2d
from .triplet import TripletAttention
from .bat import BilinearAttentionalTransform
from .botnet import BottleneckAttention
from .halo import HaloAttention
from .lambda_layer import LambdaLayer
from .a2net import DoubleAttention
from .ccnet import CrissCrossAttention
from .danet import DANetChannelAttention, DANetPositionAttention, DualAttention
from .ema import EfficientMultiScaleAttention
from .psa import PolarizedSelfAttention
from .shuffle import ShuffleAttention

__all__ = [
    "CrissCrossAttention",
    "DANetChannelAttention",
    "DANetPositionAttention",
    "DoubleAttention",
    "DualAttention",
    "EfficientMultiScaleAttention",
    "PolarizedSelfAttention",
    "ShuffleAttention",
    "BilinearAttentionalTransform",
    "BottleneckAttention",
    "CircularECA",
    "ECAM",
    "EfficientLocalAttention",
    "GlobalContextScale",
    "HaloAttention",
    "LambdaLayer",
    "LightCBAM",
    "SimpleCoordAttention",
    "StripAttention",
    "SelectiveKernelConv",
    "SplitAttentionConv",
    "create_conv",
    "create_module",
    "get_module_class",
    "module_kind",
    "get_conv_class",
    "list_conv",
    "register_conv",
    "BAM",
    "ECA",
    "CoordAttention",
    "EffectiveSqueezeExcite",
    "GatherExcite",
    "GlobalContext",
    "SimAM",
    "SpatialGroupEnhance",
    "TripletAttention",
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

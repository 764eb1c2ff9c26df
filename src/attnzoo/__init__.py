"""attnzoo: exact, tested visual attention modules for CNNs, and the models that use them."""

from .layers import create_attn, create_conv, create_fusion, list_attn, list_conv, list_fusion, register_attn, register_conv, register_fusion
from .models import create_model, list_models, register_model
from .models.retrofit import retrofit
from .models.weights import load_weights
from .utils import count_macs, count_params
from . import fused, viz  # attnzoo.fused.convert; attnzoo.viz.capture_attention, grad_cam (torch only)

from ._version import __version__

__all__ = [
    "__version__",
    "count_macs",
    "count_params",
    "create_attn",
    "create_conv",
    "create_fusion",
    "create_model",
    "fused",
    "list_attn",
    "list_conv",
    "list_fusion",
    "list_models",
    "load_weights",
    "register_attn",
    "register_conv",
    "register_fusion",
    "register_model",
    "retrofit",
    "viz",
]

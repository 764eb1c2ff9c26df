"""Backbones that take attention and fusion modules by name, and their factory."""

from .hacnn import HACNN
from .registry import create_model, default_input_size, list_models, register_model
from . import convnext, efficientnet, mobilenetv3  # noqa: F401  (register the models)
from .resnet import BasicBlock, Bottleneck, ResNet
from .spec import ModelSpec, parse_variant

__all__ = ["HACNN", "BasicBlock", "ModelSpec", "Bottleneck", "ResNet", "create_model", "default_input_size", "list_models", "parse_variant", "register_model"]

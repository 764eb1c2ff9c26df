"""Backbones that take attention and fusion modules by name, and their factory."""

from .hacnn import HACNN
from .registry import create_model, default_input_size, list_models, register_model
from .resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["HACNN", "BasicBlock", "Bottleneck", "ResNet", "create_model", "default_input_size", "list_models", "register_model"]

"""DANet: position attention, channel attention, and the dual-attention head that sums them."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.constraints import Choice
from ._base import AttentionModule, hidden_width
from .registry import register_attn
from .self_attn import DEFAULT_MAX_ATTN_ELEMENTS, SelfAttention2d

CAM_VARIANTS = ("paper", "official")


@register_attn("danet_position")
class DANetPositionAttention(SelfAttention2d):
    """DANet position attention module (PAM): every position attends to all positions.

    ``S = softmax(Bᵀ C)`` over the ``H·W`` keys with ``B, C = W_b x, W_c x`` (``C → C/8``),
    ``E = α · D Sᵀ + x`` with ``D = W_d x`` (``C → C``) and ``α = 0`` at init: the same equation as
    SAGAN's self-attention (:class:`SelfAttention2d`, whose options it takes: reduction 8,
    ``kv_stride``, and ``max_attn_elements``, the cap on ``(H·W)²`` logits per image above which a
    ``ValueError`` names the size rather than exhausting memory).

    Reference: Fu, Liu, Tian, Li, Bao, Fang, Lu. "Dual Attention Network for Scene Segmentation",
    CVPR 2019, arXiv:1809.02983 (Sec. 3.2, Eq. 1-2).
    """

    placement = "head"  # in a ResNet: once, after the last stage (the paper's segmentation head)


@register_attn("danet_channel")
class DANetChannelAttention(AttentionModule):
    """DANet channel attention module (CAM): every channel is a mix of the channels it resembles.

    With ``A`` the input as a ``C × H·W`` matrix: ``X = softmax(A Aᵀ)`` row-wise (``C × C``, no
    projections), ``E = β · X A + A`` with ``β = 0`` at init (the block starts as the identity).

    Args: channels ``C``; variant: ``"paper"`` (default: the equation above) or ``"official"``:
    the authors' code, which takes the softmax of ``rowmax(A Aᵀ) − A Aᵀ`` — the same as
    ``softmax(−A Aᵀ)``, so each channel gathers from the channels *least* like it. The published
    numbers come from that code; the paper's equation is the default here.

    Reference: Fu et al., CVPR 2019, arXiv:1809.02983 (Sec. 3.3, Eq. 3-4).
    """

    identity_at_init = True
    placement = "head"

    option_rules = {"variant": Choice(CAM_VARIANTS)}

    def __init__(self, channels: int, variant: str = "paper") -> None:
        super().__init__(channels)
        self.variant = variant
        self.gate = nn.Softmax(dim=-1)
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        a = x.flatten(2)  # (N, C, HW)
        with torch.autocast(device_type=x.device.type, enabled=False):
            a32 = a.to(torch.promote_types(a.dtype, torch.float32))
            energy = a32 @ a32.transpose(1, 2)  # (N, C, C)
            attn = self.gate(energy if self.variant == "paper" else -energy)
        return x + self.beta * (attn.to(a.dtype) @ a).view_as(x)


def conv3x3_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


@register_attn("danet")
class DualAttention(AttentionModule):
    """DANet's dual-attention head as a residual block: position and channel attention, summed.

    Each branch: ``conv3×3-BN-ReLU`` (``C → m``), its attention module (:class:`DANetPositionAttention`
    or :class:`DANetChannelAttention`), ``conv3×3-BN-ReLU`` (``m → m``); the two are summed and a
    1×1 conv ``W_o`` (``m → C``) brings the sum back: ``y = x + W_o(P + Q)``. ``W_o`` starts at
    zero, so the head starts as the identity and can follow a pretrained backbone.

    Args: channels ``C``; reduction: ``m = max(min_hidden, C // reduction)`` (default 4, the
    paper's C/4; min_hidden 8); cam_variant: see :class:`DANetChannelAttention`;
    max_attn_elements: the position attention's size cap.

    Reference: Fu et al., CVPR 2019, arXiv:1809.02983 (Fig. 2). The paper's head ends in a
    per-branch dropout + 1×1 classifier for segmentation; here ``W_o`` replaces the classifier so
    the head fits into any classification backbone (placement: after the last stage).
    """

    identity_at_init = True
    placement = "head"

    option_rules = {"cam_variant": DANetChannelAttention.option_rules["variant"]}

    def __init__(self, channels: int, reduction: float = 4, min_hidden: int = 8, cam_variant: str = "paper",
                 max_attn_elements: int = DEFAULT_MAX_ATTN_ELEMENTS) -> None:
        super().__init__(channels)
        m = hidden_width(channels, reduction, min_hidden)
        self.position = nn.Sequential(
            conv3x3_bn_relu(channels, m), DANetPositionAttention(m, max_attn_elements=max_attn_elements), conv3x3_bn_relu(m, m))
        self.channel = nn.Sequential(conv3x3_bn_relu(channels, m), DANetChannelAttention(m, cam_variant), conv3x3_bn_relu(m, m))
        self.project = nn.Conv2d(m, channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return x + self.project(self.position(x) + self.channel(x))

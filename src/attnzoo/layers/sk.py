"""Attention inside the convolution: selective kernel (SKNet) and split attention (ResNeSt).

Both replace a bottleneck's 3×3 convolution (and the BN + ReLU after it): select them with
``create_model(..., conv="sk")`` / ``conv="splat"``. Constructor: ``(channels, out_channels=None,
stride=1, ...)``; with the defaults the output has the input's shape.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import ConvReplacement, divisible_groups, hidden_width
from .registry import register_conv


@register_conv("sk")
class SelectiveKernelConv(ConvReplacement):
    """Selective kernel convolution: a soft choice, per channel, between receptive-field sizes.

    M paths ``U_m = ReLU(BN(conv3×3_dilation=m(x)))`` (grouped, G groups; dilation m gives a
    (2m+1)×(2m+1) field), summed ``U = Σ U_m``; ``z = ReLU(BN(W_z GAP(U)))`` (``C → d``);
    ``a = softmax_m(W_m z)`` per channel; ``V = Σ_m a_m ⊙ U_m``.
    ``d = max(min_hidden, C // reduction)``.

    Args: channels (in); out_channels (default = in); stride; paths M (2); groups G (32);
    reduction r (16); min_hidden L (32). Matches the paper's SK[M=2, G=32, r=16, L=32] unit.

    Reference: Li, Wang, Hu, Yang. "Selective Kernel Networks", CVPR 2019, arXiv:1903.06586 (Sec. 3.1).
    """

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, paths: int = 2,
                 groups: int = 32, reduction: float = 16, min_hidden: int = 32) -> None:
        super().__init__(channels, out_channels, stride)
        out = self.out_channels
        g = divisible_groups(channels, out, groups)
        self.paths = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, out, 3, stride, padding=d, dilation=d, groups=g, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True))
            for d in range(1, paths + 1)
        )
        hidden = hidden_width(out, reduction, min_hidden)
        self.fc = nn.Sequential(nn.Conv2d(out, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.fc_select = nn.Conv2d(hidden, out * paths, 1, bias=False)
        self.gate = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        feats = torch.stack([path(x) for path in self.paths], dim=1)  # (N, M, C, H, W)
        z = self.fc(feats.sum(1).mean((2, 3), keepdim=True))
        n, m, c = feats.shape[:3]
        a = self.gate(self.fc_select(z).view(n, m, c, 1, 1))
        return (feats * a).sum(1)


@register_conv("splat")
class SplitAttentionConv(ConvReplacement):
    """ResNeSt split attention: a radix-way grouped conv whose splits are mixed by a softmax gate.

    ``U = ReLU(BN(conv3×3(x)))`` with ``R·C`` output channels in ``R`` groups (``R`` = radix),
    split into ``U_1..U_R``; ``z = ReLU(BN(W_1 GAP(Σ_r U_r)))`` (``C → d``);
    ``a = softmax_r(W_2 z)`` per channel (sigmoid when ``R = 1``); ``V = Σ_r a_r ⊙ U_r``.
    ``d = max(min_hidden, R·C // reduction)``. With ``avd`` and stride 2, the conv runs at stride
    1 and a 3×3/2 average pool follows (ResNeSt's "avd"). Cardinality 1 (ResNeSt-50 1s2x64d).

    Args: channels (in); out_channels (default = in); stride; radix R (2); reduction (4);
    min_hidden (32); avd (True).

    Reference: Zhang, Wu, Zhang, et al. "ResNeSt: Split-Attention Networks", CVPR Workshops 2022,
    arXiv:2004.08955 (Fig. 2, Sec. 3).
    """

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, radix: int = 2,
                 reduction: float = 4, min_hidden: int = 32, avd: bool = True) -> None:
        super().__init__(channels, out_channels, stride)
        out = self.out_channels
        self.radix = radix
        self.avd = nn.AvgPool2d(3, stride, padding=1) if avd and stride > 1 else None
        conv_stride = 1 if self.avd is not None else stride
        g = divisible_groups(channels, out * radix, radix)
        self.conv = nn.Conv2d(channels, out * radix, 3, conv_stride, padding=1, groups=g, bias=False)
        self.bn0 = nn.BatchNorm2d(out * radix)
        self.act0 = nn.ReLU(inplace=True)
        hidden = hidden_width(out * radix, reduction, min_hidden)
        self.fc1 = nn.Conv2d(out, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, out * radix, 1)
        self.gate = nn.Softmax(dim=1) if radix > 1 else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        u = self.act0(self.bn0(self.conv(x)))
        n, _, h, w = u.shape
        splits = u.view(n, self.radix, self.out_channels, h, w)
        z = self.act1(self.bn1(self.fc1(splits.sum(1).mean((2, 3), keepdim=True))))
        a = self.gate(self.fc2(z).view(n, self.radix, self.out_channels, 1, 1))
        out = (splits * a).sum(1)
        return self.avd(out) if self.avd is not None else out

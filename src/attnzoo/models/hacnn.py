"""HA-CNN: the Harmonious Attention CNN for person re-identification (Li et al., CVPR 2018)."""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.hacnn import REGION_SAMPLING, ConvBlock, HarmoniousAttention, crop_regions
from .registry import register_model
from .slots import Layout


class InceptionA(nn.Module):
    """Four streams of ``out/4`` channels: two 1×1→3×3, one more 1×1→3×3, and avg-pool→1×1."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 4
        self.stream1 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream2 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream3 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream4 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBlock(in_channels, mid, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x), self.stream4(x)], dim=1)


class InceptionB(nn.Module):
    """Reduction block (stride 2): 1×1→3×3/2, 1×1→3×3→3×3/2, and max-pool/2→1×1 (``out/2``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 4
        self.stream1 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, stride=2, padding=1))
        self.stream2 = nn.Sequential(
            ConvBlock(in_channels, mid, 1),
            ConvBlock(mid, mid, 3, padding=1),
            ConvBlock(mid, mid, 3, stride=2, padding=1),
        )
        self.stream3 = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), ConvBlock(in_channels, mid * 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x)], dim=1)


class HACNN(nn.Module):
    """Harmonious Attention CNN: a global stream with soft attention and a local stream of K
    hard-attention regions, jointly learned.

    Input ``(N, 3, 160, 64)``. Each of three levels is InceptionA + InceptionB followed by
    :class:`HarmoniousAttention`; the global stream continues on ``x ⊙ A``, the local stream
    crops K horizontal stripes (given by θ) of the previous level's global features, resizes
    them to a fixed size, adds them to its own previous output and applies a shared
    InceptionB per level. Each stream ends in a 512-d embedding (Linear + BN + ReLU).

    ``forward`` returns ``(global_logits, local_logits)`` in train mode and the 1024-d
    feature ``[ĝ; l̂]`` (each half L2-normalised) in eval mode. With 751 classes
    (Market-1501) the model has 3,699,638 parameters, as torchreid's.

    Reference: Li, Zhu, Gong. "Harmonious Attention Network for Person Re-Identification",
    CVPR 2018, arXiv:1802.08122. Differences from torchreid: regions are sampled directly at
    the local stream's size (torchreid samples at full size, then resizes: ``region_sampling=
    "torchreid"``, which a torchreid checkpoint selects), and the input size is checked with a
    ``ValueError``.
    """

    input_size = (160, 64)
    # Size of each level's region crops, as in the reference implementation.
    region_sizes = ((24, 28), (12, 14), (6, 7))

    def __init__(
        self,
        num_classes: int = 751,
        channels: Sequence[int] = (128, 256, 384),
        feat_dim: int = 512,
        num_regions: int = 4,
        region_sampling: str = "direct",
    ) -> None:
        super().__init__()
        if region_sampling not in REGION_SAMPLING:
            raise ValueError(f"HACNN: region_sampling must be one of {', '.join(REGION_SAMPLING)}, got {region_sampling!r}")
        self.region_sampling = region_sampling
        c1, c2, c3 = channels
        self.num_classes = num_classes
        self.num_regions = num_regions
        self.conv = ConvBlock(3, 32, 3, stride=2, padding=1)
        self.inception1 = nn.Sequential(InceptionA(32, c1), InceptionB(c1, c1))
        self.ha1 = HarmoniousAttention(c1, num_regions)
        self.inception2 = nn.Sequential(InceptionA(c1, c2), InceptionB(c2, c2))
        self.ha2 = HarmoniousAttention(c2, num_regions)
        self.inception3 = nn.Sequential(InceptionA(c2, c3), InceptionB(c3, c3))
        self.ha3 = HarmoniousAttention(c3, num_regions)
        self.layout = Layout(stem=("conv",), stages=(("inception1",), ("inception2",), ("inception3",)), feature_layer="inception3",
                             head=("classifier_global", "classifier_local"), input_size=(160, 64))
        self.fc_global = nn.Sequential(nn.Linear(c3, feat_dim), nn.BatchNorm1d(feat_dim), nn.ReLU(inplace=True))
        self.classifier_global = nn.Linear(feat_dim, num_classes)
        self.local_conv1 = InceptionB(32, c1)
        self.local_conv2 = InceptionB(c1, c2)
        self.local_conv3 = InceptionB(c2, c3)
        self.fc_local = nn.Sequential(
            nn.Linear(c3 * num_regions, feat_dim), nn.BatchNorm1d(feat_dim), nn.ReLU(inplace=True)
        )
        self.classifier_local = nn.Linear(feat_dim, num_classes)
        self.num_features = 2 * feat_dim

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global and local embeddings, each ``(N, feat_dim)``."""
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"HACNN: expected input of shape (N, 3, 160, 64), got {tuple(x.shape)}")
        x = self.conv(x)
        local: Union[list[torch.Tensor], None] = None
        levels = zip(
            (self.inception1, self.inception2, self.inception3),
            (self.ha1, self.ha2, self.ha3),
            (self.local_conv1, self.local_conv2, self.local_conv3),
            self.region_sizes,
        )
        for inception, harm, local_conv, size in levels:
            features = inception(x)
            soft, theta = harm(features)
            # Regions are cut from the input of this level (the previous level's attended output).
            regions = crop_regions(x, theta, size, self.region_sampling)
            if local is None:
                local = [local_conv(r) for r in regions]
            else:
                local = [local_conv(r + prev) for r, prev in zip(regions, local)]
            x = features * soft
        global_feat = self.fc_global(x.mean((2, 3)))
        local_feat = self.fc_local(torch.cat([r.mean((2, 3)) for r in local], dim=1))
        return global_feat, local_feat

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores in any mode: the sum of the global and local classifiers' logits."""
        global_feat, local_feat = self.forward_features(x)
        return self.classifier_global(global_feat) + self.classifier_local(local_feat)

    def forward(self, x: torch.Tensor):
        global_feat, local_feat = self.forward_features(x)
        if not self.training:
            return torch.cat([F.normalize(global_feat, dim=1), F.normalize(local_feat, dim=1)], dim=1)
        return self.classifier_global(global_feat), self.classifier_local(local_feat)


@register_model
def hacnn(attn=None, fusion=None, num_classes: int = 1000, **kwargs) -> HACNN:
    """HA-CNN for 160×64 person crops (its attention is built in: ``attn``/``fusion`` must be None)."""
    if attn is not None or fusion is not None:
        raise ValueError("hacnn has its own harmonious attention; attn and fusion must be None")
    return HACNN(num_classes=num_classes, **kwargs)

"""Training configuration: one dataclass, saved with every run and checkpoint.

Its defaults are *the* recipe, shared by ``attnzoo train`` and ``attnzoo compare``: SGD with
momentum at batch 32, peak learning rate 0.05 scaled linearly with the batch size (Goyal et al.
2017: 0.2 at 128), half an epoch of warm-up, cosine decay, 8 epochs. Chosen by measurement on the
embedded digits (docs/recipe.md): at compare's former lr 0.1 with batch 32 (4× the usual
lr-to-batch ratio) and 4 epochs, plain ResNet-8 stayed at chance on some seeds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..models.spec import ModelSpec

CHECKPOINT_FORMAT = "attnzoo-checkpoint-v2"  # v2: CBAM's default spatial gate is the authors' (v1: the paper's)
LR_PER_32 = 0.05  # the recipe's peak learning rate at batch size 32

@dataclass
class TrainConfig:
    # model
    model: str = "cifar_resnet8"
    attn: Optional[str] = None
    fusion: Optional[str] = None
    conv: Optional[str] = None  # 3×3-conv replacement: sk, splat (bottleneck models)
    attn_options: dict[str, Any] = field(default_factory=dict)
    fusion_options: dict[str, Any] = field(default_factory=dict)
    conv_options: dict[str, Any] = field(default_factory=dict)
    attn_stages: Optional[list[int]] = None
    fusion_stages: Optional[list[int]] = None
    model_options: dict[str, Any] = field(default_factory=dict)
    # data
    dataset: str = "digits"
    data_root: Optional[str] = None
    image_size: int = 64  # imagefolder only
    train_size: Optional[int] = None  # digits only: images to generate
    test_size: Optional[int] = None
    data_seed: int = 0  # digits only: the dataset's own seed, fixed across training seeds
    augment: bool = True
    allow_empty_classes: bool = False  # imagefolder: warn instead of refusing class folders without images
    # optimisation
    epochs: int = 8
    batch_size: int = 32  # global: split across ranks under torchrun
    lr: Optional[float] = None  # peak lr; None: LR_PER_32 × batch_size / 32
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # or "onecycle"
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.0
    # fine-tuning a pretrained network (attention and fusion retrofitted at γ = 0)
    init_from: Optional[str] = None  # a plain checkpoint: .safetensors / .pth / an attnzoo run's weights
    init_source: str = "auto"  # its key layout: auto, attnzoo, torchvision, timm, cbam-authors
    backbone_lr_scale: float = 0.1  # lr of the pretrained parameters relative to the new modules' and head's
    freeze_stages: int = 0  # stem and the first N stages frozen
    # execution
    amp: bool = False
    amp_dtype: Optional[str] = None  # default: bf16 on CPU, fp16 on CUDA
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    device: str = "auto"
    threads: Optional[int] = None
    seed: int = 0
    deterministic: bool = False
    eval_batch_size: int = 512
    out: str = "runs/train"
    resume: bool = False
    overwrite: bool = False  # replace a run already in ``out``
    progress: bool = True

    def spec(self) -> ModelSpec:
        """The model this run trains (fine-tuning: with its attention retrofitted, see attnzoo.retrofit)."""
        spec = ModelSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ModelSpec)})
        if self.init_from and (self.attn or self.fusion) and "retrofit" not in spec.model_options:
            spec = dataclasses.replace(spec, model_options={**spec.model_options, "retrofit": True})
        return spec

    @property
    def peak_lr(self) -> float:
        """The peak learning rate: ``lr``, or the recipe's ``LR_PER_32`` scaled to the batch size."""
        return self.lr if self.lr is not None else LR_PER_32 * self.batch_size / 32

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any], checkpoint_format: str) -> "TrainConfig":
        """The config stored in a checkpoint of ``checkpoint_format``, read as that version meant it."""
        data = dict(data)
        if checkpoint_format == "attnzoo-checkpoint-v1":
            # v1 (before CBAM's default became the authors' BN spatial gate): plain "cbam" meant the paper form.
            if data.get("attn") in ("cbam", "cbam_spatial") and "variant" not in (data.get("attn_options") or {}):
                data["attn_options"] = {**(data.get("attn_options") or {}), "variant": "paper"}
        elif checkpoint_format != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown checkpoint format {checkpoint_format!r} (this attnzoo reads attnzoo-checkpoint-v1 and {CHECKPOINT_FORMAT})")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> None:
        if self.schedule not in ("cosine", "onecycle"):
            raise ValueError(f"schedule must be 'cosine' or 'onecycle', got {self.schedule!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs} and {self.batch_size}")
        if self.amp_dtype not in (None, "bf16", "fp16"):
            raise ValueError(f"amp_dtype must be 'bf16' or 'fp16', got {self.amp_dtype!r}")
        if not 0.0 <= self.backbone_lr_scale:
            raise ValueError(f"backbone_lr_scale must be ≥ 0, got {self.backbone_lr_scale}")
        if self.freeze_stages < 0:
            raise ValueError(f"freeze_stages must be ≥ 0, got {self.freeze_stages}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

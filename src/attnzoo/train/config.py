"""Training configuration: one dataclass, saved with every run and checkpoint.

Its defaults are *the* recipe, shared by ``attnzoo train`` and ``attnzoo compare``: SGD with
momentum at batch 32, peak learning rate 0.05 scaled linearly with the batch size (Goyal et al.
2017: 0.2 at 128), one epoch of linear warm-up, cosine decay, 8 epochs. Chosen by measurement on
the embedded digits: at compare's former lr 0.1 with batch 32 (4× the usual lr-to-batch ratio) and 4
epochs, plain ResNet-8 stayed at chance on some seeds (docs/results/recipe/); with half an epoch of
warm-up, plain ResNet-20 did on one seed in five (docs/results/warmup/).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..models.spec import ModelSpec

CHECKPOINT_FORMAT = "attnzoo-checkpoint-v2"  # v2: CBAM's default spatial gate is the authors' (v1: the paper's)
LR_PER_32 = 0.05  # the recipe's peak learning rate at batch size 32

def option(default: Any = None, help: str = "", group: str = "", *, factory: Any = None, flag: Optional[str] = None, compare: bool = True,
           positive: bool = False, choices: Optional[tuple] = None, metavar: Optional[str] = None, kind: Optional[str] = None) -> Any:
    """A config field with what its command-line flag needs (help written once, here); ``cli``
    generates ``attnzoo train`` and ``attnzoo compare`` flags from these. ``compare=False``: the
    field is set per run or per variant, not shared by a comparison."""
    metadata = {"help": help, "group": group, "flag": flag, "compare": compare, "positive": positive, "choices": choices,
                "metavar": metavar, "kind": kind}
    return field(default_factory=factory, metadata=metadata) if factory else field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    # model (a ModelSpec's fields: see spec())
    model: str = option("cifar_resnet8", "model name; see `attnzoo list`", "model")
    attn: Optional[str] = option(None, "attention module in every block", "model", compare=False)
    fusion: Optional[str] = option(None, "fusion module replacing each residual addition", "model", compare=False)
    conv: Optional[str] = option(None, "3×3-conv replacement in the bottlenecks: sk, splat, lambda (every stage), bottleneck, halo (last stage)",
                                 "model", compare=False)
    attn_options: dict[str, Any] = option(help="attention option, repeatable (e.g. reduction=8)", group="model", factory=dict,
                                          flag="--attn-opt", compare=False, kind="options")
    fusion_options: dict[str, Any] = option(help="fusion option, repeatable (e.g. scale=2)", group="model", factory=dict,
                                            flag="--fusion-opt", compare=False, kind="options")
    conv_options: dict[str, Any] = option(help="conv replacement option, repeatable (e.g. radix=4)", group="model", factory=dict,
                                          flag="--conv-opt", compare=False, kind="options")
    attn_stages: Optional[list[int]] = option(None, "stages (1-based) that get attention (default all)", "model", compare=False, kind="stages")
    fusion_stages: Optional[list[int]] = option(None, "stages (1-based) that get fusion (default all)", "model", compare=False, kind="stages")
    model_options: dict[str, Any] = option(help="model option, repeatable (e.g. zero_init_residual=true)", group="model", factory=dict,
                                           flag="--model-opt", kind="options")
    # data
    dataset: str = option("digits", "digits (embedded), cifar10, cifar100 or imagefolder", "data")
    data_root: Optional[str] = option(None, "folder of a cifar10/cifar100/imagefolder dataset", "data")
    image_size: int = option(64, "imagefolder: side of the resized, centre-cropped images", "data", positive=True)
    train_size: Optional[int] = option(None, "digits: training images to generate (default 5000)", "data", positive=True)
    test_size: Optional[int] = option(None, "digits: test images to generate (default 2000)", "data", positive=True)
    data_seed: int = option(0, "digits: the dataset's own seed, fixed across training seeds", "data")
    augment: bool = option(True, "no random crop / flip", "data", flag="--no-augment")
    allow_empty_classes: bool = option(False, "imagefolder: warn about class folders without images instead of refusing", "data")
    # optimisation
    epochs: int = option(8, "epochs", "optimisation", positive=True)
    batch_size: int = option(32, "global batch size, split across torchrun ranks", "optimisation", positive=True)
    lr: Optional[float] = option(None, "peak learning rate of SGD with momentum (default 0.05 × batch size / 32)", "optimisation")
    momentum: float = option(0.9, "SGD momentum", "optimisation")
    weight_decay: float = option(5e-4, "on conv/linear weights only (not BN, biases)", "optimisation")
    schedule: str = option("cosine", "learning-rate schedule after the warm-up", "optimisation", choices=("cosine", "onecycle"))
    warmup_epochs: float = option(1.0, "linear warm-up", "optimisation")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy", "optimisation")
    # fine-tuning a pretrained network (attention and fusion retrofitted at γ = 0)
    init_from: Optional[str] = option(None, "start from a plain network's weights (.safetensors/.pth); --attn/--fusion are retrofitted "
                                      "behind residual mixes at zero, so the first evaluation (epoch 0) equals the plain network's",
                                      "fine-tuning a pretrained network", metavar="CHECKPOINT")
    init_source: str = option("auto", "key layout of --init-from: auto, attnzoo, torchvision, timm, cbam-authors", "fine-tuning a pretrained network")
    backbone_lr_scale: float = option(0.1, "learning rate of the pretrained parameters relative to the new modules and head",
                                      "fine-tuning a pretrained network")
    freeze_stages: int = option(0, "freeze the stem and the first N stages", "fine-tuning a pretrained network")
    # execution
    amp: bool = option(False, "autocast: bf16 on CPU, fp16 on CUDA (see --amp-dtype)", "execution")
    amp_dtype: Optional[str] = option(None, "autocast dtype", "execution", choices=("bf16", "fp16"))
    channels_last: bool = option(False, "channels-last memory format", "execution")
    compile: bool = option(False, "torch.compile the model", "execution")
    sync_bn: bool = option(False, "SyncBatchNorm across torchrun ranks (CUDA only)", "execution")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, mps", "execution")
    threads: Optional[int] = option(None, "torch CPU threads (compare: one per run, one run per core)", "execution", positive=True)
    seed: int = option(0, "seed of the model's initialisation, data order and augmentation", "execution", compare=False)
    deterministic: bool = option(False, "torch.use_deterministic_algorithms", "execution")
    eval_batch_size: int = option(512, "evaluation batch size", "execution", positive=True)
    eval_subset: Optional[int] = option(1000, "test images scored after each epoch but the last (the last: all of them); "
                                        "0 scores all every epoch", "execution")
    out: str = option("runs/train", "run folder", "execution", compare=False)
    resume: bool = option(False, "continue the run in --out from its newest verified checkpoint, with the run's own config "
                          "(only --epochs may grow; execution flags such as --threads may change)", "execution", compare=False)
    overwrite: bool = option(False, "replace a run already in --out (default: refuse)", "execution", compare=False)
    progress: bool = option(True, "no progress bar", "execution", flag="--no-progress")

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

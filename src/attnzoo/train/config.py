"""Training configuration: what to build (a ``ModelSpec``) and how to train it (data, optimisation,
fine-tuning and execution parts), saved with every run and checkpoint.

Its defaults are *the* recipe, shared by ``attnzoo train`` and ``attnzoo compare``: SGD with
momentum at batch 32, peak learning rate 0.05 scaled linearly with the batch size (Goyal et al.
2017: 0.2 at 128), one epoch of linear warm-up, cosine decay, 8 epochs. Chosen by measurement on
the embedded digits: at compare's former lr 0.1 with batch 32 (4× the usual lr-to-batch ratio) and 4
epochs, plain ResNet-8 stayed at chance on some seeds (docs/results/recipe/); with half an epoch of
warm-up, plain ResNet-20 did on one seed in five (docs/results/warmup/). On 24 fresh seeds every
plain ResNet-8 run left the loss plateau at chance within 3 epochs under this recipe; lr 0.1 left one
on it until epoch 5, lr 0.025 trained 4.8 points worse (docs/results/plateau/).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from ..data import get_dataset
from ..models.spec import ModelSpec
from ..utils.constraints import Choice, Integer, Number
from ..utils.options import option

CHECKPOINT_FORMAT = "attnzoo-checkpoint-v3"
# What a module's empty options meant in each older format, where a default changed since: a
# config stored by format F gets every upgrade from F on, so its weights load into the form they
# were trained in. v2: CBAM's spatial gate became the authors' (BN); v3: ECAM lost its biases and
# SGE's groups hold at least four channels.
UPGRADES: list[tuple[str, tuple[str, ...], str, Any]] = [
    ("attnzoo-checkpoint-v1", ("cbam", "cbam_spatial"), "variant", "paper"),
    ("attnzoo-checkpoint-v2", ("ecam",), "bias", True),
    ("attnzoo-checkpoint-v2", ("sge",), "min_group_channels", 1),
]
FORMATS = ("attnzoo-checkpoint-v1", "attnzoo-checkpoint-v2", CHECKPOINT_FORMAT)
LR_PER_32 = 0.05  # the recipe's peak learning rate at batch size 32

COUNT, NON_NEGATIVE = Integer(minimum=1), Integer(minimum=0)
LEGACY_DATA_OPTIONS = ("image_size", "allow_empty_classes")  # flat fields once, imagefolder's options now
FRACTION = Number(minimum=0, maximum=1, closed_max=False)


@dataclass
class DataConfig:
    dataset: str = option("digits", "digits (embedded), fashion-mnist, mnist, cifar10, cifar100 or imagefolder", "data")
    data_root: Optional[str] = option(None, "folder of the dataset's files (fashion-mnist: default /usr/share/datasets/fashion-mnist, "
                                      "apt-get install dataset-fashion-mnist)", "data")
    train_size: Optional[int] = option(None, "digits: training images to generate (default 5000); fashion-mnist, mnist: "
                                       "a random subset of the 60,000", "data", rule=COUNT)
    test_size: Optional[int] = option(None, "digits: test images to generate (default 2000); fashion-mnist, mnist: a subset "
                                      "of the 10,000", "data", rule=COUNT)
    data_seed: int = option(0, "digits: the dataset's own seed; fashion-mnist, mnist: which subset; fixed across training seeds", "data",
                            rule=NON_NEGATIVE)
    augment: bool = option(True, "no random crop / flip", "data", flag="--no-augment")
    data_options: dict[str, Any] = option(help="dataset option, repeatable (imagefolder: image_size=64, the side of the resized, "
                                          "centre-cropped images; allow_empty_classes=true, warn about class folders without "
                                          "images instead of refusing); `attnzoo list` shows each dataset's", group="data",
                                          factory=dict, flag="--data-opt", kind="options")

    def dataset_options(self, dataset: Optional[str] = None) -> dict[str, Any]:
        """The options to load ``dataset`` with (default: this config's): its own, none for another."""
        return dict(self.data_options) if dataset in (None, self.dataset) else {}


@dataclass
class OptimConfig:
    epochs: int = option(8, "epochs", "optimisation", rule=COUNT)
    batch_size: int = option(32, "global batch size, split across torchrun ranks", "optimisation", rule=COUNT)
    lr: Optional[float] = option(None, "peak learning rate of SGD with momentum (default 0.05 × batch size / 32)", "optimisation",
                                 rule=Number(minimum=0, closed_min=False))
    momentum: float = option(0.9, "SGD momentum", "optimisation", rule=FRACTION)
    weight_decay: float = option(5e-4, "on conv/linear weights only (not BN, biases)", "optimisation", rule=Number(minimum=0))
    schedule: str = option("cosine", "learning-rate schedule after the warm-up", "optimisation", choices=("cosine", "onecycle"))
    warmup_epochs: float = option(1.0, "linear warm-up", "optimisation", rule=Number(minimum=0))
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy", "optimisation", rule=FRACTION)

    @property
    def peak_lr(self) -> float:
        """The peak learning rate: ``lr``, or the recipe's ``LR_PER_32`` scaled to the batch size."""
        return self.lr if self.lr is not None else LR_PER_32 * self.batch_size / 32


@dataclass
class FinetuneConfig:
    """Fine-tuning a pretrained network (attention and fusion retrofitted at γ = 0)."""

    init_from: Optional[str] = option(None, "start from a plain network's weights (.safetensors/.pth); --attn/--fusion are retrofitted "
                                      "behind residual mixes at zero, so the first evaluation (epoch 0) equals the plain network's",
                                      "fine-tuning a pretrained network", metavar="CHECKPOINT")
    init_source: str = option("auto", "key layout of --init-from: auto, attnzoo, torchvision, timm, cbam-authors", "fine-tuning a pretrained network")
    backbone_lr_scale: float = option(0.1, "learning rate of the pretrained parameters relative to the new modules and head",
                                      "fine-tuning a pretrained network", rule=Number(minimum=0))
    freeze_stages: int = option(0, "freeze the stem and the first N stages", "fine-tuning a pretrained network", rule=NON_NEGATIVE)


@dataclass
class ExecutionConfig:
    amp: bool = option(False, "autocast: bf16 on CPU, fp16 on CUDA (see --amp-dtype)", "execution")
    amp_dtype: Optional[str] = option(None, "autocast dtype", "execution", choices=("bf16", "fp16"))
    channels_last: bool = option(False, "channels-last memory format", "execution")
    compile: bool = option(False, "torch.compile the model", "execution")
    sync_bn: bool = option(False, "SyncBatchNorm across torchrun ranks (CUDA only)", "execution")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, mps", "execution", execution_only=True)
    threads: Optional[int] = option(None, "torch CPU threads (compare: one per run, one run per core)", "execution", rule=COUNT, execution_only=True)
    seed: int = option(0, "seed of the model's initialisation, data order and augmentation", "execution", compare=False, rule=NON_NEGATIVE)
    deterministic: bool = option(False, "torch.use_deterministic_algorithms", "execution")
    eval_batch_size: int = option(512, "evaluation batch size", "execution", rule=COUNT, execution_only=True)
    eval_subset: Optional[int] = option(1000, "test images scored after each epoch but the last (the last: all of them); "
                                        "0 scores all every epoch", "execution", rule=NON_NEGATIVE, execution_only=True)
    out: str = option("runs/train", "run folder", "execution", compare=False, execution_only=True)
    resume: bool = option(False, "continue the run in --out from its newest verified checkpoint, with the run's own config "
                          "(only --epochs may grow; execution flags such as --threads may change)", "execution", compare=False, execution_only=True)
    overwrite: bool = option(False, "replace a run already in --out (default: refuse)", "execution", compare=False, execution_only=True)
    progress: bool = option(True, "no progress bar", "execution", flag="--no-progress", execution_only=True)


@dataclass
class TrainConfig:
    """One training run: the model to build, then the data, optimisation, fine-tuning and execution
    parts. Every field name is unique across the parts, so the stored form (``to_dict``:
    ``config.json``, checkpoint metadata) and the command line are flat; ``TrainConfig.of(epochs=2,
    attn="se")`` builds one from flat fields, ``cfg.replace(seed=3)`` changes some."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    @staticmethod
    def fields() -> Iterator[tuple[str, dataclasses.Field]]:
        """Every (part, field) of a training config, in command-line order."""
        for part in dataclasses.fields(TrainConfig):
            for f in dataclasses.fields(part.default_factory):  # type: ignore[arg-type]
                yield part.name, f

    @classmethod
    def of(cls, **flat: Any) -> "TrainConfig":
        """A config from flat fields (``epochs=2, attn="se", out="runs/x"``); the rest are defaults."""
        return cls().replace(**flat)

    def replace(self, **flat: Any) -> "TrainConfig":
        """A copy with some flat fields changed; an unknown name is a ValueError naming it."""
        part_of = {f.name: part for part, f in self.fields()}
        unknown = sorted(set(flat) - set(part_of))
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        changes: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            changes.setdefault(part_of[name], {})[name] = value
        return dataclasses.replace(self, **{part: dataclasses.replace(getattr(self, part), **values) for part, values in changes.items()})

    def spec(self) -> ModelSpec:
        """The model this run trains (fine-tuning: with its attention retrofitted, see attnzoo.retrofit)."""
        spec = self.model
        if self.finetune.init_from and (spec.attn or spec.fusion) and "retrofit" not in spec.model_options:
            spec = dataclasses.replace(spec, model_options={**spec.model_options, "retrofit": True})
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field, flat (stages as lists, as JSON holds them)."""
        flat: dict[str, Any] = {}
        for part, f in self.fields():
            value = getattr(getattr(self, part), f.name)
            flat[f.name] = list(value) if isinstance(value, tuple) else value
        return json.loads(json.dumps(flat))  # plain JSON values, no shared dicts with self

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any], checkpoint_format: str) -> "TrainConfig":
        """The config stored in a checkpoint of ``checkpoint_format``, read as that version meant it."""
        if checkpoint_format not in FORMATS:
            raise ValueError(f"unknown checkpoint format {checkpoint_format!r} (this attnzoo reads {', '.join(FORMATS)})")
        data = dict(data)
        for since, modules, key, value in UPGRADES:
            if FORMATS.index(checkpoint_format) <= FORMATS.index(since) and data.get("attn") in modules and key not in (data.get("attn_options") or {}):
                data["attn_options"] = {**(data.get("attn_options") or {}), key: value}
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """A config from its stored (flat) form. Forms stored before dataset options were written
        ``image_size`` and ``allow_empty_classes`` flat; they are imagefolder's options where they
        differ from its defaults (so an old default run equals a new one), and dropped elsewhere."""
        data = dict(data)
        legacy = {key: data.pop(key) for key in LEGACY_DATA_OPTIONS if key in data}
        defaults = get_dataset("imagefolder").options()
        legacy = {key: value for key, value in legacy.items() if value != defaults[key]}
        if legacy and data.get("dataset", DataConfig.dataset) == "imagefolder":
            data["data_options"] = {**legacy, **(data.get("data_options") or {})}
        return cls.of(**data)

    @staticmethod
    def execution_only_fields() -> tuple[str, ...]:
        """The fields that say how a run executes, not what it computes: ``--resume`` and a re-run of
        ``compare`` take them from the request."""
        return tuple(f.name for _, f in TrainConfig.fields() if f.metadata["execution_only"])

    def validate(self) -> None:
        """Every field against its declared rule or choices (``None`` passes where it is the default)."""
        for part, f in self.fields():
            value, rule = getattr(getattr(self, part), f.name), f.metadata["rule"]
            if f.metadata["choices"] and value is not None:
                rule = Choice(f.metadata["choices"])
            if rule is not None and not (value is None and f.default is None):
                rule.check(f.name, value)
        get_dataset(self.data.dataset).check_options(self.data.data_options)
